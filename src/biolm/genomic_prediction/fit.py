"""Fit one genomic-prediction model on every phenotyped line of a trait, and predict new lines.

``gp_fit`` writes a run folder that ``gp_predict`` needs nothing else to use::

    config.yaml            resolved config (data, the chosen model, trait)
    markers.json           the input marker names in order and the dosage coding
    features.safetensors   marker filter (kept columns), imputation means, scaling — from the training lines
    model.safetensors      deep models: network weights per ensemble member; classic models: their
                           coefficients (RR-BLUP marker effects, GBLUP marker effects + allele
                           frequencies, RKHS training markers + dual coefficients). No pickle.
    fit.json               trait, model, lines, markers kept, fit seconds

``gp_predict`` reads a genotype file (any supported format), aligns its markers to the training
markers by name, and returns `id, prediction` (GEBV, in phenotype units).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig, OmegaConf, open_dict
from safetensors.numpy import load_file as load_numpy
from safetensors.numpy import save_file as save_numpy
from safetensors.torch import load_file as load_torch
from safetensors.torch import save_file as save_torch

from biolm.data.io import write_table
from biolm.errors import BiolmError
from biolm.fitting import publish, staging_dir
from biolm.genomic_prediction.cv import (
    build_estimator,
    limit_threads,
    load_dataset,
    pearson,
    preprocessor,
    selected_models,
)
from biolm.genomic_prediction.data import read_genotypes
from biolm.genomic_prediction.deep import DeepRegressor
from biolm.runs import check_targets, run_file, write_json

log = logging.getLogger(__name__)
RUN_FILES = ("config.yaml", "markers.json", "features.safetensors", "model.safetensors")


def gp_fit(cfg: DictConfig) -> Path:
    """Fit ``models[cfg.model]`` on trait ``cfg.trait`` and write the run folder ``cfg.out``.

    Returns:
        The run folder.
    """
    limit_threads(cfg.get("threads"))
    name = str(cfg.model)
    models = selected_models(cfg)
    if name not in models:
        raise BiolmError(f"model: {name!r} is not among the selected models ({', '.join(models)}); pass models=[{name}] or another model=")
    model_cfg = models[name]
    if str(model_cfg.estimator.get("_target_", "")).endswith("PedigreeBLUP"):
        raise BiolmError(f"model: {name!r} predicts only lines of the pedigree file; gp fit/predict need a marker model")
    dataset = load_dataset(cfg.data)
    trait = str(cfg.trait)
    if trait not in dataset.phenotypes.columns:
        raise BiolmError(f"trait: {trait!r} is not a column of {cfg.data.phenotypes} (traits: {', '.join(dataset.phenotypes.columns)})")
    y_all = dataset.phenotypes[trait].to_numpy(dtype=np.float64)
    rows = np.flatnonzero(~np.isnan(y_all))
    values = dataset.genotypes.values[rows]
    features = preprocessor(model_cfg, cfg.data).fit(values)
    x = features.transform(values)
    estimator = build_estimator(name, model_cfg, cfg.data, None)
    tic = time.perf_counter()
    estimator.fit(x, y_all[rows], seed=int(cfg.seed), lines=rows)
    fit_s = time.perf_counter() - tic

    final = Path(str(cfg.out))
    stage = staging_dir(final, bool(cfg.get("overwrite", False)))
    saved = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    with open_dict(saved):
        saved.models = {name: saved.models[name]}
    OmegaConf.save(saved, stage / "config.yaml")
    write_json({"markers": dataset.genotypes.markers, "coding": str(cfg.data.coding), "dosage_max": int(cfg.data.dosage_max)}, stage / "markers.json")
    save_numpy(features.state(), str(stage / "features.safetensors"))
    state = estimator.state()
    if isinstance(estimator, DeepRegressor):
        save_torch(state, str(stage / "model.safetensors"))
    else:
        save_numpy({k: np.ascontiguousarray(v) for k, v in state.items()}, str(stage / "model.safetensors"))
    fitted = estimator.predict(x, lines=rows)
    write_json({"trait": trait, "model": name, "lines": len(rows), "markers_kept": len(features.keep),
                "fit_s": fit_s, "train_pearson_r": _json_number(pearson(fitted, y_all[rows], f"{trait} {name} training lines"))}, stage / "fit.json")
    publish(stage, final)
    log.info("%s on %s: %d lines, %d markers; run written to %s", name, trait, len(rows), len(features.keep), final)
    return final


def _json_number(value: float) -> float | None:
    """None (JSON null) for an undefined (NaN) value: ``json.dumps`` would write ``NaN``, which is not JSON."""
    return None if np.isnan(value) else value


def _aligned_dosages(run_dir: Path, genotypes, markers: list[str]) -> np.ndarray:
    """New lines' dosages in the training marker order; markers the model never used may be absent."""
    from biolm.genomic_prediction.preprocess import MarkerPreprocessor

    keep = MarkerPreprocessor().load_state(load_numpy(str(run_dir / "features.safetensors"))).keep
    column = {m: j for j, m in enumerate(genotypes.markers)}
    missing = [markers[j] for j in keep if markers[j] not in column]
    if missing:
        raise BiolmError(
            f"genotypes: {genotypes.source} lacks {len(missing)} of the {len(keep)} markers the model uses, "
            f"e.g. {', '.join(missing[:3])}; marker names must match those of the training file"
        )
    out = np.full((len(genotypes.ids), len(markers)), np.nan, dtype=np.float32)
    present = [j for j, m in enumerate(markers) if m in column]
    out[:, present] = genotypes.values[:, [column[markers[j]] for j in present]]
    return out


def gp_predict(run: str | Path, genotypes: str | Path, out: str | None = None) -> pd.DataFrame:
    """Predict the lines of a genotype file with a ``gp fit`` run folder.

    Args:
        run: the run folder written by `gp_fit`.
        genotypes: a genotype file (CSV/TSV/Parquet matrix in the run's coding, PLINK .bed or VCF).
        out: optional table to write (``.csv``/``.tsv``/``.parquet``).

    Returns:
        `id`, `prediction` (one row per line of the file).
    """

    run_dir = Path(run)
    missing = [f for f in RUN_FILES if not (run_dir / f).exists()]
    if missing:
        raise BiolmError(f"run: {run_dir} is not a complete gp fit run folder (missing: {', '.join(missing)})")
    with run_file(run_dir / "config.yaml", "not a readable gp fit config"):
        cfg = OmegaConf.load(run_dir / "config.yaml")
        name = str(cfg.model)
        model_cfg = cfg.models[name]
    check_targets(cfg, str(run_dir / "config.yaml"))
    with run_file(run_dir / "markers.json", "not a readable marker list"):
        meta = json.loads((run_dir / "markers.json").read_text())
        meta = {key: meta[key] for key in ("coding", "dosage_max", "markers")}
    matrix = read_genotypes(str(genotypes), "genotypes", meta["coding"], cfg.data.get("id_column"))
    if np.nanmax(matrix.values, initial=0) > meta["dosage_max"]:
        raise BiolmError(f"genotypes: {matrix.source} holds dosage {np.nanmax(matrix.values):g}; the model was trained on 0..{meta['dosage_max']}")
    values = _aligned_dosages(run_dir, matrix, meta["markers"])
    with run_file(run_dir / "features.safetensors", "cannot load the marker preprocessing (truncated or corrupt?)"):
        features = preprocessor(model_cfg, cfg.data).load_state(load_numpy(str(run_dir / "features.safetensors")))
    x = features.transform(values)
    estimator = build_estimator(name, model_cfg, cfg.data, None)
    with run_file(run_dir / "model.safetensors", "cannot load these weights into the model its config.yaml describes (truncated, corrupt, or from another model)"):
        if isinstance(estimator, DeepRegressor):
            estimator.load_state(load_torch(str(run_dir / "model.safetensors")), x.shape[1], x.shape[2])
        else:
            estimator.load_state(load_numpy(str(run_dir / "model.safetensors")))
    with torch.inference_mode():
        prediction = estimator.predict(x)
    frame = pd.DataFrame({"id": matrix.ids, "prediction": prediction})
    if out:
        write_table(frame, str(out))
        log.info("%d predictions written to %s", len(frame), out)
    return frame



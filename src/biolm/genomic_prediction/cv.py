"""Repeated k-fold cross-validation of genomic-prediction models on the same folds.

In: a composed ``gp cv`` config (``data`` genotypes/phenotypes, ``models.<name>`` entries with
``features`` and an ``estimator`` `_target_`, ``cv`` folds/repeats/seed). For every trait, every
model and every outer fold: markers are filtered, imputed and encoded with training-fold
statistics, the estimator is fitted on the training lines (its own inner CV or inner validation
split stays inside them) and scored on the held-out lines.
Out: ``<output_dir>/<run_name>/`` with config.yaml, folds.csv, cv_results.csv (one row per trait,
model and fold: Pearson r, MSE, fit seconds), oof_predictions.csv (repeat 0), cv_summary.csv,
r_by_model.png, scatter_<trait>.png and report.md — built in a hidden folder and renamed at the end.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from biolm.data.io import write_table
from biolm.errors import BiolmError
from biolm.fitting import publish, staging_dir
from biolm.genomic_prediction.data import (
    GenotypeMatrix,
    check_constant_markers,
    join_phenotypes,
    read_genotypes,
    read_pedigree,
    read_phenotypes,
)
from biolm.genomic_prediction.folds import iter_splits, make_folds
from biolm.genomic_prediction.preprocess import MarkerPreprocessor
from biolm.runs import check_targets, instantiate_config

log = logging.getLogger(__name__)


@dataclass
class GenomicDataset:
    """Genotypes joined to phenotypes (same line order), the traits to model and the optional pedigree A."""

    genotypes: GenotypeMatrix
    phenotypes: pd.DataFrame
    traits: list[str]
    pedigree: np.ndarray | None


def load_dataset(data: DictConfig) -> GenomicDataset:
    """Read, check and join the files named by a ``data`` config."""
    for key in ("genotypes", "phenotypes"):
        if not data.get(key) or data.get(key) == "???":
            raise BiolmError(f"data.{key}: missing; pass data.{key}=path/to/file")
    genotypes = read_genotypes(data.genotypes, "data.genotypes", str(data.coding), data.get("id_column"))
    genotypes = check_constant_markers(genotypes, bool(data.get("drop_constant", False)))
    phenotypes = read_phenotypes(data.phenotypes, "data.phenotypes", data.get("phenotype_id_column"))
    genotypes, phenotypes = join_phenotypes(genotypes, phenotypes, str(data.phenotypes))
    traits = list(phenotypes.columns) if not data.get("traits") else [str(t) for t in data.traits]
    unknown = [t for t in traits if t not in phenotypes.columns]
    if unknown:
        raise BiolmError(f"data.traits: {unknown[0]!r} is not a column of {data.phenotypes} (traits: {', '.join(phenotypes.columns)})")
    if np.nanmax(genotypes.values, initial=0) > int(data.dosage_max):
        raise BiolmError(f"data.dosage_max: {data.dosage_max}, but {data.genotypes} holds dosage {np.nanmax(genotypes.values):g}")
    pedigree = read_pedigree(data.pedigree, genotypes.ids) if data.get("pedigree") else None
    return GenomicDataset(genotypes, phenotypes, traits, pedigree)


def build_estimator(name: str, model_cfg: DictConfig, data: DictConfig, pedigree: np.ndarray | None):
    """A fresh estimator from ``models.<name>.estimator`` (only ``biolm.*`` targets)."""
    check_targets(model_cfg, f"models.{name}")
    target = str(model_cfg.estimator.get("_target_", ""))
    extra = {}
    if target.endswith("GBLUP"):
        extra["dosage_max"] = int(data.dosage_max)
    if target.endswith("PedigreeBLUP"):
        if pedigree is None:
            raise BiolmError(f"models.{name}: the pedigree model needs data.pedigree (a square relationship CSV)")
        extra["relationship"] = pedigree
    return instantiate_config(model_cfg.estimator, f"models.{name}.estimator", _recursive_=False, **extra)


def preprocessor(model_cfg: DictConfig, data: DictConfig) -> MarkerPreprocessor:
    """The marker filter/imputation/encoding of a model (unfitted)."""
    features = model_cfg.get("features") or {}
    filters = data.get("filters") or {}
    return MarkerPreprocessor(
        encoding=str(features.get("encoding", "additive")),
        standardize=bool(features.get("standardize", False)),
        maf_min=float(filters.get("maf_min", 0.0)),
        missing_max=float(filters.get("missing_max", 1.0)),
        dosage_max=int(data.dosage_max),
    )


def pearson(prediction: np.ndarray, observed: np.ndarray, where: str | None = None) -> float:
    """Pearson r; NaN where it is undefined (fewer than 2 lines, or a constant side), with a
    warning naming ``where`` (e.g. the trait, model and fold) when given."""
    if len(observed) < 2:
        why = f"{len(observed)} held-out line(s)"
    elif np.ptp(observed) == 0:
        why = "the observed phenotypes are constant"
    elif np.ptp(prediction) == 0:
        why = "the predictions are constant"
    else:
        return float(np.corrcoef(prediction, observed)[0, 1])
    if where:
        log.warning("%s: Pearson r undefined, %s", where, why)
    return float("nan")


def limit_threads(threads: int | None) -> None:
    """Cap BLAS and torch threads (many small solves run faster single-threaded on shared CPUs)."""
    if not threads:
        return
    import torch
    from threadpoolctl import threadpool_limits

    threadpool_limits(int(threads))
    torch.set_num_threads(int(threads))


def selected_models(cfg: DictConfig) -> dict[str, DictConfig]:
    """The ``models.<name>`` entries that define an estimator (an experiment may leave settings for unselected ones)."""
    models = {str(name): node for name, node in (cfg.get("models") or {}).items() if node.get("estimator") is not None}
    if not models:
        raise BiolmError("models: none selected; pass e.g. models=[gmlp,rrblup]")
    return models


def gp_cross_validate(cfg: DictConfig) -> Path:
    """Run repeated k-fold CV of every selected model on every trait, on the same folds.

    Args:
        cfg: the composed ``gp cv`` config.

    Returns:
        The run folder (cv_results.csv, cv_summary.csv, plots, report.md, folds.csv, config.yaml).
    """
    from biolm.genomic_prediction.report import write_report

    limit_threads(cfg.get("threads"))
    models = selected_models(cfg)
    dataset = load_dataset(cfg.data)
    ids = dataset.genotypes.ids
    folds = make_folds(ids, int(cfg.cv.folds), int(cfg.cv.repeats), int(cfg.cv.seed))
    final = Path(cfg.output_dir) / (cfg.get("run_name") or f"gp-{datetime.now():%Y%m%d-%H%M%S}")
    stage = staging_dir(final, bool(cfg.get("overwrite", False)))
    OmegaConf.save(cfg, stage / "config.yaml", resolve=True)
    write_table(folds, str(stage / "folds.csv"))

    rows, oof = [], []
    values = dataset.genotypes.values
    for trait in dataset.traits:
        y_all = dataset.phenotypes[trait].to_numpy(dtype=np.float64)
        observed = ~np.isnan(y_all)
        for name, model_cfg in models.items():
            started = time.perf_counter()
            max_repeats = model_cfg.get("max_repeats")
            for split in iter_splits(folds, ids, None if max_repeats is None else int(max_repeats)):
                train, test = split.train[observed[split.train]], split.test[observed[split.test]]
                features = preprocessor(model_cfg, cfg.data).fit(values[train])
                x_train, x_test = features.transform(values[train]), features.transform(values[test])
                estimator = build_estimator(name, model_cfg, cfg.data, dataset.pedigree)
                tic = time.perf_counter()
                estimator.fit(x_train, y_all[train], seed=int(cfg.seed) + split.inner_seed, lines=train)
                fit_s = time.perf_counter() - tic
                prediction = estimator.predict(x_test, lines=test)
                rows.append({
                    "trait": trait, "model": name, "repeat": split.repeat, "fold": split.fold,
                    "n_train": len(train), "n_test": len(test), "markers": len(features.keep),
                    "pearson_r": pearson(prediction, y_all[test], f"{trait} {name} repeat {split.repeat} fold {split.fold}"),
                    "mse": float(np.mean((prediction - y_all[test]) ** 2)), "fit_s": fit_s,
                })
                if split.repeat == 0:
                    oof.append(pd.DataFrame({"trait": trait, "model": name, "id": [ids[i] for i in test], "fold": split.fold,
                                             "observed": y_all[test], "predicted": prediction}))
            done = pd.DataFrame([r for r in rows if r["trait"] == trait and r["model"] == name])
            undefined = int(done.pearson_r.isna().sum())
            log.info("%s %s: r = %.3f ± %.3f over %d folds%s (%.1f s)", trait, name, done.pearson_r.mean(), done.pearson_r.std(),
                     len(done) - undefined, f" ({undefined} with r undefined, left out)" if undefined else "", time.perf_counter() - started)
        write_table(pd.DataFrame(rows), str(stage / "cv_results.csv"))

    results = pd.DataFrame(rows)
    write_table(results, str(stage / "cv_results.csv"))
    write_table(pd.concat(oof, ignore_index=True), str(stage / "oof_predictions.csv"))
    write_report(stage, results, pd.concat(oof, ignore_index=True), cfg, plots=bool(cfg.get("plots", True)))
    publish(stage, final)
    log.info("cross-validation written to %s", final)
    return final

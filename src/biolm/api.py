"""The public Python API: fine-tune, evaluate and predict.

The CLI and the service are thin layers over these functions; there is one prediction path
(`predict_records`) behind `predict`, `evaluate` and the test metrics written at the end of
`finetune`, so the three can never disagree.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
from collections.abc import Sequence
from pathlib import Path

import lightning as L
import numpy as np
import pandas as pd
import torch
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf, open_dict

from biolm.data.augment import AugmentedSequenceDataset, check_augment
from biolm.data.datasets import (
    SequenceDataModule,
    TokenDataset,
    encode_labels,
    load_splits,
    tokenize_records,
)
from biolm.data.io import SequenceRecords, read_records, write_table
from biolm.data.labels import LabelSpec
from biolm.data.windows import check_window, split_into_windows
from biolm.errors import BiolmError
from biolm.fitting import (
    build_trainer,
    fit_run,
    publish,
    quiet_lightning_warnings,
    staging_dir,
    training_stage,
)
from biolm.genomic_prediction import gp_cross_validate, gp_fit, gp_predict
from biolm.models import build_sequence_model
from biolm.models.adapters import (
    adapter_bytes,
    adapter_name,
    apply_adapter,
    is_adapted,
    write_base_record,
)
from biolm.prediction import predict, predict_records
from biolm.pretraining import pretrain, train_tokenizer
from biolm.report import write_report
from biolm.resources import register_resolvers
from biolm.runs import (
    Run,
    check_targets,
    check_window_fits,
    count_parameters,
    default_run_name,
    instantiate_config,
    load_run,
    load_trunk,
    token_limit,
    write_json,
)
from biolm.tasks.callbacks import (
    ResumeCheckpoint,
    SafetensorsCheckpoint,
    save_model,
    save_weights,
)
from biolm.tasks.metrics import (
    log_notes,
    metric_mode,
)
from biolm.tasks.objectives import SequenceObjective, objective_class, objective_for
from biolm.tasks.sequence import SequenceTask
from biolm.tokenizers import load_tokenizer
from biolm.variants import (
    filter_vcf,
    in_silico_mutagenesis,
    score_variants,
    variant_dataset,
)

log = logging.getLogger(__name__)
register_resolvers()  # configs composed or loaded by API users may name ${bundled:...} files



__all__ = ["finetune", "merge_adapter", "pretrain", "train_tokenizer", "evaluate", "predict", "predict_records", "compare_runs", "load_run", "Run", "filter_vcf", "variant_dataset", "score_variants", "in_silico_mutagenesis", "gp_cross_validate", "gp_fit", "gp_predict"]


def _run_name(cfg: DictConfig) -> str:
    if cfg.get("run_name"):
        return str(cfg.run_name)
    return default_run_name(str(cfg.task.type))


def finetune(cfg: DictConfig) -> Path:
    """Train a sequence-level model as configured and write its run folder.

    Args:
        cfg: the composed ``finetune`` config (tokenizer, model, data, task, trainer, optim, ...).

    Returns:
        The run folder (with weights, tokenizer, labels, metrics and test metrics).
    """
    L.seed_everything(int(cfg.seed), workers=True, verbose=False)
    pretrained = _adopt_pretrained(cfg) if cfg.get("init_from") else None
    adapter = adapter_name(cfg.get("adapter"))
    if adapter != "none" and pretrained is None:
        raise BiolmError(f"adapter={adapter}: an adapter trains on top of pretrained weights; pass init_from=runs/<pretrain-run>")
    tokenizer = load_tokenizer(pretrained / "tokenizer") if pretrained else instantiate_config(cfg.tokenizer, "tokenizer")
    objective_cls = objective_class(cfg.task)
    splits = load_splits(cfg.data, stratify=objective_cls.stratify)
    train = splits["train"]
    objective = objective_cls.fit(train.labels, train.where, delimiter=cfg.data.label_delimiter, positive_label=cfg.task.get("positive_label"))
    spec = objective.labels
    model = build_sequence_model(cfg.model, tokenizer.vocab_size, tokenizer.pad_id, spec.num_outputs)
    if pretrained:
        load_trunk(model, pretrained)
        log.info("init_from %s: trunk weights loaded", pretrained)
    model = apply_adapter(model, cfg.get("adapter"))
    max_tokens = token_limit(model, cfg.data)
    fit_sets = _training_records(cfg, splits, tokenizer, max_tokens)
    targets = {name: encode_labels(spec, records) for name, records in fit_sets.items()}
    windowed = fit_sets["train"] is not splits["train"]
    # windowed test sequences are cut and tokenised by the prediction path at the end
    tokens = {name: tokenize_records(tokenizer, records, max_tokens) for name, records in fit_sets.items() if not (windowed and name == "test")}
    trainable, total = count_parameters(model)
    log.info(
        "data: %s | labels: %s %s | model: %s trainable of %s parameters (%.2f%%)%s",
        ", ".join(f"{n} {len(r)}" + (f" ({len(fit_sets[n])} windows)" if len(fit_sets[n]) != len(r) else "") for n, r in splits.items()),
        objective.name,
        spec.classes or "(values)",
        f"{trainable:,}",
        f"{total:,}",
        100.0 * trainable / max(total, 1),
        f" | adapter: {adapter}" if adapter != "none" else "",
    )

    final = Path(cfg.output_dir) / _run_name(cfg)
    stage, resume_from = training_stage(final, cfg)
    if (resume_from is None or not (stage / "config.yaml").exists()) and rank_zero_only.rank == 0:
        OmegaConf.save(cfg, stage / "config.yaml", resolve=True)
        tokenizer.save(stage / "tokenizer")
        spec.to_json(stage / "labels.json")
        if adapter != "none":
            write_base_record(stage / "adapter", pretrained)

    monitor = f"val/{cfg.task.monitor}"
    mode = metric_mode(cfg.task.monitor)
    weights = objective.class_weights(targets["train"], cfg.task.get("class_weights"))
    task = SequenceTask(model, objective, monitor=cfg.task.monitor, class_weights=weights, seed=int(cfg.seed), **cfg.optim)
    augment = cfg.data.get("augment") or {}
    rc_prob, substitution_rate = float(augment.get("rc_prob", 0.0)), float(augment.get("substitution_rate", 0.0))
    check_augment(rc_prob, substitution_rate)
    train_set = (
        AugmentedSequenceDataset(fit_sets["train"].sequences, targets["train"], tokenizer, max_tokens, int(cfg.seed), rc_prob, substitution_rate)
        if rc_prob or substitution_rate
        else TokenDataset(tokens["train"], targets["train"])
    )
    datamodule = SequenceDataModule(
        {"train": train_set, "val": TokenDataset(tokens["val"], targets["val"])},
        tokenizer.pad_id,
        batch_size=int(cfg.data.batch_size),
        num_workers=int(cfg.data.num_workers),
        eval_batch_size=int(cfg.data.get("eval_batch_size") or cfg.data.batch_size),
        seed=int(cfg.seed),
    )
    checkpoint = SafetensorsCheckpoint(stage, monitor, mode)
    resume = ResumeCheckpoint(stage / "checkpoints")
    with quiet_lightning_warnings():
        trainer = build_trainer(cfg, stage, [checkpoint, resume], early_stopping=(monitor, mode))
        fit_run(trainer, task, datamodule, stage, resume_from, f"the same command and run_name={final.name} ckpt=last")
    if not trainer.is_global_zero:
        return final
    shutil.rmtree(stage / "checkpoints", ignore_errors=True)  # resume state; the finished run keeps its best weights only
    if checkpoint.best is None:
        log.warning("%s never produced a finite value; keeping the last weights", monitor)
        save_model(model, stage)

    run = load_run(stage)
    test = splits["test"]
    frame = predict_records(run, test, tokens=tokens.get("test"))
    metrics = compute_metrics(run.objective, frame, targets["test"])
    metrics.update({"n_test": len(test), "monitor": monitor, "best_val": checkpoint.best, "best_epoch": checkpoint.best_epoch})
    metrics.update({"n_train": len(splits["train"]), "n_val": len(splits["val"]), "trainable_params": trainable, "total_params": total})
    write_json(metrics, stage / "test_metrics.json")
    frame.insert(1, "label", test.labels)
    write_table(frame, str(stage / "test_predictions.csv"))
    write_report(stage, {name: len(r) for name, r in splits.items()}, announce=False)  # the staging folder is renamed next
    publish(stage, final)
    log.info("run written to %s (report: %s)", final, final / "report.md")
    return final


def merge_adapter(run: Run | str | Path, out: str | Path, overwrite: bool = False) -> Path:
    """Fold a LoRA run's adapter into its base weights and write a plain run folder.

    The new folder has the same config (``adapter.name: none``, ``merged_from`` recorded),
    tokenizer, labels and metrics, and a full ``model.safetensors``; its predictions equal the
    adapter run's, and it no longer needs the pretrained run.

    Args:
        run: a LoRA run folder (or loaded `Run`).
        out: the folder to write.
        overwrite: replace ``out`` if it exists.
    """
    if not isinstance(run, Run):
        run = load_run(run)
    if not is_adapted(run.model):
        raise BiolmError(f"run: {run.path} has no adapter/ (not a LoRA run); nothing to merge")
    merged = run.model.merge_and_unload()
    final = Path(out)
    stage = staging_dir(final, overwrite)
    cfg = run.cfg.copy()
    with open_dict(cfg):
        cfg.adapter = {"name": "none"}
        cfg.merged_from = str(run.path)
    OmegaConf.save(cfg, stage / "config.yaml", resolve=True)
    run.tokenizer.save(stage / "tokenizer")
    run.labels.to_json(stage / "labels.json")
    for name in ("metrics.csv", "checkpoint.json", "test_metrics.json", "test_predictions.csv"):
        if (run.path / name).exists():
            shutil.copy2(run.path / name, stage / name)
    save_weights(merged, stage / "model.safetensors")
    publish(stage, final)
    log.info("merged %s (adapter %.1f KB) into %s (%.1f KB)", run.path, adapter_bytes(run.path / "adapter") / 1e3, final, (final / "model.safetensors").stat().st_size / 1e3)
    return final


def _training_records(cfg: DictConfig, splits: dict[str, SequenceRecords], tokenizer, max_tokens: int | None) -> dict[str, SequenceRecords]:
    """Train/val records as the model sees them: cut into ``data.window`` windows (each with its
    sequence's label) when windowing is on; test records stay whole (prediction windows them)."""
    window_cfg = cfg.data.get("window") or {}
    window = check_window(window_cfg.get("size"), window_cfg.get("stride"))
    if window is None:
        return dict(splits)
    check_window_fits(tokenizer, window[0], max_tokens, "data.window.size")
    out = {name: split_into_windows(records, *window).records for name, records in splits.items() if name != "test"}
    out["test"] = splits["test"]
    return out


def _adopt_pretrained(cfg: DictConfig) -> Path:
    """Point ``cfg.tokenizer`` and ``cfg.model.trunk`` at those of the pretrained run ``cfg.init_from``."""
    source = Path(cfg.init_from)
    missing = [name for name in ("config.yaml", "tokenizer", "model.safetensors") if not (source / name).exists()]
    if missing:
        raise BiolmError(f"init_from: {source} is not a finished biolm run folder (missing: {', '.join(missing)})")
    source_cfg = OmegaConf.load(source / "config.yaml")
    check_targets(source_cfg.model, f"{source / 'config.yaml'} model")
    same_family = cfg.model.trunk.get("_target_") == source_cfg.model.trunk._target_
    with open_dict(cfg):
        cfg.tokenizer = source_cfg.tokenizer
        cfg.model.trunk = source_cfg.model.trunk
        if not same_family:
            # model= named another family (often just the default): its head options (e.g. CLS pooling) need not fit
            cfg.model.head = source_cfg.model.head
    log.info(
        "init_from %s: its tokenizer and trunk (%s)%s replace tokenizer= and model=",
        source,
        source_cfg.model.trunk._target_,
        "" if same_family else " and sequence-head settings",
    )
    return source


def compute_metrics(objective: SequenceObjective | LabelSpec, frame: pd.DataFrame, targets: np.ndarray, split: str = "test set") -> dict[str, float | None]:
    """Metrics of a prediction table against encoded targets (same metrics as validation).

    A metric undefined on these records (e.g. AUROC when they hold one class; see
    `biolm.tasks.metrics`) is None, written as ``null`` in JSON, with a warning logged that says
    why; macro averages leave out the classes where the metric is undefined.

    Args:
        objective: the run's objective (``run.objective``), or its label space.
    """
    if isinstance(objective, LabelSpec):
        objective = objective_for(objective)
    metrics = objective.metrics(split)
    metrics.update(objective.values_from_frame(frame), objective.metric_targets(torch.from_numpy(np.asarray(targets))))
    values = {name: float(value) for name, value in metrics.compute().items()}
    log_notes(metrics)
    return {name: None if math.isnan(value) else value for name, value in values.items()}


def evaluate(run: Run | str | Path, data_cfg: DictConfig | dict, batch_size: int = 64) -> dict[str, float]:
    """Metrics of a trained run on a labelled file.

    Args:
        run: a loaded `Run` or a run folder.
        data_cfg: ``test`` (the file) plus optional overrides of the run's data settings
            (``sequence_column``, ``label_column``, ``labels_file``, ...).
        batch_size: sequences per forward pass.
    """
    if not isinstance(run, Run):
        run = load_run(run)
    data = OmegaConf.merge(run.cfg.data, OmegaConf.create(data_cfg))
    if not data.get("test"):
        raise BiolmError("data.test: no file given; pass data.test=path/to/labelled.csv")
    records = read_records(
        data.test,
        field_name="data.test",
        sequence_column=data.sequence_column,
        label_column=data.label_column,
        id_column=data.get("id_column"),
        require_label=True,
        labels_file=data.get("labels_file"),
    )
    targets = encode_labels(run.labels, records)
    frame = predict_records(run, records, batch_size)
    metrics = compute_metrics(run.objective, frame, targets)
    metrics["n"] = len(records)
    return metrics


def compare_runs(runs: Sequence[str | Path], reference: str | None = None, reference_task: str | None = None) -> pd.DataFrame:
    """One row per run (its ``test_metrics.json``), plus published rows from ``reference``.

    Args:
        runs: run folders.
        reference: optional CSV with columns ``task,model,<metric>...``.
        reference_task: which task's rows of ``reference`` to show.
    """
    rows = []
    for run in runs:
        path = Path(run) / "test_metrics.json"
        if not path.exists():
            raise BiolmError(f"runs: {run} has no test_metrics.json (not a finished biolm run)")
        metrics = json.loads(path.read_text())
        # null (an undefined metric) becomes NaN; counts, sizes and the checkpoint's record are not metrics
        measured = {k: np.nan if v is None else v for k, v in metrics.items() if (v is None or isinstance(v, float)) and k not in ("monitor", "best_val", "best_epoch")}
        rows.append({"model": Path(run).name, "source": "this run", **measured})
    if reference:
        if not Path(reference).exists():
            raise BiolmError(f"reference: file not found: {reference}")
        published = pd.read_csv(reference)
        if reference_task is not None:
            published = published[published["task"] == reference_task]
            if published.empty:
                raise BiolmError(f"reference_task: no rows for {reference_task!r} in {reference}")
        for record in published.drop(columns=["task"]).to_dict("records"):
            rows.append({"model": record.pop("model"), "source": "published", **record})
    return pd.DataFrame(rows)

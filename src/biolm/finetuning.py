"""Fine-tuning runs: `SequenceRecipe` (the `biolm.training` recipe of ``configs/finetune.yaml``),
`finetune` (= `biolm.training.fit` on that config) and `merge_adapter` (a LoRA run -> a plain run).

A fine-tune reads labelled records (`biolm.data.datasets.load_splits`), fits the label space of
the configured objective (`biolm.tasks.objectives`), builds the model (optionally from a
pretraining run, ``init_from``, or a Hugging Face checkpoint, ``model.pretrained``; either with a
LoRA adapter), trains it, then scores the test split through the one prediction path and writes ``test_metrics.json``, ``test_predictions.csv`` and the report.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import lightning as L
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict

from biolm.checkpoints import resolve_pretrained
from biolm.data.augment import AugmentedSequenceDataset, check_augment
from biolm.data.datasets import SequenceDataModule, TokenDataset, encode_labels, load_splits, tokenize_records
from biolm.data.io import SequenceRecords, write_table
from biolm.data.windows import check_window, split_into_windows
from biolm.errors import BiolmError
from biolm.evaluation import compute_metrics
from biolm.fitting import publish, staging_dir, training_stage
from biolm.models import pin_pretrained
from biolm.models.adapters import adapter_bytes, adapter_name, apply_adapter, is_adapted, write_base_record
from biolm.prediction import predict_records
from biolm.report import write_report
from biolm.runs import (
    DECISION_FILE,
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
from biolm.schedule import StepPlan, plan_steps, small_data_advice
from biolm.tasks.callbacks import ResumeCheckpoint, SafetensorsCheckpoint, save_model, save_weights
from biolm.tasks.decision import Decision, decide, parse_bands, parse_rule
from biolm.tasks.metrics import metric_mode
from biolm.tasks.objectives import objective_class
from biolm.tasks.sequence import SequenceTask
from biolm.tokenizers import load_tokenizer
from biolm.training import Job, Recipe

log = logging.getLogger(__name__)


def finetune(cfg: DictConfig) -> Path:
    """Train a sequence-level model as configured and write its run folder.

    The same as `biolm.training.fit` with the ``finetune`` config (whose ``recipe`` is
    `SequenceRecipe`).

    Args:
        cfg: the composed ``finetune`` config (tokenizer, model, data, task, trainer, optim, ...).

    Returns:
        The run folder (with weights, tokenizer, labels, metrics and test metrics).
    """
    from biolm.training import fit

    return fit(cfg)


class SequenceRecipe(Recipe):
    """Fine-tuning a sequence-level model on labelled records (``configs/finetune.yaml``).

    The run is built in ``<output_dir>/.<run_name>.incomplete`` and published by renaming once its
    test metrics, predictions and report are written.
    """

    def prepare(self, cfg: DictConfig) -> Job:
        pretrained = adopt_pretrained(cfg) if cfg.get("init_from") else None
        adapter = adapter_name(cfg.get("adapter"))
        base = adapter_base(cfg, adapter, pretrained)
        tokenizer = load_tokenizer(pretrained / "tokenizer") if pretrained else instantiate_config(cfg.tokenizer, "tokenizer")
        objective_cls = objective_class(cfg.task)
        splits = load_splits(cfg.data, stratify=objective_cls.stratify)
        train = splits["train"]
        check_decision_settings(cfg.task, objective_cls, splits.get("val"))
        objective = objective_cls.fit(train.labels, train.where, delimiter=cfg.data.label_delimiter, positive_label=cfg.task.get("positive_label"))
        if objective.decides and parse_rule(cfg.task.get("threshold"))[0] == "fixed":
            objective.decision = decide(cfg.task, None, None)  # validation metrics at the run's own threshold
        spec = objective.labels
        model = objective.build_model(cfg.model, tokenizer.vocab_size, tokenizer.pad_id)
        pin_pretrained(cfg.model, model.trunk)
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
        plan = plan_schedule(cfg, len(tokens["train"]))  # before stage_run writes config.yaml: it records the epochs
        from_scratch = not pretrained and not cfg.model.get("pretrained_from")
        advice = small_data_advice(type(model.trunk).__name__, len(splits["train"])) if from_scratch and getattr(model.trunk, "needs_pretraining", False) else None
        if advice:
            log.warning(advice)

        final, stage, resume_from = stage_run(cfg, tokenizer, spec, base)

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
        datamodule = data_module(cfg, tokenizer, {"train": train_set, "val": TokenDataset(tokens["val"], targets["val"])})
        return staged_job(task, datamodule, stage, final, resume_from, monitor, mode, plan, splits=splits, targets=targets, tokens=tokens,
                          windowed=windowed, sizes=(trainable, total))

    def finish(self, cfg: DictConfig, trainer: L.Trainer, job: Job) -> Path:
        splits, targets, tokens = (job.state[k] for k in ("splits", "targets", "tokens"))
        keep_best_weights(job)
        run = load_run(job.folder)
        write_decision(cfg.task, run, splits.get("val"), None if job.state["windowed"] else tokens.get("val"))
        test = splits["test"]
        frame = predict_records(run, test, tokens=tokens.get("test"))
        metrics = compute_metrics(run.objective, frame, targets["test"])
        frame.insert(1, "label", test.labels)
        write_table(frame, str(job.folder / "test_predictions.csv"))
        return publish_run(job, metrics, {name: len(r) for name, r in splits.items()}, *job.state["sizes"])


def check_decision_settings(task_cfg: DictConfig, objective_cls, val: SequenceRecords | None) -> None:
    """Refuse a bad ``task.threshold`` / ``task.bands`` before training: either one on an objective without a
    threshold, bands that do not fit the threshold, or a rule without a validation split holding both classes."""
    if not objective_cls.decides:
        given = [key for key in ("threshold", "bands") if task_cfg.get(key) is not None]
        if given:
            raise BiolmError(f"task.{given[0]}: only binary runs have a decision threshold and risk bands (this run: {objective_cls.name})")
        return
    kind, value = parse_rule(task_cfg.get("threshold"))
    parse_bands(task_cfg.get("bands"), value if kind == "fixed" else None)
    if kind == "fixed":
        return
    classes = {str(label).strip() for label in (val.labels if val is not None else [])}
    if len(classes) < 2:
        raise BiolmError(f"task.threshold={task_cfg.threshold}: chosen on the validation split, which "
                         f"{'holds one class only' if classes else 'is empty'}; pass data.val with both classes, or a number")
    if task_cfg.get("monitor") in ("mcc", "f1", "accuracy"):
        log.warning("task.threshold=%s is chosen after training, but task.monitor=%s is computed at 0.5 while training "
                    "(on an imbalanced set it can stay 0 as the ranking improves); task.monitor=auroc keeps the best-ranking weights",
                    task_cfg.threshold, task_cfg.monitor)


def write_decision(task_cfg: DictConfig, run: Run, val: SequenceRecords | None, val_tokens=None) -> None:
    """Choose the run's decision threshold (`biolm.tasks.decision`) on the validation split when ``task.threshold``
    asks for a rule, and write ``decision.json``; ``run.objective`` takes it for the test predictions."""
    if not run.objective.decides:
        return
    truth = scores = None
    if parse_rule(task_cfg.get("threshold"))[0] != "fixed":
        if val is None or not len(val):
            raise BiolmError(f"task.threshold={task_cfg.threshold}: needs a validation split to choose on; pass a number")
        frame = predict_records(run, val, tokens=val_tokens)
        truth, scores = encode_labels(run.labels, val), run.objective.values_from_frame(frame).numpy().astype(float)
    try:
        decision = decide(task_cfg, truth, scores)
    except BiolmError as err:  # the trained weights are kept: the run is published with the usual rule, and says why
        log.error("%s; the run keeps the threshold 0.5 (set another in %s)", err, run.path.name + "/" + DECISION_FILE)
        decision = Decision(0.5, "0.5", None, {"error": str(err)})
    decision.to_json(run.path / DECISION_FILE)
    run.objective.decision = decision
    log.info("decision threshold %.6g (task.threshold=%s)%s", decision.threshold, decision.rule,
             "" if not decision.chosen_on else f": val sensitivity {decision.chosen_on.get('sensitivity')}, specificity {decision.chosen_on.get('specificity')}")


def data_module(cfg: DictConfig, tokenizer, datasets: dict) -> SequenceDataModule:
    """The fine-tune's data module over ``train``/``val`` datasets (batch sizes, workers, seeded order and
    ``data.bucket_pool`` from ``cfg``; a config without that key, e.g. an older run's, trains unbucketed)."""
    return SequenceDataModule(
        datasets,
        tokenizer.pad_id,
        batch_size=int(cfg.data.batch_size),
        num_workers=int(cfg.data.num_workers),
        eval_batch_size=int(cfg.data.get("eval_batch_size") or cfg.data.batch_size),
        seed=int(cfg.seed),
        bucket_pool=int(cfg.data.get("bucket_pool") or 1),
    )


def plan_schedule(cfg: DictConfig, n_train: int) -> StepPlan:
    """Size the fine-tune in optimiser steps (`biolm.schedule.plan_steps`): the epochs go into
    ``cfg.trainer.max_epochs`` (the run's config.yaml shows them), the plan into the log.

    The budget is left out (``max_epochs`` as given) when ``trainer.max_steps`` bounds the run
    or ``trainer.max_epochs`` is null, and when ``trainer.devices`` is not a count or list
    (``auto``: the steps per epoch are not known before the Trainer starts).
    """
    trainer = cfg.trainer
    devices = trainer.get("devices")
    counted = isinstance(devices, int) and devices > 0 or isinstance(devices, list | ListConfig)
    world_size = (len(devices) if isinstance(devices, list | ListConfig) else int(devices) if counted else 1) * int(trainer.get("num_nodes") or 1)
    min_steps = int((cfg.get("schedule") or {}).get("min_steps") or 0)
    bounded = (trainer.get("max_steps") or -1) > 0 or trainer.get("max_epochs") is None
    if min_steps and (bounded or not counted):
        log.info("schedule.min_steps=%d not applied: %s", min_steps, "trainer.max_steps / max_epochs=null bound the run" if bounded else f"trainer.devices={devices} is not a count")
        min_steps = 0
    max_epochs = -1 if trainer.get("max_epochs") is None else int(trainer.max_epochs)
    plan = plan_steps(
        n_train, int(cfg.data.batch_size), max_epochs, min_steps, float(cfg.optim.warmup_ratio),
        int(trainer.get("accumulate_grad_batches") or 1), max(world_size, 1),
    )
    if trainer.get("max_epochs") is not None:
        with open_dict(cfg):
            cfg.trainer.max_epochs = plan.epochs
    max_steps = int(trainer.get("max_steps") or -1)
    if max_steps > 0:
        log.info("schedule: %s training sequences, batch %d: %s steps per epoch; trainer.max_steps=%s bounds the run (%.1f epochs)",
                 f"{n_train:,}", int(cfg.data.batch_size), f"{plan.steps_per_epoch:,}", f"{max_steps:,}", max_steps / max(plan.steps_per_epoch, 1))
    else:
        log.info(plan.describe(n_train, int(cfg.data.batch_size), min_steps))
    return plan


def staged_job(task, datamodule, stage: Path, final: Path, resume_from: Path | None, monitor: str, mode: str, plan: StepPlan, **state) -> Job:
    """The `Job` of a fine-tune built in ``stage``: best weights by ``monitor``, a resume checkpoint every
    epoch, early stopping counted from the first epoch after the warm-up of ``plan``."""
    checkpoint = SafetensorsCheckpoint(stage, monitor, mode)
    return Job(
        task=task,
        datamodule=datamodule,
        folder=stage,
        final=final,
        resume_from=resume_from,
        resume_hint=f"the same command and run_name={final.name} ckpt=last",
        callbacks=[checkpoint, ResumeCheckpoint(stage / "checkpoints")],
        early_stopping=(monitor, mode),
        patience_from_epoch=plan.patience_from_epoch,
        state={"checkpoint": checkpoint, **state},
    )


def keep_best_weights(job: Job) -> None:
    """After training: drop the resume state and keep the best weights (the last ones if the monitor never was finite)."""
    checkpoint = job.state["checkpoint"]
    shutil.rmtree(job.folder / "checkpoints", ignore_errors=True)  # the finished run keeps its best weights only
    if checkpoint.best is None:
        log.warning("%s never produced a finite value; keeping the last weights", checkpoint.monitor)
        save_model(job.task.model, job.folder)


def publish_run(job: Job, metrics: dict, sizes: dict[str, int], trainable: int, total: int) -> Path:
    """Write ``test_metrics.json`` (with the checkpoint's record and data sizes) and the report, then publish the run."""
    checkpoint = job.state["checkpoint"]
    metrics.update({"n_test": sizes["test"], "monitor": checkpoint.monitor, "best_val": checkpoint.best, "best_epoch": checkpoint.best_epoch})
    metrics.update({"n_train": sizes["train"], "n_val": sizes["val"], "trainable_params": trainable, "total_params": total})
    write_json(metrics, job.folder / "test_metrics.json")
    write_report(job.folder, sizes, announce=False)  # the staging folder is renamed next
    publish(job.folder, job.final)
    log.info("run written to %s (report: %s)", job.final, job.final / "report.md")
    return job.final


def _run_name(cfg: DictConfig) -> str:
    if cfg.get("run_name"):
        return str(cfg.run_name)
    return default_run_name(str(cfg.task.type))


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
    for name in (DECISION_FILE, "metrics.csv", "checkpoint.json", "test_metrics.json", "test_predictions.csv", "test_segments.tsv", "report.md"):
        if (run.path / name).exists():
            shutil.copy2(run.path / name, stage / name)
    if (run.path / "plots").is_dir():
        shutil.copytree(run.path / "plots", stage / "plots")
    save_weights(merged, stage / "model.safetensors")
    publish(stage, final)
    log.info("merged %s (adapter %.1f KB) into %s (%.1f KB)", run.path, adapter_bytes(run.path / "adapter") / 1e3, final, (final / "model.safetensors").stat().st_size / 1e3)
    return final


def stage_run(cfg: DictConfig, tokenizer, spec, adapter_base: Path | None) -> tuple[Path, Path, Path | None]:
    """``(final, stage, resume_from)`` of a fine-tune: the staging folder (fresh, or kept for
    ``ckpt=last``) with the run's config, tokenizer and labels written by rank 0."""
    final = Path(cfg.output_dir) / _run_name(cfg)
    stage, resume_from = training_stage(final, cfg)
    if (resume_from is None or not (stage / "config.yaml").exists()) and rank_zero_only.rank == 0:
        OmegaConf.save(cfg, stage / "config.yaml", resolve=True)
        tokenizer.save(stage / "tokenizer")
        spec.to_json(stage / "labels.json")
        if adapter_base is not None:
            write_base_record(stage / "adapter", adapter_base)
    return final, stage, resume_from


def _training_records(cfg: DictConfig, splits: dict[str, SequenceRecords], tokenizer, max_tokens: int | None) -> dict[str, SequenceRecords]:
    """Train/val records as the model sees them: cut into ``data.window_bp`` windows (each with its
    sequence's label) when windowing is on; test records stay whole (prediction windows them)."""
    window = check_window(cfg.data.get("window_bp"), cfg.data.get("window_stride_bp"))
    if window is None:
        return dict(splits)
    check_window_fits(tokenizer, window[0], max_tokens, "data.window_bp")
    out = {name: split_into_windows(records, *window).records for name, records in splits.items() if name != "test"}
    out["test"] = splits["test"]
    return out


def adapter_base(cfg: DictConfig, adapter: str, pretrained: Path | None) -> Path | None:
    """The weights an adapter trains on: the ``init_from`` run, or the Hugging Face checkpoint folder of
    ``model.pretrained`` (resolved before `pin_pretrained` clears it); None without an adapter."""
    if adapter == "none":
        return None
    base = pretrained or (resolve_pretrained(cfg.model.pretrained) if cfg.model.get("pretrained") else None)
    if base is None:
        raise BiolmError(
            f"adapter={adapter}: an adapter trains on top of pretrained weights; pass init_from=runs/<pretrain-run> "
            "or model.pretrained=<checkpoint folder>"
        )
    return base


def adopt_pretrained(cfg: DictConfig) -> Path:
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

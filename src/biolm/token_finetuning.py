"""Fine-tuning with one label per base: `TokenRecipe`, the `biolm.training` recipe that
``task=token_classification`` selects (``configs/task/token_classification.yaml``).

Data: ``data.train`` / ``data.val`` / ``data.test``, each a table with a per-base label string or a
FASTA file with ``data.<split>_bed`` intervals (`biolm.data.base_labels`). Every sequence must fit
the model whole (no windows yet). The run folder is a fine-tune's (config, tokenizer, labels,
weights, metrics, report), with ``test_metrics.json`` over the test tokens and the predicted
segments of the test sequences in ``test_segments.tsv``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import lightning as L
import numpy as np
from omegaconf import DictConfig

from biolm.data.base_labels import BaseLabels, encode_bases, read_base_labels
from biolm.data.datasets import TokenDataset, tokenize_records
from biolm.data.io import write_table
from biolm.errors import BiolmError
from biolm.finetuning import adapter_base, adopt_pretrained, data_module, keep_best_weights, plan_schedule, publish_run, stage_run, staged_job
from biolm.models import pin_pretrained
from biolm.models.adapters import adapter_name, apply_adapter
from biolm.runs import count_parameters, instantiate_config, load_run, load_trunk, token_limit
from biolm.tasks.metrics import metric_mode
from biolm.tasks.objectives import objective_class
from biolm.tasks.sequence import SequenceTask
from biolm.tasks.token_classification import PaddedTargetsCollator, TokenClassification, token_metrics
from biolm.tokenizers import load_tokenizer
from biolm.training import Job, Recipe

log = logging.getLogger(__name__)
SPLITS = ("train", "val", "test")


def _read_splits(cfg: DictConfig) -> dict[str, BaseLabels]:
    data = cfg.data
    missing = [f"data.{name}" for name in SPLITS if not data.get(name)]
    if missing:
        raise BiolmError(f"{', '.join(missing)}: token classification needs train, val and test files (no held-out split is drawn)")
    return {
        name: read_base_labels(
            str(data[name]),
            field_name=f"data.{name}",
            sequence_column=data.sequence_column,
            label_column=data.label_column,
            id_column=data.get("id_column"),
            bed=data.get(f"{name}_bed"),
            background=str(data.get("background") or "other"),
        )
        for name in SPLITS
    }


def _targets(objective: TokenClassification, tokenizer, split: BaseLabels, tokens, max_tokens: int | None) -> list[np.ndarray]:
    out = []
    for i, sequence in enumerate(split.records.sequences):
        if max_tokens is not None and len(tokens[i]) > max_tokens:
            raise BiolmError(
                f"{split.records.where(i)}: {len(tokens[i])} tokens, more than the model's {max_tokens}; "
                "token classification takes whole sequences: cut them shorter"
            )
        bases = encode_bases(split.runs[i], objective.classes, split.records.where(i))
        out.append(objective.token_targets(tokenizer, sequence, bases))
    return out


class TokenRecipe(Recipe):
    """Per-base labels, learned per token (see the module docstring)."""

    def prepare(self, cfg: DictConfig) -> Job:
        pretrained = adopt_pretrained(cfg) if cfg.get("init_from") else None
        adapter = adapter_name(cfg.get("adapter"))
        base = adapter_base(cfg, adapter, pretrained)
        augment = cfg.data.get("augment") or {}
        if float(augment.get("rc_prob", 0.0)) or float(augment.get("substitution_rate", 0.0)):
            raise BiolmError("data.augment: not supported for token classification yet (labels would have to follow the reverse complement)")
        if cfg.data.get("window_bp") or (cfg.get("predict") or {}).get("rc_average"):
            raise BiolmError("data.window_bp / predict.rc_average: not supported for token classification yet; give sequences that fit the model whole")
        tokenizer = load_tokenizer(pretrained / "tokenizer") if pretrained else instantiate_config(cfg.tokenizer, "tokenizer")
        objective_cls = objective_class(cfg.task)
        if not issubclass(objective_cls, TokenClassification):
            raise BiolmError(f"task._target_: {objective_cls.__name__} is not a token-classification objective; TokenRecipe needs one")
        splits = _read_splits(cfg)
        objective = objective_cls.fit_classes(splits["train"].names())
        model = objective.build_model(cfg.model, tokenizer.vocab_size, tokenizer.pad_id)
        stride = int(getattr(model.trunk, "token_stride", 1))
        if stride > 1:
            log.warning("%s pools by %d tokens, so neighbouring tokens share features; per-base labels want per-token "
                        "resolution (e.g. model=cnn_dilated, or model.trunk.pool_size=1)", type(model.trunk).__name__, stride)
        pin_pretrained(cfg.model, model.trunk)
        if pretrained:
            load_trunk(model, pretrained)
        model = apply_adapter(model, cfg.get("adapter"))
        max_tokens = token_limit(model, cfg.data)
        tokens = {name: tokenize_records(tokenizer, split.records, None) for name, split in splits.items()}
        targets = {name: _targets(objective, tokenizer, split, tokens[name], max_tokens) for name, split in splits.items()}
        trainable, total = count_parameters(model)
        log.info(
            "data: %s | labels per base: %s | model: %s trainable of %s parameters",
            ", ".join(f"{n} {len(s)} ({sum(len(seq) for seq in s.records.sequences):,} bp)" for n, s in splits.items()),
            objective.classes,
            f"{trainable:,}",
            f"{total:,}",
        )
        plan = plan_schedule(cfg, len(tokens["train"]))  # before stage_run writes config.yaml: it records the epochs
        final, stage, resume_from = stage_run(cfg, tokenizer, objective.labels, base)
        monitor, mode = f"val/{cfg.task.monitor}", metric_mode(cfg.task.monitor)
        weights = objective.class_weights(targets["train"], cfg.task.get("class_weights"))
        task = SequenceTask(model, objective, monitor=cfg.task.monitor, class_weights=weights, seed=int(cfg.seed), **cfg.optim)
        datamodule = data_module(cfg, tokenizer, {name: TokenDataset(tokens[name], targets[name]) for name in ("train", "val")})
        datamodule.collate = PaddedTargetsCollator(tokenizer.pad_id)
        return staged_job(task, datamodule, stage, final, resume_from, monitor, mode, plan, splits=splits, tokens=tokens, targets=targets, sizes=(trainable, total))

    def finish(self, cfg: DictConfig, trainer: L.Trainer, job: Job) -> Path:
        splits, tokens, targets = job.state["splits"], job.state["tokens"], job.state["targets"]
        keep_best_weights(job)
        run = load_run(job.folder)
        metrics = token_metrics(run, tokens["test"], targets["test"], int(cfg.data.get("eval_batch_size") or cfg.data.batch_size))
        segments = run.objective.predict_table(run, splits["test"].records, tokens=tokens["test"])
        write_table(segments, str(job.folder / "test_segments.tsv"))
        return publish_run(job, metrics, {name: len(s) for name, s in splits.items()}, *job.state["sizes"])

"""The public Python API: fine-tune, evaluate and predict.

The CLI and the service are thin layers over these functions; there is one prediction path
(`predict_records`) behind `predict`, `evaluate` and the test metrics written at the end of
`finetune`, so the three can never disagree.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import lightning as L
import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig, OmegaConf

from biolm.data.datasets import (
    Collator,
    SequenceDataModule,
    TokenDataset,
    encode_labels,
    load_splits,
    tokenize_records,
)
from biolm.data.io import SequenceRecords, read_records, write_table
from biolm.data.labels import LabelSpec
from biolm.errors import BiolmError
from biolm.models import build_sequence_model
from biolm.pretraining import pretrain, train_tokenizer
from biolm.runs import (
    Run,
    build_trainer,
    count_parameters,
    default_run_name,
    instantiate_config,
    load_run,
    publish,
    quiet_lightning_warnings,
    staging_dir,
    token_limit,
    write_json,
)
from biolm.tasks.callbacks import SafetensorsCheckpoint, save_weights
from biolm.tasks.metrics import (
    build_metrics,
    metric_mode,
    metric_targets,
    predictions_from_logits,
)
from biolm.tasks.sequence import SequenceTask
from biolm.tokenizers import load_tokenizer

log = logging.getLogger(__name__)



__all__ = ["finetune", "pretrain", "train_tokenizer", "evaluate", "predict", "predict_records", "compare_runs", "load_run", "Run"]


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
    tokenizer = load_tokenizer(pretrained / "tokenizer") if pretrained else instantiate_config(cfg.tokenizer, "tokenizer")
    splits = load_splits(cfg.data, cfg.task.type)
    train = splits["train"]
    spec = LabelSpec.fit(
        cfg.task.type,
        train.labels,
        train.where,
        delimiter=cfg.data.label_delimiter,
        positive_label=cfg.task.get("positive_label"),
    )
    targets = {name: encode_labels(spec, records) for name, records in splits.items()}
    model = build_sequence_model(cfg.model, tokenizer.vocab_size, tokenizer.pad_id, spec.num_outputs)
    if pretrained:
        _load_trunk(model, pretrained)
    max_tokens = token_limit(model, cfg.data)
    tokens = {name: tokenize_records(tokenizer, records, max_tokens) for name, records in splits.items()}
    trainable, total = count_parameters(model)
    log.info(
        "data: %s | labels: %s %s | model: %s trainable of %s parameters (%.1f%%)",
        ", ".join(f"{n} {len(r)}" for n, r in splits.items()),
        spec.task,
        spec.classes or "(values)",
        f"{trainable:,}",
        f"{total:,}",
        100.0 * trainable / max(total, 1),
    )

    final = Path(cfg.output_dir) / _run_name(cfg)
    stage = staging_dir(final, bool(cfg.get("overwrite", False)))
    OmegaConf.save(cfg, stage / "config.yaml", resolve=True)
    tokenizer.save(stage / "tokenizer")
    spec.to_json(stage / "labels.json")

    monitor = f"val/{cfg.task.monitor}"
    mode = metric_mode(cfg.task.monitor)
    task = SequenceTask(model, spec, monitor=cfg.task.monitor, **cfg.optim)
    datamodule = SequenceDataModule(
        {name: TokenDataset(tokens[name], targets[name]) for name in ("train", "val")},
        tokenizer.pad_id,
        batch_size=int(cfg.data.batch_size),
        num_workers=int(cfg.data.num_workers),
        eval_batch_size=int(cfg.data.get("eval_batch_size") or cfg.data.batch_size),
    )
    checkpoint = SafetensorsCheckpoint(stage, monitor, mode)
    with quiet_lightning_warnings():
        trainer = build_trainer(cfg, stage, [checkpoint], early_stopping=(monitor, mode))
        trainer.fit(task, datamodule=datamodule)
    if trainer.interrupted:
        raise BiolmError(f"training interrupted; the unfinished run is left in {stage}")
    if checkpoint.best is None:
        log.warning("%s never produced a finite value; keeping the last weights", monitor)
        save_weights(model, stage / "model.safetensors")

    run = load_run(stage)
    test = splits["test"]
    frame = predict_records(run, test, tokens=tokens["test"])
    metrics = compute_metrics(run.labels, frame, targets["test"])
    metrics.update({"n_test": len(test), "monitor": monitor, "best_val": checkpoint.best, "best_epoch": checkpoint.best_epoch})
    write_json(metrics, stage / "test_metrics.json")
    frame.insert(1, "label", test.labels)
    write_table(frame, str(stage / "test_predictions.csv"))
    publish(stage, final)
    log.info("run written to %s", final)
    return final


def _adopt_pretrained(cfg: DictConfig) -> Path:
    """Point ``cfg.tokenizer`` and ``cfg.model.trunk`` at those of the pretrained run ``cfg.init_from``."""
    from omegaconf import open_dict

    from biolm.runs import check_targets

    source = Path(cfg.init_from)
    missing = [name for name in ("config.yaml", "tokenizer", "model.safetensors") if not (source / name).exists()]
    if missing:
        raise BiolmError(f"init_from: {source} is not a finished biolm run folder (missing: {', '.join(missing)})")
    source_cfg = OmegaConf.load(source / "config.yaml")
    check_targets(source_cfg.model, f"{source / 'config.yaml'} model")
    with open_dict(cfg):
        cfg.tokenizer = source_cfg.tokenizer
        cfg.model.trunk = source_cfg.model.trunk
    log.info("init_from %s: its tokenizer and trunk (%s) replace tokenizer= and model.trunk", source, source_cfg.model.trunk._target_)
    return source


def _load_trunk(model: torch.nn.Module, source: Path) -> None:
    """Copy the ``trunk.*`` weights of a pretrained run into ``model.trunk`` (strict)."""
    from safetensors.torch import load_file

    state = load_file(str(source / "model.safetensors"))
    trunk_state = {key[len("trunk.") :]: value for key, value in state.items() if key.startswith("trunk.")}
    result = model.trunk.load_state_dict(trunk_state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise BiolmError(
            f"init_from: {source} weights do not fit the trunk (missing {result.missing_keys[:3]}, unexpected {result.unexpected_keys[:3]})"
        )
    log.info("init_from %s: loaded %d trunk tensors", source, len(trunk_state))


@torch.inference_mode()
def _logits(run: Run, tokens: Sequence[np.ndarray], batch_size: int) -> torch.Tensor:
    """Forward passes in length-sorted batches (little padding); output in input order."""
    collate = Collator(run.tokenizer.pad_id)
    order = np.argsort([len(t) for t in tokens], kind="stable")
    out = torch.empty((len(tokens), run.labels.num_outputs), dtype=torch.float32)
    for start in range(0, len(order), batch_size):
        pick = order[start : start + batch_size]
        batch = collate([(tokens[i], None, int(i)) for i in pick])
        logits = run.model(batch["input_ids"], batch["attention_mask"]).logits
        out[torch.from_numpy(pick)] = logits.float()
    return out


def predict_records(run: Run, records: SequenceRecords, batch_size: int = 64, tokens: Sequence[np.ndarray] | None = None) -> pd.DataFrame:
    """Predict every record of a file-backed table (errors name the record's file and line)."""
    if tokens is None:
        tokens = tokenize_records(run.tokenizer, records, run.max_tokens)
    spec = run.labels
    values = predictions_from_logits(spec.task, _logits(run, tokens, batch_size), spec.mean, spec.std).numpy()
    frame = pd.DataFrame({"id": records.ids})
    if spec.task == "regression":
        frame["prediction"] = values
        return frame
    if spec.task == "binary":
        frame[f"prob_{spec.classes[0]}"] = 1.0 - values
        frame[f"prob_{spec.classes[1]}"] = values
        frame["prediction"] = np.where(values >= 0.5, spec.classes[1], spec.classes[0])
        return frame
    for j, name in enumerate(spec.classes):
        frame[f"prob_{name}"] = values[:, j]
    if spec.task == "multiclass":
        frame["prediction"] = [spec.classes[j] for j in values.argmax(axis=1)]
    else:
        frame["prediction"] = [spec.delimiter.join(spec.classes[j] for j in np.flatnonzero(row >= 0.5)) for row in values]
    return frame


def predict(run: Run | str | Path, sequences: Sequence[str], ids: Sequence[str] | None = None, batch_size: int = 64) -> pd.DataFrame:
    """Predict raw sequences with a trained run.

    Args:
        run: a loaded `Run` or a run folder.
        sequences: nucleotide strings (any case; the run's tokenizer policy applies to other letters).
        ids: optional ids (default ``seq0``, ``seq1``, ...).
        batch_size: sequences per forward pass.

    Returns:
        One row per sequence: ``id``, ``prob_<class>`` columns (classification) and ``prediction``.
    """
    if not isinstance(run, Run):
        run = load_run(run)
    ids = list(ids) if ids is not None else [f"seq{i}" for i in range(len(sequences))]
    if len(ids) != len(sequences):
        raise BiolmError(f"ids: {len(ids)} ids for {len(sequences)} sequences")
    records = SequenceRecords("sequences", ids, list(sequences), None, list(range(len(sequences))), "index")
    return predict_records(run, records, batch_size)


def compute_metrics(spec: LabelSpec, frame: pd.DataFrame, targets: np.ndarray) -> dict[str, float]:
    """Metrics of a prediction table against encoded targets (same metrics as validation)."""
    if spec.task == "regression":
        preds = torch.tensor(frame["prediction"].to_numpy(), dtype=torch.float32)
    elif spec.task == "binary":
        preds = torch.tensor(frame[f"prob_{spec.classes[1]}"].to_numpy(), dtype=torch.float32)
    else:
        preds = torch.tensor(frame[[f"prob_{c}" for c in spec.classes]].to_numpy(), dtype=torch.float32)
    target = metric_targets(spec.task, torch.from_numpy(np.asarray(targets)), spec.mean, spec.std)
    metrics = build_metrics(spec.task, max(len(spec.classes), 1))
    return {name: float(value) for name, value in metrics(preds, target).items()}


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
    metrics = compute_metrics(run.labels, frame, targets)
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
        rows.append({"model": Path(run).name, "source": "this run", **{k: v for k, v in metrics.items() if isinstance(v, float) and k not in ("best_val",)}})
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

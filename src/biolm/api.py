"""The public Python API: fine-tune, evaluate and predict.

The CLI and the service are thin layers over these functions; there is one prediction path
(`predict_records`) behind `predict`, `evaluate` and the test metrics written at the end of
`finetune`, so the three can never disagree.
"""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import lightning as L
import numpy as np
import pandas as pd
import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from biolm.data.datasets import (
    SequenceDataModule,
    TokenDataset,
    encode_labels,
    load_splits,
    tokenize_records,
)
from biolm.data.io import SequenceRecords, atomic_path, read_records, write_table
from biolm.data.labels import LabelSpec
from biolm.errors import BiolmError
from biolm.models import build_sequence_model
from biolm.runs import Run, load_run, publish, staging_dir
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

__all__ = ["finetune", "pretrain", "evaluate", "predict", "predict_records", "compare_runs", "load_run", "Run"]


def _instantiate(node: DictConfig, field: str, **kwargs):
    try:
        return instantiate(node, **kwargs)
    except InstantiationException as err:
        cause = err.__cause__
        while cause is not None and not isinstance(cause, BiolmError) and cause.__cause__ is not None:
            cause = cause.__cause__
        if isinstance(cause, BiolmError):
            raise cause from None
        if isinstance(cause, (FileNotFoundError, OSError)):
            raise BiolmError(f"{field}: {cause}") from None
        message = str(cause or err).strip().splitlines()[0]
        raise BiolmError(f"{field}: cannot build it from the config: {message}") from None


def _count_parameters(model: torch.nn.Module) -> tuple[int, int]:
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, total


def _run_name(cfg: DictConfig) -> str:
    if cfg.get("run_name"):
        return str(cfg.run_name)
    return f"{cfg.task.type}-{datetime.now():%Y%m%d-%H%M%S}"


def finetune(cfg: DictConfig) -> Path:
    """Train a sequence-level model as configured and write its run folder.

    Args:
        cfg: the composed ``finetune`` config (tokenizer, model, data, task, trainer, optim, ...).

    Returns:
        The run folder (with weights, tokenizer, labels, metrics and test metrics).
    """
    L.seed_everything(int(cfg.seed), workers=True, verbose=False)
    pretrained = _adopt_pretrained(cfg) if cfg.get("init_from") else None
    tokenizer = load_tokenizer(pretrained / "tokenizer") if pretrained else _instantiate(cfg.tokenizer, "tokenizer")
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
    max_tokens = _max_tokens(model, cfg)
    tokens = {name: tokenize_records(tokenizer, records, max_tokens) for name, records in splits.items()}
    trainable, total = _count_parameters(model)
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
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=".*number of training batches.*")
        warnings.filterwarnings("ignore", message=".*exists and is not empty.*")
        trainer = _build_trainer(cfg, stage, [checkpoint], early_stopping=(monitor, mode))
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
    _write_json(metrics, stage / "test_metrics.json")
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


def _max_tokens(model: torch.nn.Module, cfg: DictConfig) -> int | None:
    limits = [v for v in (getattr(model, "max_tokens", None), cfg.data.get("max_tokens")) if v]
    return int(min(limits)) if limits else None


def _build_trainer(cfg: DictConfig, run_dir: Path, callbacks: list[L.Callback], early_stopping: tuple[str, str] | None) -> L.Trainer:
    """A Lightning Trainer from ``cfg.trainer`` that logs ``metrics.csv`` into the run folder."""
    from lightning.pytorch.callbacks import (
        EarlyStopping,
        LearningRateMonitor,
        RichProgressBar,
    )
    from lightning.pytorch.loggers import CSVLogger

    callbacks = [*callbacks, LearningRateMonitor(logging_interval="step")]
    if early_stopping is not None and cfg.get("early_stopping", {}).get("patience"):
        monitor, mode = early_stopping
        callbacks.append(EarlyStopping(monitor=monitor, mode=mode, patience=int(cfg.early_stopping.patience)))
    if cfg.get("progress_bar", True):
        callbacks.append(RichProgressBar(leave=True))
    trainer_kwargs = OmegaConf.to_container(cfg.trainer, resolve=True)
    return L.Trainer(
        **trainer_kwargs,
        default_root_dir=str(run_dir),
        logger=CSVLogger(save_dir=str(run_dir), name="", version=""),
        callbacks=callbacks,
        enable_checkpointing=any(type(c).__name__ == "ModelCheckpoint" for c in callbacks),
        enable_progress_bar=bool(cfg.get("progress_bar", True)),
    )


@torch.inference_mode()
def _logits(run: Run, tokens: Sequence[np.ndarray], batch_size: int) -> torch.Tensor:
    """Forward passes in length-sorted batches (little padding); output in input order."""
    from biolm.data.datasets import Collator

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


def _write_json(payload: dict, path: Path) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=2) + "\n")


def pretrain(cfg: DictConfig) -> Path:
    """Pretrain a model on FASTA genomes (masked or causal LM) and write its run folder.

    The run folder is written in place (it holds ``checkpoints/last.ckpt`` to resume from with
    ``ckpt=last``); every file in it is written atomically, and ``pretrain_metrics.json`` marks
    a finished run.

    Args:
        cfg: the composed ``pretrain`` config.

    Returns:
        The run folder.
    """
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.utilities import rank_zero_only

    from biolm.data.pretraining import GenomeDataModule
    from biolm.models import build_language_model
    from biolm.tasks.language_model import LanguageModelTask

    L.seed_everything(int(cfg.seed), workers=True, verbose=False)
    tokenizer = _instantiate(cfg.tokenizer, "tokenizer")
    datamodule = GenomeDataModule(cfg.data, tokenizer, int(cfg.seed))
    model = build_language_model(cfg.model, tokenizer.vocab_size, tokenizer.pad_id)
    window_tokens = len(tokenizer.encode_batch(["A" * int(cfg.data.window_bp)])[0])
    if model.max_tokens is not None and window_tokens > model.max_tokens:
        raise BiolmError(
            f"data.window_bp: {cfg.data.window_bp} bp is {window_tokens} tokens, more than the model's limit of "
            f"{model.max_tokens}; lower data.window_bp or raise the model's maximum length"
        )
    run_dir = Path(cfg.output_dir) / (cfg.get("run_name") or f"pretrain-{cfg.objective.name}-{datetime.now():%Y%m%d-%H%M%S}")
    resume_from = _resume_checkpoint(cfg, run_dir)
    # Under DDP, Lightning starts the other ranks by re-running this command: only rank 0 prepares the folder.
    if resume_from is None and rank_zero_only.rank == 0:
        if run_dir.exists() and not cfg.get("overwrite"):
            raise BiolmError(f"run_name: {run_dir} already exists; pass ckpt=last to resume it, overwrite=true to replace it, or another run_name=")
        if run_dir.exists():
            import shutil

            shutil.rmtree(run_dir)
        run_dir.mkdir(parents=True)
        OmegaConf.save(cfg, run_dir / "config.yaml", resolve=True)
        tokenizer.save(run_dir / "tokenizer")
    trainable, total = _count_parameters(model)
    log.info("model: %s trainable of %s parameters | objective: %s | run: %s", f"{trainable:,}", f"{total:,}", cfg.objective.name, run_dir)

    task = LanguageModelTask(
        model,
        tokenizer,
        objective=cfg.objective.name,
        mlm_probability=float(cfg.objective.get("mlm_probability", 0.15)),
        seed=int(cfg.seed),
        **cfg.optim,
    )
    best = SafetensorsCheckpoint(run_dir, "val/bits_per_base", "min")
    resume = ModelCheckpoint(dirpath=str(run_dir / "checkpoints"), save_last=True, save_top_k=0, every_n_epochs=1, save_on_train_epoch_end=True)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=".*exists and is not empty.*")
        trainer = _build_trainer(cfg, run_dir, [best, resume], early_stopping=None)
        trainer.fit(task, datamodule=datamodule, ckpt_path=str(resume_from) if resume_from else None)
    if trainer.interrupted:
        raise BiolmError(f"training interrupted; resume with ckpt=last (run folder {run_dir})")
    if not trainer.is_global_zero:
        return run_dir
    if best.best is None:
        save_weights(model, run_dir / "model.safetensors")
    metrics = {key: float(value) for key, value in trainer.callback_metrics.items() if key.startswith("val/")}
    metrics.update({"best_val_bits_per_base": best.best, "best_epoch": best.best_epoch, "global_step": trainer.global_step})
    order = int(cfg.get("baseline", {}).get("markov_order", 0) or 0)
    if order and datamodule.val_regions:
        metrics[f"markov{order}_val_bits_per_base"] = _markov_baseline(datamodule, order)
    _write_json(metrics, run_dir / "pretrain_metrics.json")
    return run_dir


def _resume_checkpoint(cfg: DictConfig, run_dir: Path) -> Path | None:
    ckpt = cfg.get("ckpt")
    if not ckpt:
        return None
    path = run_dir / "checkpoints" / "last.ckpt" if ckpt == "last" else Path(ckpt)
    if not path.exists():
        raise BiolmError(f"ckpt: no checkpoint at {path} (ckpt=last resumes <output_dir>/<run_name>/checkpoints/last.ckpt)")
    return path


def _markov_baseline(datamodule, order: int) -> float:
    """Bits/base of an order-k Markov chain fitted on the training regions, on the held-out ones."""
    from biolm.models.markov import MarkovChain

    def pieces(regions):
        return [datamodule.genome[r.contig][r.start : r.end] for r in regions]

    chain = MarkovChain(order=order).fit(pieces(datamodule.train_regions))
    return float(chain.bits_per_base(pieces(datamodule.val_regions)))


def train_tokenizer(fasta, vocab_size: int, output: str, chunk_bp: int = 1000, max_bp: int | None = None):
    """Train a DNABERT-2-style BPE tokenizer on genome chunks and save it to ``output``.

    Args:
        fasta: one FASTA path or a list of them.
        vocab_size: vocabulary size, special tokens included.
        output: folder to write (``tokenizer.json`` + ``biolm_tokenizer.json``).
        chunk_bp: genomes are cut into chunks of this length, and at runs of N.
        max_bp: use at most this many bases.

    Returns:
        The trained `BpeTokenizer`.
    """
    import re

    from biolm.data.genome import load_genome
    from biolm.tokenizers import BpeTokenizer

    if vocab_size < 10:
        raise BiolmError(f"vocab_size: {vocab_size} is too small (the 5 special tokens and A, C, G, T come first)")
    genome = load_genome([fasta] if isinstance(fasta, str) else list(fasta))
    chunks: list[str] = []
    used = 0
    for seq in genome.values():
        text = seq.tobytes().decode("ascii")
        for piece in re.split(r"N+", text):
            for start in range(0, len(piece), chunk_bp):
                chunk = piece[start : start + chunk_bp]
                if max_bp is not None and used >= int(max_bp):
                    break
                chunks.append(chunk)
                used += len(chunk)
    tokenizer = BpeTokenizer.train(chunks, vocab_size=vocab_size)
    tokenizer.save(output)
    return tokenizer

"""The run folder: what training writes and what every consumer reads.

Layout of ``runs/<name>/``::

    config.yaml          resolved Hydra config of the run
    tokenizer/           tokenizer files in Hugging Face formats + biolm_tokenizer.json
    labels.json          task type and label map (`LabelSpec`)
    model.safetensors    best weights (by the monitored validation metric)
    adapter/             LoRA runs instead: peft adapter (LoRA + head) and base.json (the pretrained run + SHA-256)
    checkpoint.json      which epoch/step/metric value those weights come from
    metrics.csv          per-step / per-epoch training and validation log (Lightning CSVLogger)
    test_metrics.json    final test metrics
    test_predictions.csv per-record test predictions

`load_run` rebuilds the model from ``config.yaml`` and the safetensors weights; nothing is
unpickled, and only ``biolm.*`` classes may be named by ``_target_`` in a run's config.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import lightning as L
import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from safetensors.torch import load_file

from biolm.data.io import atomic_path
from biolm.data.labels import LabelSpec
from biolm.errors import BiolmError, find_user_error
from biolm.models import build_sequence_model
from biolm.tokenizers import load_tokenizer

REQUIRED_FILES = ("config.yaml", "labels.json", "model.safetensors", "tokenizer")


@dataclass
class Run:
    """A trained run loaded for inference.

    Attributes:
        path: the run folder.
        cfg: its resolved config.
        tokenizer: the tokenizer it was trained with.
        labels: its label space.
        model: the network in eval mode, on CPU.
    """

    path: Path
    cfg: DictConfig
    tokenizer: object
    labels: LabelSpec
    model: torch.nn.Module

    @property
    def max_tokens(self) -> int | None:
        """Longest token sequence the model accepts (the run's data.max_tokens or the model's limit)."""
        return token_limit(self.model, self.cfg.data)


RUN_STAMP_ENV = "BIOLM_RUN_STAMP"


def default_run_name(prefix: str) -> str:
    """``<prefix>-<date>-<time>``, the same in every DDP rank of one launch.

    Lightning starts ranks 1.. by re-running the command with the parent's environment, so the
    first rank's timestamp is passed down in ``$BIOLM_RUN_STAMP``. Ranks started by an external
    launcher on other nodes cannot share it: give multi-node runs an explicit ``run_name``.
    """
    stamp = os.environ.setdefault(RUN_STAMP_ENV, f"{datetime.now():%Y%m%d-%H%M%S}")
    return f"{prefix}-{stamp}"


def token_limit(model: torch.nn.Module, data_cfg: DictConfig) -> int | None:
    """The tighter of the model's own limit and ``data.max_tokens`` (None: no limit)."""
    limits = [v for v in (getattr(model, "max_tokens", None), data_cfg.get("max_tokens")) if v]
    return int(min(limits)) if limits else None


def check_window_fits(tokenizer, window_bp: int, max_tokens: int | None, field: str) -> None:
    """Refuse a window of ``window_bp`` bases whose tokens (specials included) exceed ``max_tokens``."""
    window_tokens = len(tokenizer.encode_batch(["A" * int(window_bp)])[0])
    if max_tokens is not None and window_tokens > max_tokens:
        raise BiolmError(
            f"{field}={window_bp}: {window_bp} bp is {window_tokens} tokens, more than the model's limit of {max_tokens}; "
            f"lower {field} or raise the model's maximum length"
        )


def check_targets(node, where: str) -> None:
    """Refuse run configs that would instantiate anything outside biolm."""
    if isinstance(node, DictConfig):
        for key, value in node.items():
            if key == "_target_" and not str(value).startswith("biolm."):
                raise BiolmError(f"{where}: _target_ {value!r} is not a biolm class; refusing to load this run")
            check_targets(value, where)


def load_run(path: str | Path) -> Run:
    """Load a run folder for evaluation or prediction (a LoRA run: its base weights, then its adapter).

    Raises:
        BiolmError: the folder is missing or incomplete.
    """
    from biolm.models.adapters import check_base, load_adapter

    run_dir = Path(path)
    if not run_dir.is_dir():
        raise BiolmError(f"run: no run folder at {run_dir}")
    adapter_dir = run_dir / "adapter"
    adapted = (adapter_dir / "adapter_model.safetensors").exists()
    required = [name for name in REQUIRED_FILES if not (adapted and name == "model.safetensors")]
    missing = [name for name in required if not (run_dir / name).exists()]
    if missing:
        raise BiolmError(f"run: {run_dir} is not a complete biolm run folder (missing: {', '.join(missing)})")
    cfg = OmegaConf.load(run_dir / "config.yaml")
    check_targets(cfg.model, f"{run_dir / 'config.yaml'} model")
    tokenizer = load_tokenizer(run_dir / "tokenizer")
    labels = LabelSpec.from_json(run_dir / "labels.json")
    model = build_sequence_model(cfg.model, tokenizer.vocab_size, tokenizer.pad_id, labels.num_outputs)
    if adapted:
        load_trunk(model, check_base(adapter_dir))
        model = load_adapter(model, adapter_dir)
    else:
        model.load_state_dict(load_file(str(run_dir / "model.safetensors")), strict=True)
    model.eval()
    return Run(run_dir, cfg, tokenizer, labels, model)


def load_trunk(model: torch.nn.Module, source: Path) -> None:
    """Copy the ``trunk.*`` weights of a pretrained run into ``model.trunk`` (every tensor must fit)."""
    state = load_file(str(Path(source) / "model.safetensors"))
    trunk_state = {key[len("trunk.") :]: value for key, value in state.items() if key.startswith("trunk.")}
    result = model.trunk.load_state_dict(trunk_state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise BiolmError(
            f"init_from: {source} weights do not fit the trunk (missing {result.missing_keys[:3]}, unexpected {result.unexpected_keys[:3]})"
        )


@dataclass
class LanguageModelRun:
    """A pretraining run (``biolm pretrain``) loaded for scoring.

    Attributes:
        path: the run folder.
        cfg: its resolved config.
        tokenizer: the tokenizer it was trained with.
        objective: ``mlm`` or ``clm``.
        model: the `LanguageModel` (trunk + LM head) in eval mode, on CPU.
    """

    path: Path
    cfg: DictConfig
    tokenizer: object
    objective: str
    model: torch.nn.Module


def load_language_model_run(path: str | Path) -> LanguageModelRun:
    """Load a pretraining run folder (``config.yaml`` with ``objective.name``, ``tokenizer/``, ``model.safetensors``).

    Raises:
        BiolmError: the folder is missing, incomplete, or not a pretraining run.
    """
    from biolm.models import build_language_model

    run_dir = Path(path)
    if not run_dir.is_dir():
        raise BiolmError(f"run: no run folder at {run_dir}")
    missing = [name for name in ("config.yaml", "model.safetensors", "tokenizer") if not (run_dir / name).exists()]
    if missing:
        raise BiolmError(f"run: {run_dir} is not a complete biolm pretraining run (missing: {', '.join(missing)})")
    cfg = OmegaConf.load(run_dir / "config.yaml")
    objective = OmegaConf.select(cfg, "objective.name")
    if objective not in ("mlm", "clm"):
        raise BiolmError(f"run: {run_dir / 'config.yaml'} has objective.name={objective!r}; a language-model run has mlm or clm")
    check_targets(cfg.model, f"{run_dir / 'config.yaml'} model")
    tokenizer = load_tokenizer(run_dir / "tokenizer")
    model = build_language_model(cfg.model, tokenizer.vocab_size, tokenizer.pad_id)
    model.load_state_dict(load_file(str(run_dir / "model.safetensors")), strict=True)
    model.eval()
    return LanguageModelRun(run_dir, cfg, tokenizer, str(objective), model)


def staging_dir(final: Path, overwrite: bool) -> Path:
    """A fresh hidden folder beside ``final`` to build the run in (renamed at the end)."""
    if final.exists() and not overwrite:
        raise BiolmError(f"run_name: {final} already exists; choose another run_name= or pass overwrite=true")
    staging = final.parent / f".{final.name}.incomplete"
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    return staging


def resume_checkpoint(cfg: DictConfig, run_dir: Path) -> Path | None:
    """The checkpoint named by ``cfg.ckpt`` (``last``: ``<run_dir>/checkpoints/last.ckpt``), or None.

    Raises:
        BiolmError: ``ckpt`` names a checkpoint that does not exist.
    """
    ckpt = cfg.get("ckpt")
    if not ckpt:
        return None
    path = run_dir / "checkpoints" / "last.ckpt" if ckpt == "last" else Path(ckpt)
    if not path.exists():
        hint = "" if cfg.get("run_name") else "; pass the run_name= of the interrupted run"
        raise BiolmError(f"ckpt: no checkpoint at {path} (ckpt=last resumes the checkpoints/last.ckpt of run_name=)" + hint)
    return path


def training_stage(final: Path, cfg: DictConfig) -> tuple[Path, Path | None]:
    """The hidden folder ``.<name>.incomplete`` that a training run is built in, and the checkpoint to resume.

    A new run gets a fresh folder; with ``ckpt=last`` the interrupted run's folder is kept and
    its ``checkpoints/last.ckpt`` returned. An interrupted run is never wiped by accident: starting
    the same ``run_name`` again without ``ckpt=last`` needs ``overwrite=true``.

    Raises:
        BiolmError: the finished run exists, or an interrupted one does and neither ``ckpt`` nor ``overwrite`` says what to do.
    """
    from lightning.pytorch.utilities import rank_zero_only

    staging = final.parent / f".{final.name}.incomplete"
    overwrite = bool(cfg.get("overwrite", False))
    resume_from = resume_checkpoint(cfg, staging)
    if resume_from is not None:
        if final.exists() and not overwrite:
            raise BiolmError(f"ckpt: {final} is already complete; nothing to resume (overwrite=true replaces it when the resumed run finishes)")
        return staging, resume_from
    if (staging / "checkpoints" / "last.ckpt").exists() and not overwrite:
        raise BiolmError(
            f"run_name: {staging} holds an interrupted run of this name; resume it with ckpt=last, or pass overwrite=true to start again"
        )
    # Under DDP, Lightning starts the other ranks by re-running the command: only rank 0 prepares the folder.
    if rank_zero_only.rank != 0:
        return staging, None
    return staging_dir(final, overwrite), None


def publish(staging: Path, final: Path) -> None:
    """Move a finished run into place (replacing an older run of the same name)."""
    if final.exists():
        old = final.parent / f".{final.name}.old"
        if old.exists():
            shutil.rmtree(old)
        final.rename(old)
        staging.rename(final)
        shutil.rmtree(old)
    else:
        staging.rename(final)


def instantiate_config(node: DictConfig, field: str, **kwargs):
    """`hydra.utils.instantiate`, with failures reported as `BiolmError` naming the config field."""
    try:
        return instantiate(node, **kwargs)
    except InstantiationException as err:
        user_error = find_user_error(err)
        if user_error is not None:
            raise user_error from None
        cause = err.__cause__
        while cause is not None and cause.__cause__ is not None:
            cause = cause.__cause__
        if isinstance(cause, (FileNotFoundError, OSError)):
            raise BiolmError(f"{field}: {cause}") from None
        message = str(cause or err).strip().splitlines()[0]
        raise BiolmError(f"{field}: cannot build it from the config: {message}") from None


def count_parameters(model: torch.nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, total


def build_trainer(cfg: DictConfig, run_dir: Path, callbacks: list[L.Callback], early_stopping: tuple[str, str] | None) -> L.Trainer:
    """A Lightning Trainer from ``cfg.trainer`` that logs ``metrics.csv`` into the run folder."""
    from lightning.pytorch.callbacks import LearningRateMonitor, RichProgressBar
    from lightning.pytorch.loggers import CSVLogger

    from biolm.tasks.callbacks import SkipUndefinedEarlyStopping

    callbacks = [*callbacks, LearningRateMonitor(logging_interval="step")]
    if early_stopping is not None and cfg.get("early_stopping", {}).get("patience"):
        monitor, mode = early_stopping
        # an epoch where the metric is undefined (NaN) on the validation set is skipped, not a reason to stop
        callbacks.append(SkipUndefinedEarlyStopping(monitor=monitor, mode=mode, patience=int(cfg.early_stopping.patience)))
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


@contextlib.contextmanager
def quiet_lightning_warnings() -> Iterator[None]:
    """Silence Lightning warnings that do not apply to our runs (in-memory data needs no workers;
    the run folder already holds config and tokenizer when the CSV logger opens it)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=".*number of training batches.*")
        warnings.filterwarnings("ignore", message=".*exists and is not empty.*")
        yield


def write_json(payload: dict, path: Path) -> None:
    """Write JSON atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=2) + "\n")


METRICS_BEFORE_RESUME = ".metrics_before_resume.csv"


def _checkpoint_step(path: Path) -> int:
    return int(torch.load(str(path), map_location="cpu", weights_only=False, mmap=True).get("global_step", 0))


def _checkpoint_epoch(path: Path) -> int:
    """1-based number of the last finished epoch in a Lightning checkpoint."""
    return int(torch.load(str(path), map_location="cpu", weights_only=False, mmap=True).get("epoch", 0)) + 1


def _keep_log_until(stage: Path, step: int) -> None:
    """Before resuming: set the training log aside, cut after the checkpoint's step (those rows are logged again)."""
    import pandas as pd

    parts = []
    for name in (METRICS_BEFORE_RESUME, "metrics.csv"):
        path = stage / name
        if path.exists():
            try:
                parts.append(pd.read_csv(path, on_bad_lines="skip"))
            except (pd.errors.EmptyDataError, pd.errors.ParserError):
                pass
            path.unlink()
    if parts:
        log = pd.concat(parts, ignore_index=True)
        if "step" in log:
            log = log[log["step"] <= step]
        log.to_csv(stage / METRICS_BEFORE_RESUME, index=False)


def _join_resumed_log(stage: Path) -> None:
    import pandas as pd

    before = stage / METRICS_BEFORE_RESUME
    if not before.exists():
        return
    parts = [pd.read_csv(before)]
    if (stage / "metrics.csv").exists():
        parts.append(pd.read_csv(stage / "metrics.csv"))
    with atomic_path(stage / "metrics.csv") as tmp:
        pd.concat(parts, ignore_index=True).to_csv(tmp, index=False)
    before.unlink()


def fit_run(trainer: L.Trainer, task: L.LightningModule, datamodule, stage: Path, resume_from: Path | None, resume_hint: str) -> None:
    """``trainer.fit`` with resuming and signals handled the same way for every training command.

    The training log (``metrics.csv``) of a resumed run continues the interrupted one's. A run
    stopped by SIGINT or SIGTERM raises `RunInterrupted` with a message that says how to resume;
    the staging folder keeps ``checkpoints/last.ckpt`` from the last finished epoch.

    Args:
        resume_hint: how the user resumes, e.g. ``ckpt=last``.
    """
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    from biolm.errors import RunInterrupted

    if resume_from is not None and trainer.is_global_zero:
        _keep_log_until(stage, _checkpoint_step(resume_from))
    signal_name = None
    try:
        trainer.fit(task, datamodule=datamodule, ckpt_path=str(resume_from) if resume_from else None)
    except SIGTERMException:
        signal_name = "SIGTERM"
    except SystemExit:
        # Lightning turns Ctrl-C into a graceful shutdown, then SystemExit(1)
        if not trainer.interrupted:
            raise
        signal_name = "SIGINT"
    if signal_name is None and trainer.interrupted:
        signal_name = "an interrupt"
    if signal_name is not None:
        last = stage / "checkpoints" / "last.ckpt"
        where = (
            f"the last checkpoint (end of epoch {_checkpoint_epoch(last)}) is {last}; resume with {resume_hint}"
            if last.exists()
            else f"it stopped before its first checkpoint (end of the first epoch); nothing to resume, run it again (the partial run is in {stage})"
        )
        raise RunInterrupted(f"training stopped by {signal_name} at epoch {trainer.current_epoch}, step {trainer.global_step}; {where}",
                             143 if signal_name == "SIGTERM" else 130)
    if trainer.is_global_zero:
        _join_resumed_log(stage)

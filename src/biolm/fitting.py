"""How a training command runs: the folder it is built in, the Lightning Trainer, resuming and signals.

Every training command (``finetune``, ``pretrain``, genomic prediction) builds its run in a hidden
staging folder and publishes it by renaming (`staging_dir`, `publish`), so a run folder is only
ever complete. Fine-tuning and pretraining share `build_trainer` and `fit_run`: the same
``metrics.csv`` logging, ``checkpoints/last.ckpt`` resuming (``ckpt=last``) and the same
one-line stop on SIGINT/SIGTERM.
"""

from __future__ import annotations

import contextlib
import shutil
import warnings
from collections.abc import Iterator
from pathlib import Path

import lightning as L
import torch
from omegaconf import DictConfig, OmegaConf

from biolm.data.io import atomic_path
from biolm.errors import BiolmError


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
        if cfg.get("ckpt") != "last" and rank_zero_only.rank == 0:
            # a checkpoint kept elsewhere starts a fresh folder: nothing of another interrupted run is mixed in
            if (staging / "checkpoints" / "last.ckpt").exists() and not overwrite:
                raise BiolmError(f"ckpt: {staging} holds an interrupted run of this name; resume that with ckpt=last, or pass overwrite=true")
            staging_dir(final, True)
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


def build_trainer(
    cfg: DictConfig, run_dir: Path, callbacks: list[L.Callback], early_stopping: tuple[str, str] | None, patience_from_epoch: int = 0
) -> L.Trainer:
    """A Lightning Trainer from ``cfg.trainer`` that logs ``metrics.csv`` into the run folder; early stopping
    (``(monitor, mode)``, ``cfg.early_stopping.patience``) counts epochs from ``patience_from_epoch`` on."""
    from lightning.pytorch.callbacks import LearningRateMonitor, RichProgressBar
    from lightning.pytorch.loggers import CSVLogger

    from biolm.tasks.callbacks import SkipUndefinedEarlyStopping

    callbacks = [*callbacks, LearningRateMonitor(logging_interval="step")]
    if early_stopping is not None and cfg.get("early_stopping", {}).get("patience"):
        monitor, mode = early_stopping
        # an epoch where the metric is undefined (NaN) on the validation set is skipped, not a reason to stop
        callbacks.append(
            SkipUndefinedEarlyStopping(monitor=monitor, mode=mode, patience=int(cfg.early_stopping.patience), from_epoch=patience_from_epoch)
        )
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


# Third-party warnings that say nothing about the user's run (regexes matched from the message start).
KNOWN_WARNINGS: tuple[str, ...] = (
    ".*does not have many workers",  # in-memory data sets need no DataLoader workers
    ".*number of training batches",  # a small data set logs less often than log_every_n_steps
    ".*exists and is not empty",  # the run folder already holds config and tokenizer when the CSV logger opens it
    r"`isinstance\(treespec, LeafSpec\)` is deprecated",  # torch's deprecation, triggered inside Lightning's own code
    "`is_gradient_checkpointing` is deprecated",  # transformers' deprecation, triggered inside peft's own code
)


@contextlib.contextmanager
def quiet_lightning_warnings() -> Iterator[None]:
    """Silence `KNOWN_WARNINGS` inside the block: the one place for them (the CLI wraps every command in it)."""
    with warnings.catch_warnings():
        for message in KNOWN_WARNINGS:
            warnings.filterwarnings("ignore", message=message)
        yield


METRICS_BEFORE_RESUME = ".metrics_before_resume.csv"


def _read_checkpoint(path: Path) -> dict:
    """A Lightning checkpoint (memory-mapped), or one `BiolmError` naming the ``ckpt=`` file."""
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=False, mmap=True)
    except Exception as err:  # noqa: BLE001 - torch raises RuntimeError, UnpicklingError, EOFError... for a bad file
        raise BiolmError(f"ckpt: {path} is not a readable checkpoint ({str(err).splitlines()[0][:160]})") from None
    if not isinstance(state, dict) or "state_dict" not in state:
        raise BiolmError(f"ckpt: {path} is not a Lightning training checkpoint (no state_dict); pass checkpoints/last.ckpt of a run")
    return state


def check_resumable(path: Path, task: L.LightningModule) -> None:
    """Refuse a checkpoint whose weights do not fit ``task`` (names and shapes), before training starts."""
    saved = _read_checkpoint(path)["state_dict"]
    expected = task.state_dict()
    missing = sorted(set(expected) - set(saved))
    unexpected = sorted(set(saved) - set(expected))
    wrong = sorted(k for k in set(saved) & set(expected) if tuple(saved[k].shape) != tuple(expected[k].shape))
    if missing or unexpected or wrong:
        raise BiolmError(
            f"ckpt: {path} does not fit this run's model (missing {len(missing)} {missing[:2]}, unexpected {len(unexpected)} "
            f"{unexpected[:2]}, wrong shape {len(wrong)} {wrong[:2]}); resume with the command that started the run"
        )


def _checkpoint_step(path: Path) -> int:
    return int(_read_checkpoint(path).get("global_step", 0))


def _checkpoint_epoch(path: Path) -> int:
    """1-based number of the last finished epoch in a Lightning checkpoint."""
    return int(_read_checkpoint(path).get("epoch", 0)) + 1


def _keep_log_until(stage: Path, step: int) -> None:
    """Before resuming: set the training log aside, cut after the checkpoint's step (those rows are logged again)."""
    import pandas as pd

    parts = []
    for name in (METRICS_BEFORE_RESUME, "metrics.csv"):
        path = stage / name
        if path.exists():
            with contextlib.suppress(pd.errors.EmptyDataError, pd.errors.ParserError):
                parts.append(pd.read_csv(path, on_bad_lines="skip"))
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

    if resume_from is not None:
        check_resumable(resume_from, task)
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

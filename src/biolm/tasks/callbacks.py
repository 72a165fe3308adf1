"""Lightning callbacks that write into the run folder.

`SafetensorsCheckpoint` keeps the best model weights (by a monitored validation metric) as
``model.safetensors`` in the run folder, written atomically, so that loading a run never
unpickles arbitrary objects. Both it and `SkipUndefinedEarlyStopping` ignore epochs whose
monitored metric is NaN (undefined on the validation set).
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import EarlyStopping
from safetensors.torch import save_file

from biolm.data.io import atomic_path

log = logging.getLogger(__name__)


def save_weights(module, path: str | Path) -> None:
    """Write a module's state dict as safetensors, atomically (shared tensors are cloned)."""
    state = {name: tensor.detach().cpu().contiguous().clone() for name, tensor in module.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(state, str(tmp))


def save_model(model, run_dir: str | Path) -> None:
    """The run's weights: ``adapter/`` for a LoRA model (base weights stay in the pretrained run), else ``model.safetensors``."""
    from biolm.models.adapters import is_adapted, save_adapter

    if is_adapted(model):
        save_adapter(model, Path(run_dir) / "adapter")
    else:
        save_weights(model, Path(run_dir) / "model.safetensors")


class SafetensorsCheckpoint(L.Callback):
    """Save ``task.model`` to ``<run>/model.safetensors`` (LoRA: ``<run>/adapter/``) whenever ``monitor`` improves.

    Args:
        run_dir: the run folder.
        monitor: logged metric name, e.g. ``val/auroc``.
        mode: ``max`` or ``min``.
    """

    def __init__(self, run_dir: str | Path, monitor: str, mode: str = "max"):
        self.run_dir = Path(run_dir)
        self.monitor = monitor
        self.mode = mode
        self.best: float | None = None
        self.best_epoch: int | None = None
        self.best_step: int | None = None

    def state_dict(self) -> dict:
        # carried by the resume checkpoint, so that a resumed run keeps the best value seen so far
        return {"best": self.best, "best_epoch": self.best_epoch, "best_step": self.best_step}

    def load_state_dict(self, state_dict: dict) -> None:
        self.best, self.best_epoch, self.best_step = state_dict.get("best"), state_dict.get("best_epoch"), state_dict.get("best_step")

    def _better(self, value: float) -> bool:
        if self.best is None:
            return True
        return value > self.best if self.mode == "max" else value < self.best

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        value = trainer.callback_metrics.get(self.monitor)
        if value is None:
            return
        value = float(value)
        if math.isnan(value) or not self._better(value):
            return
        self.best, self.best_epoch, self.best_step = value, trainer.current_epoch, trainer.global_step
        save_model(pl_module.model, self.run_dir)
        summary = {"monitor": self.monitor, "mode": self.mode, "best": value, "epoch": trainer.current_epoch, "step": trainer.global_step}
        with atomic_path(self.run_dir / "checkpoint.json") as tmp:
            tmp.write_text(json.dumps(summary, indent=2) + "\n")


class ResumeCheckpoint(L.Callback):
    """Write ``<dirpath>/last.ckpt`` (the full training state) at the end of every training epoch.

    Lightning's own ``ModelCheckpoint(save_top_k=0, save_last=True)`` never writes ``last``, and
    its files are written in place; this callback writes a temporary file and renames it, so a run
    killed at any moment (SIGKILL, a cluster's time limit) leaves either the previous complete
    checkpoint or the new one. The validation of the epoch has run by then, so the checkpoint
    carries the best-metric state of `SafetensorsCheckpoint` and early stopping.

    Args:
        dirpath: the folder to write ``last.ckpt`` into.
    """

    def __init__(self, dirpath: str | Path):
        self.dirpath = Path(dirpath)

    @property
    def path(self) -> Path:
        """The checkpoint file (``<dirpath>/last.ckpt``)."""
        return self.dirpath / "last.ckpt"

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or trainer.fast_dev_run:
            return
        tmp = self.dirpath / f".last.ckpt.{trainer.global_step}.tmp"
        if trainer.is_global_zero:
            self.dirpath.mkdir(parents=True, exist_ok=True)
        trainer.strategy.barrier()
        trainer.save_checkpoint(str(tmp))  # every rank calls it; the strategy writes on rank 0
        trainer.strategy.barrier()
        if trainer.is_global_zero:
            os.replace(tmp, self.path)


class SkipUndefinedEarlyStopping(EarlyStopping):
    """Lightning's `EarlyStopping`, except that an epoch whose monitored metric is NaN while the
    validation loss is finite (the metric is undefined on the validation set, e.g. an AUROC of a
    set with one class) neither improves nor counts towards ``patience``, and nor do the epochs before
    ``from_epoch`` (the learning-rate warm-up: a model still warming up is not stalled). A NaN or
    infinite loss (a diverged model) still stops training, as ``check_finite`` does.

    Args:
        loss: the logged validation loss that tells an undefined metric from a diverged model.
        from_epoch: the first epoch (0-based) that counts.
        **kwargs: `EarlyStopping` arguments (``monitor``, ``mode``, ``patience``, ...).
    """

    def __init__(self, loss: str = "val/loss", from_epoch: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.loss = loss
        self.from_epoch = int(from_epoch)

    def _run_early_stopping_check(self, trainer: L.Trainer) -> None:
        metrics = trainer.callback_metrics
        if trainer.current_epoch < self.from_epoch:
            loss = metrics.get(self.loss)
            # during the warm-up only a diverged model stops (every rank takes the same decision)
            if trainer.strategy.reduce_boolean_decision(loss is not None and not bool(torch.isfinite(loss).all()), all=False):
                log.warning("epoch %d: %s is not finite; training stops", trainer.current_epoch, self.loss)
                trainer.should_stop = True
            return
        value, loss = metrics.get(self.monitor), metrics.get(self.loss)
        undefined = value is not None and bool(torch.isnan(value).any()) and loss is not None and bool(torch.isfinite(loss).all())
        # every rank must take the same branch (the parent reduces its decision across ranks)
        if trainer.strategy.reduce_boolean_decision(undefined, all=True):
            log.info("epoch %d: %s is undefined on the validation set; early stopping skips this epoch", trainer.current_epoch, self.monitor)
            return
        super()._run_early_stopping_check(trainer)

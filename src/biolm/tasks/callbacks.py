"""Lightning callbacks that write into the run folder.

`SafetensorsCheckpoint` keeps the best model weights (by a monitored validation metric) as
``model.safetensors`` in the run folder, written atomically, so that loading a run never
unpickles arbitrary objects.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import lightning as L
from safetensors.torch import save_file

from biolm.data.io import atomic_path


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
        self.best, self.best_epoch = value, trainer.current_epoch
        save_model(pl_module.model, self.run_dir)
        summary = {"monitor": self.monitor, "mode": self.mode, "best": value, "epoch": trainer.current_epoch, "step": trainer.global_step}
        with atomic_path(self.run_dir / "checkpoint.json") as tmp:
            tmp.write_text(json.dumps(summary, indent=2) + "\n")

"""An epoch whose monitored metric is undefined (NaN) neither stops training nor picks the
checkpoint; a NaN validation loss (a diverged model) still stops it."""

from __future__ import annotations

import json
import math

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import EarlyStopping

from biolm.cli import compose
from biolm.fitting import build_trainer
from biolm.tasks.callbacks import SafetensorsCheckpoint, SkipUndefinedEarlyStopping

NAN = math.nan


class ScriptedScores(L.LightningModule):
    """Trains a linear layer; logs the scripted ``val/score`` and ``val/loss`` of each epoch."""

    def __init__(self, scores: list[float], losses: list[float] | None = None):
        super().__init__()
        self.model = torch.nn.Linear(2, 1)
        self.scores, self.losses = scores, losses or [1.0] * len(scores)

    def training_step(self, batch, batch_idx):
        return self.model(batch[0]).pow(2).mean()

    def validation_step(self, batch, batch_idx):
        pass

    def on_validation_epoch_end(self):
        epoch = self.current_epoch if not self.trainer.sanity_checking else 0
        self.log("val/score", self.scores[epoch])
        self.log("val/loss", self.losses[epoch])

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


def _fit(module, early_stopping, tmp_path) -> tuple[L.Trainer, SafetensorsCheckpoint]:
    checkpoint = SafetensorsCheckpoint(tmp_path, "val/score", "max")
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.ones(4, 2)), batch_size=2)
    trainer = L.Trainer(
        max_epochs=len(module.scores), accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, num_sanity_val_steps=0, callbacks=[checkpoint, early_stopping],
    )
    trainer.fit(module, loader, loader)
    return trainer, checkpoint


SCORES = [0.5, NAN, NAN, NAN, 0.6, 0.55]


def test_lightning_alone_stops_at_the_first_undefined_epoch(tmp_path):
    trainer, _ = _fit(ScriptedScores(SCORES), EarlyStopping("val/score", mode="max", patience=2), tmp_path)
    assert trainer.current_epoch == 2  # stopped after epoch 1, the first NaN


def test_undefined_epochs_are_skipped(tmp_path):
    trainer, checkpoint = _fit(ScriptedScores(SCORES), SkipUndefinedEarlyStopping(monitor="val/score", mode="max", patience=2), tmp_path)
    assert trainer.current_epoch == len(SCORES)  # NaN epochs count towards no patience
    assert (checkpoint.best, checkpoint.best_epoch) == (pytest.approx(0.6), 4)
    assert json.loads((tmp_path / "checkpoint.json").read_text())["epoch"] == 4


def test_a_nan_loss_still_stops_training(tmp_path):
    module = ScriptedScores(SCORES, losses=[1.0, NAN, 1.0, 1.0, 1.0, 1.0])
    trainer, checkpoint = _fit(module, SkipUndefinedEarlyStopping(monitor="val/score", mode="max", patience=2), tmp_path)
    assert trainer.current_epoch == 2 and checkpoint.best_epoch == 0


def test_build_trainer_uses_it(tmp_path):
    cfg = compose("finetune", ["trainer.accelerator=cpu", "progress_bar=false"])
    trainer = build_trainer(cfg, tmp_path, [], early_stopping=("val/auroc", "max"))
    stoppers = [c for c in trainer.callbacks if isinstance(c, EarlyStopping)]
    assert len(stoppers) == 1 and isinstance(stoppers[0], SkipUndefinedEarlyStopping) and stoppers[0].monitor == "val/auroc"

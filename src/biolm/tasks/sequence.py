"""One LightningModule for sequence-level tasks: binary, multi-class, multi-label, regression.

In: batches from `biolm.data.datasets.Collator` and a `SequenceModel` whose forward maps
``(B, L)`` token ids + mask to ``(B, num_outputs)`` logits.
Out: the loss per task type (BCE-with-logits, cross-entropy, multi-label BCE, MSE on
standardised targets), metrics logged as ``train/loss``, ``val/<metric>``, ``test/<metric>``,
and AdamW with linear warm-up then linear decay, stepped every optimiser step.
"""

from __future__ import annotations

import lightning as L
import torch
import torch.nn.functional as F

from biolm.data.labels import LabelSpec
from biolm.tasks.metrics import build_metrics, metric_targets, predictions_from_logits

NO_DECAY = ("bias", "norm", "LayerNorm", "layernorm", "embeddings")


class SequenceTask(L.LightningModule):
    """Trains a `SequenceModel` on one label type.

    Args:
        model: the trunk + head network.
        labels: the run's label space (task type, classes, regression scaling).
        lr: peak learning rate of AdamW.
        weight_decay: decoupled weight decay (not applied to biases, norms, embeddings).
        warmup_ratio: share of the optimiser steps spent warming up linearly from 0.
        betas: AdamW betas.
        monitor: the validation metric shown on the progress bar (e.g. ``auroc``).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        labels: LabelSpec,
        lr: float = 5e-4,
        weight_decay: float = 0.01,
        warmup_ratio: float = 0.1,
        betas: tuple[float, float] = (0.9, 0.98),
        monitor: str | None = None,
    ):
        super().__init__()
        self.model = model
        self.labels = labels
        self.lr = lr
        self.weight_decay = weight_decay
        self.warmup_ratio = warmup_ratio
        self.betas = tuple(betas)
        self.monitor = monitor
        num_classes = max(len(labels.classes), 1)
        self.val_metrics = build_metrics(labels.task, num_classes).clone(prefix="val/")
        self.test_metrics = build_metrics(labels.task, num_classes).clone(prefix="test/")

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids, attention_mask).logits

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The task's loss on raw logits ``(B, num_outputs)`` and encoded targets."""
        logits = logits.float()
        task = self.labels.task
        if task == "binary":
            return F.binary_cross_entropy_with_logits(logits[:, 0], targets.float())
        if task == "multiclass":
            return F.cross_entropy(logits, targets.long())
        if task == "multilabel":
            return F.binary_cross_entropy_with_logits(logits, targets.float())
        return F.mse_loss(logits[:, 0], targets.float())

    def training_step(self, batch, batch_idx):
        logits = self(batch["input_ids"], batch["attention_mask"])
        loss = self.loss(logits, batch["labels"])
        self.log("train/loss", loss, prog_bar=True, batch_size=len(logits))
        return loss

    def _eval_step(self, batch, metrics, stage: str) -> None:
        logits = self(batch["input_ids"], batch["attention_mask"])
        loss = self.loss(logits, batch["labels"])
        spec = self.labels
        preds = predictions_from_logits(spec.task, logits, spec.mean, spec.std)
        metrics.update(preds, metric_targets(spec.task, batch["labels"], spec.mean, spec.std))
        self.log(f"{stage}/loss", loss, prog_bar=True, batch_size=len(logits))
        shown = {f"{stage}/{self.monitor}"} if stage == "val" else set()
        for name, metric in metrics.items():
            self.log(name, metric, on_step=False, on_epoch=True, prog_bar=name in shown, batch_size=len(logits))

    def validation_step(self, batch, batch_idx):
        self._eval_step(batch, self.val_metrics, "val")

    def test_step(self, batch, batch_idx):
        self._eval_step(batch, self.test_metrics, "test")

    def configure_optimizers(self):
        return configure_adamw(self, self.lr, self.weight_decay, self.warmup_ratio, self.betas)


def configure_adamw(module: L.LightningModule, lr: float, weight_decay: float, warmup_ratio: float, betas) -> dict:
    """AdamW over ``module.model`` (no decay on biases, norms, embeddings) with a per-step schedule:
    linear warm-up over ``warmup_ratio`` of the optimiser steps, then linear decay to 0."""
    decay, no_decay = [], []
    for name, param in module.model.named_parameters():
        if not param.requires_grad:
            continue
        (no_decay if any(key in name for key in NO_DECAY) else decay).append(param)
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=lr,
        betas=tuple(betas),
    )
    total = max(int(module.trainer.estimated_stepping_batches), 1)
    warmup = int(total * warmup_ratio)

    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        return max(0.0, (total - step) / max(total - warmup, 1))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

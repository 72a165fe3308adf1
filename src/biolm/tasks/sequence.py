"""One LightningModule for sequence-level tasks, whatever their objective.

In: batches from `biolm.data.datasets.Collator`, a `SequenceModel` whose forward maps
``(B, L)`` token ids + mask to ``(B, num_outputs)`` logits, and the run's objective
(`biolm.tasks.objectives`: its loss, activation and metrics).
Out: ``train/loss``, ``val/<metric>``, ``test/<metric>`` logged, and AdamW with linear warm-up
then linear decay, stepped every optimiser step.
"""

from __future__ import annotations

import lightning as L
import numpy as np
import torch

from biolm.errors import BiolmError
from biolm.tasks.metrics import log_notes


class SequenceTask(L.LightningModule):
    """Trains a `SequenceModel` on one label type.

    Args:
        model: the trunk + head network.
        objective: the run's objective (`biolm.tasks.objectives`), with its fitted label space.
        lr: peak learning rate of AdamW.
        weight_decay: decoupled weight decay (not applied to biases, norms, embeddings).
        warmup_ratio: share of the optimiser steps spent warming up linearly from 0.
        betas: AdamW betas.
        monitor: the validation metric shown on the progress bar (e.g. ``auroc``).
        head_lr: learning rate of the sequence head (None: ``lr``), e.g. a higher one for a new
            head on a pretrained backbone.
        class_weights: per-class loss weights (`class_weights`), None for unweighted.
        seed: dropout is drawn from (seed, epoch, batch, rank) and the data module's training order (`biolm.data.bucketing.LengthBucketBatches`, a function of (seed, epoch))
            from (seed, epoch), so a run resumed from an epoch's checkpoint continues as the
            uninterrupted run would have.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        objective,
        lr: float = 5e-4,
        weight_decay: float = 0.01,
        warmup_ratio: float = 0.1,
        betas: tuple[float, float] = (0.9, 0.98),
        monitor: str | None = None,
        head_lr: float | None = None,
        class_weights: torch.Tensor | None = None,
        seed: int = 0,
    ):
        super().__init__()
        self.model = model
        self.objective = objective
        self.labels = objective.labels
        self.lr = lr
        self.weight_decay = weight_decay
        self.warmup_ratio = warmup_ratio
        self.betas = tuple(betas)
        self.monitor = monitor
        self.head_lr = head_lr
        self.seed = seed
        self.register_buffer("class_weights", None if class_weights is None else torch.as_tensor(class_weights, dtype=torch.float32), persistent=False)
        self.val_metrics = objective.metrics("validation set").clone(prefix="val/")
        self.test_metrics = objective.metrics("test set").clone(prefix="test/")
        self.reported_notes: set[str] = set()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids, attention_mask).logits

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The objective's loss on raw logits ``(B, num_outputs)`` and encoded targets."""
        return self.objective.loss(logits, targets, self.class_weights)

    def on_train_batch_start(self, batch, batch_idx) -> None:
        # dropout drawn from (seed, epoch, batch, rank); the data module draws the order (see `seed`)
        torch.manual_seed(hash((self.seed, self.current_epoch, batch_idx, self.global_rank)) % (2**63))

    def training_step(self, batch, batch_idx):
        logits = self(batch["input_ids"], batch["attention_mask"])
        loss = self.loss(logits, batch["labels"])
        self.log("train/loss", loss, prog_bar=True, batch_size=len(logits))
        return loss

    def _eval_step(self, batch, metrics, stage: str) -> None:
        logits = self(batch["input_ids"], batch["attention_mask"])
        loss = self.loss(logits, batch["labels"])
        self.objective.update_metrics(metrics, logits, batch["labels"])
        self.log(f"{stage}/loss", loss, prog_bar=True, batch_size=len(logits))

    def _log_epoch_metrics(self, metrics, stage: str) -> None:
        # computed here rather than by self.log(metric): the notes on undefined values (logged once
        # per run) must not come from the sanity check, which sees only a few validation batches
        values = metrics.compute()
        if not self.trainer.sanity_checking:
            log_notes(metrics, self.reported_notes)
        shown = f"{stage}/{self.monitor}" if stage == "val" else None
        for name, value in values.items():
            self.log(name, value, prog_bar=name == shown, sync_dist=True)  # equal on every rank: torchmetrics synced the states
        metrics.reset()

    def validation_step(self, batch, batch_idx):
        self._eval_step(batch, self.val_metrics, "val")

    def on_validation_epoch_end(self) -> None:
        self._log_epoch_metrics(self.val_metrics, "val")

    def test_step(self, batch, batch_idx):
        self._eval_step(batch, self.test_metrics, "test")

    def on_test_epoch_end(self) -> None:
        self._log_epoch_metrics(self.test_metrics, "test")

    def configure_optimizers(self):
        return configure_adamw(self, self.lr, self.weight_decay, self.warmup_ratio, self.betas, self.head_lr)


def class_weights(task: str, targets: np.ndarray, setting, num_classes: int) -> torch.Tensor | None:
    """Loss weights from ``task.class_weights``: null, ``balanced`` or one number per class.

    ``balanced`` weighs class k by ``n / (K * n_k)`` on the training targets (binary and
    multi-class); for multi-label it is each label's ``pos_weight = negatives / positives``.
    Binary weights are per class ``[w_negative, w_positive]``.
    """
    if setting is None:
        return None
    if task == "regression":
        raise BiolmError("task.class_weights: regression has no classes; leave it null")
    k = 2 if task == "binary" else num_classes
    if setting == "balanced":
        if task == "multilabel":
            positives = targets.sum(axis=0).astype(np.float64)
            return torch.tensor((len(targets) - positives) / np.maximum(positives, 1.0), dtype=torch.float32)
        counts = np.bincount(targets.astype(np.int64), minlength=k).astype(np.float64)
        return torch.tensor(len(targets) / (k * np.maximum(counts, 1.0)), dtype=torch.float32)
    values = list(setting) if not isinstance(setting, str) else []
    if len(values) != k or any(float(v) <= 0 for v in values):
        raise BiolmError(f"task.class_weights={setting}: accepted: null, balanced, or {k} positive numbers (one per class)")
    return torch.tensor([float(v) for v in values], dtype=torch.float32)


def configure_adamw(module: L.LightningModule, lr: float, weight_decay: float, warmup_ratio: float, betas, head_lr: float | None = None) -> dict:
    """AdamW over ``module.model`` with a per-step schedule: linear warm-up over ``warmup_ratio``
    of the optimiser steps, then linear decay to 0. Weight decay follows
    `biolm.models.weight_decay.parameter_groups` (none on biases, norms, embeddings and what the
    model declares, e.g. Hyena's implicit filters); the ``head`` module uses ``head_lr`` when given."""
    from biolm.models.weight_decay import parameter_groups

    groups = parameter_groups(module.model, weight_decay, {"head": head_lr} if head_lr is not None else None)
    optimizer = torch.optim.AdamW(groups, lr=lr, betas=tuple(betas))
    total = max(int(module.trainer.estimated_stepping_batches), 1)
    warmup = int(total * warmup_ratio)

    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        return max(0.0, (total - step) / max(total - warmup, 1))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

"""Training budgets in optimiser steps, so that small data sets still get enough updates.

A fine-tune's length is set in epochs (``trainer.max_epochs``), but what a model needs is optimiser
steps: 1,000 sequences in batches of 32 are 32 steps per epoch, and 8 epochs (256 steps, 26 of
them warm-up) leave a from-scratch model barely trained. `plan_steps` raises the number of epochs
until the run has at least ``schedule.min_steps`` steps (never lowers it), sizes the warm-up on the
real step count (``optim.warmup_ratio`` of it) and tells early stopping to start counting only
after the warm-up (a model still warming up is not stalled). ``min_steps`` raises the epoch cap: early
stopping may still end a run sooner. The plan is logged in one line and the chosen ``max_epochs`` is
written into the run's config; a resume (``ckpt=last``) with the same command computes the same plan.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from biolm.errors import BiolmError

# Below this many training sequences a transformer trained from scratch trailed the one-hot CNN on the
# subsampled GUE tasks of bench/small_data.py (tf_human_0 at 1,000: MCC 0.474 vs 0.523); from 5,000 on it
# depends on the task (it trailed on tf_human_0 and prom_core_all, won on prom_300_tata's 4,904: 0.787 vs
# 0.619). The fine-tune log says so below it (`small_data_advice`).
FROM_SCRATCH_MIN_SEQUENCES = 2000


@dataclass(frozen=True)
class StepPlan:
    """How long a fine-tune trains.

    Attributes:
        steps_per_epoch: optimiser steps per epoch (batches per device, over gradient accumulation).
        epochs: the epochs to train (``trainer.max_epochs`` after the budget).
        total_steps: ``epochs * steps_per_epoch``.
        warmup_steps: linear warm-up steps of the learning-rate schedule.
        patience_from_epoch: the first epoch early stopping counts (0-based): the first that starts
            after the warm-up.
        raised_from: the configured ``max_epochs`` when the budget raised it, else None.
    """

    steps_per_epoch: int
    epochs: int
    total_steps: int
    warmup_steps: int
    patience_from_epoch: int
    raised_from: int | None

    def describe(self, n_train: int, batch_size: int, min_steps: int) -> str:
        """One log line: the data size, the steps and why the epochs are what they are."""
        epochs = f"{self.epochs} epochs"
        if self.raised_from is not None:
            epochs += f" (trainer.max_epochs {self.raised_from} raised to reach schedule.min_steps={min_steps:,})"
        return (
            f"schedule: {n_train:,} training sequences, batch {batch_size}: {self.steps_per_epoch:,} steps per epoch x {epochs} = "
            f"{self.total_steps:,} steps; warm-up {self.warmup_steps:,} steps; early stopping counts from epoch {self.patience_from_epoch}"
        )


def plan_steps(
    n_train: int,
    batch_size: int,
    max_epochs: int,
    min_steps: int,
    warmup_ratio: float,
    accumulate_grad_batches: int = 1,
    world_size: int = 1,
) -> StepPlan:
    """The epochs, steps and warm-up of a fine-tune (see the module docstring).

    Args:
        n_train: training items (sequences or windows).
        batch_size: items per batch on each device.
        max_epochs: the configured ``trainer.max_epochs`` (a floor: the plan never trains fewer; 0 and -1
            are kept as they are, with no budget).
        min_steps: the fewest optimiser steps a run should get (0: no budget, ``max_epochs`` as given).
        warmup_ratio: share of all steps spent warming the learning rate up.
        accumulate_grad_batches: batches per optimiser step.
        world_size: devices x nodes (each takes its share of every epoch).

    Returns:
        The `StepPlan`.

    Raises:
        BiolmError: no training items, a non-positive batch size, a negative ``min_steps``, or a
            warm-up ratio outside [0, 1).
    """
    if n_train < 1 or batch_size < 1 or accumulate_grad_batches < 1 or world_size < 1:
        raise BiolmError(f"schedule: needs at least one training item and batch_size >= 1 (got {n_train} items, batch {batch_size})")
    if min_steps < 0:
        raise BiolmError(f"schedule.min_steps={min_steps}: accepted: 0 (off) or a positive number of optimiser steps")
    if not 0 <= warmup_ratio < 1:
        raise BiolmError(f"optim.warmup_ratio={warmup_ratio}: accepted: 0 <= warmup_ratio < 1")
    batches = math.ceil(math.ceil(n_train / world_size) / batch_size)
    steps_per_epoch = math.ceil(batches / accumulate_grad_batches)
    if max_epochs < 1:  # 0: no training (a run of the initial weights); -1: Lightning's "until max_steps or max_time"
        return StepPlan(steps_per_epoch, max_epochs, 0, 0, 0, None)
    epochs = max(max_epochs, math.ceil(min_steps / steps_per_epoch))
    total = epochs * steps_per_epoch
    warmup = int(total * warmup_ratio)
    return StepPlan(
        steps_per_epoch=steps_per_epoch,
        epochs=epochs,
        total_steps=total,
        warmup_steps=warmup,
        patience_from_epoch=math.ceil(warmup / steps_per_epoch),
        raised_from=max_epochs if epochs > max_epochs else None,
    )


def small_data_advice(trunk_name: str, n_train: int) -> str | None:
    """A warning for a from-scratch transformer on fewer than `FROM_SCRATCH_MIN_SEQUENCES` sequences, else None."""
    if n_train >= FROM_SCRATCH_MIN_SEQUENCES:
        return None
    return (
        f"{trunk_name} trained from scratch on {n_train:,} sequences: below ~{FROM_SCRATCH_MIN_SEQUENCES:,}, transformers trained "
        "from scratch trailed a one-hot CNN (bench/small_data.py); consider model=cnn, init_from=runs/<pretraining run> "
        "or model.pretrained=<checkpoint>"
    )

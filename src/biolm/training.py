"""The one training entry: `fit(cfg)`.

Every training command is a configuration of it (``biolm finetune``, ``biolm pretrain``): the
config's ``recipe._target_`` names a recipe class that builds, from the same config, the
tokenizer, data module, model, Lightning task and callbacks of the run (`Recipe.prepare`) and
writes what the run leaves behind once training ends (`Recipe.finish`). `fit` owns what every
run shares: seeding, the Trainer (`biolm.fitting.build_trainer`), resuming with ``ckpt=last``
and the one-line stop on SIGINT/SIGTERM (`biolm.fitting.fit_run`).

    cfg = compose("finetune", ["experiment=demo_prom300"])
    run_dir = fit(cfg)          # the same as biolm.api.finetune(cfg)

A new kind of training (another objective family, another data layout) is a new recipe class and
a config naming it, not an edit here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import lightning as L
from omegaconf import DictConfig

from biolm.errors import BiolmError
from biolm.fitting import build_trainer, fit_run, quiet_lightning_warnings


@dataclass
class Job:
    """What a recipe prepared for one training run.

    Attributes:
        task: the LightningModule to train.
        datamodule: its data (a LightningDataModule).
        folder: where the Trainer logs and checkpoints (a staging folder or the run folder).
        final: the run folder the command reports.
        resume_from: the checkpoint to resume (``ckpt=``), or None.
        resume_hint: how a user resumes this run, e.g. ``the same command and run_name=x ckpt=last``.
        callbacks: the recipe's callbacks (best weights, resume checkpoint, ...).
        early_stopping: ``(monitor, mode)`` for early stopping (``early_stopping.patience``), or None.
        patience_from_epoch: the first epoch early stopping counts (after the learning-rate warm-up).
        state: anything else `Recipe.finish` needs (splits, the tokenizer, counts, ...).
    """

    task: L.LightningModule
    datamodule: L.LightningDataModule
    folder: Path
    final: Path
    resume_from: Path | None
    resume_hint: str
    callbacks: list[L.Callback] = field(default_factory=list)
    early_stopping: tuple[str, str] | None = None
    patience_from_epoch: int = 0
    state: dict = field(default_factory=dict)


class Recipe:
    """A kind of training run, chosen by ``recipe._target_`` (see the module docstring)."""

    def prepare(self, cfg: DictConfig) -> Job:
        """Build tokenizer, data, model, task and callbacks from ``cfg``; set up the run folder."""
        raise NotImplementedError

    def finish(self, cfg: DictConfig, trainer: L.Trainer, job: Job) -> Path:
        """After training (rank 0 only): write the run's final files and return its folder."""
        raise NotImplementedError


def recipe_for(cfg: DictConfig) -> Recipe:
    """The recipe ``cfg.recipe._target_`` names (a biolm class).

    Raises:
        BiolmError: no recipe is named, or it is not a biolm `Recipe`.
    """
    from hydra.utils import get_class

    target = str((cfg.get("recipe") or {}).get("_target_") or "")
    if not target:
        raise BiolmError("recipe._target_: missing; a training config names its recipe (see configs/finetune.yaml)")
    if not target.startswith("biolm."):
        raise BiolmError(f"recipe._target_: {target!r} is not a biolm class")
    try:
        recipe_cls = get_class(target)
    except Exception as err:  # noqa: BLE001 - hydra raises ImportError or ValueError variants
        raise BiolmError(f"recipe._target_: cannot import {target!r} ({str(err).splitlines()[0]})") from None
    if not (isinstance(recipe_cls, type) and issubclass(recipe_cls, Recipe)):
        raise BiolmError(f"recipe._target_: {target!r} is not a biolm.training.Recipe")
    return recipe_cls()


def fit(cfg: DictConfig, callbacks: tuple[L.Callback, ...] = ()) -> Path:
    """Train as ``cfg`` says and return the run folder (see the module docstring).

    Args:
        cfg: the composed config of a training command.
        callbacks: Lightning callbacks added after the recipe's own (a sweep's pruning callback).

    Raises:
        BiolmError: a user error anywhere in the configuration or the data (one line).
        RunInterrupted: SIGINT/SIGTERM stopped training (the message says how to resume).
    """
    L.seed_everything(int(cfg.seed), workers=True, verbose=False)
    recipe = recipe_for(cfg)
    job = recipe.prepare(cfg)
    with quiet_lightning_warnings():
        trainer = build_trainer(cfg, job.folder, [*job.callbacks, *callbacks], job.early_stopping, job.patience_from_epoch)
        fit_run(trainer, job.task, job.datamodule, job.folder, job.resume_from, job.resume_hint)
    if not trainer.is_global_zero:
        return job.final
    return recipe.finish(cfg, trainer, job)

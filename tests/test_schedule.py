"""Budgets in optimiser steps: known answers of the plan, and a fine-tune that follows it."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from omegaconf import OmegaConf

from biolm import api
from biolm.cli import compose
from biolm.errors import BiolmError
from biolm.schedule import plan_steps, small_data_advice
from tests.conftest import TINY_MODEL


@pytest.mark.parametrize(
    ("n_train", "batch", "epochs", "min_steps", "accumulate", "world", "expected"),
    [
        # 1,000 sequences: 32 steps per epoch; 8 epochs (256 steps) raised to 47 (1,504 steps); warm-up 150 steps = epochs 0..4
        (1000, 32, 8, 1500, 1, 1, (32, 47, 1504, 150, 5, 8)),
        # the demo's 4,904 sequences: 154 steps x 10 epochs = 1,540 steps already; nothing changes
        (4904, 32, 10, 1500, 1, 1, (154, 10, 1540, 154, 1, None)),
        # 100k sequences: far past the budget
        (100_000, 32, 3, 1500, 1, 1, (3125, 3, 9375, 937, 1, None)),
        # 2 devices and 4 batches per step: 1,000 -> 500 per device -> 16 batches -> 4 steps
        (1000, 32, 8, 1500, 4, 2, (4, 375, 1500, 150, 38, 8)),
        # budget off
        (1000, 32, 8, 0, 1, 1, (32, 8, 256, 25, 1, None)),
    ],
)
def test_plan_known_answers(n_train, batch, epochs, min_steps, accumulate, world, expected):
    plan = plan_steps(n_train, batch, epochs, min_steps, 0.1, accumulate, world)
    assert (plan.steps_per_epoch, plan.epochs, plan.total_steps, plan.warmup_steps, plan.patience_from_epoch, plan.raised_from) == expected
    assert plan.patience_from_epoch * plan.steps_per_epoch >= plan.warmup_steps  # the first counted epoch starts after the warm-up
    assert (plan.patience_from_epoch - 1) * plan.steps_per_epoch < max(plan.warmup_steps, 1)


def test_no_warmup_counts_from_the_first_epoch():
    assert plan_steps(500, 50, 2, 0, 0.0).patience_from_epoch == 0


@pytest.mark.parametrize("epochs", [0, -1])
def test_no_training_and_unbounded_epochs_are_kept(epochs):
    plan = plan_steps(500, 50, epochs, 1000, 0.1)
    assert (plan.epochs, plan.raised_from) == (epochs, None)


@pytest.mark.parametrize(
    ("args", "match"),
    [((0, 32, 8, 1500, 0.1), "at least one training item"), ((100, 32, 8, -1, 0.1), "schedule.min_steps=-1"),
     ((100, 32, 8, 10, 1.0), "optim.warmup_ratio=1.0")],
)
def test_bad_settings_are_named(args, match):
    with pytest.raises(BiolmError, match=match):
        plan_steps(*args)


def test_a_fine_tune_follows_the_budget(step_budget, tiny_task, tmp_path, caplog):
    # 96 training rows in batches of 16: 6 steps per epoch; 1 epoch raised to 3 to reach 18 steps
    args = [f"data.train={tiny_task['train']}", f"data.val={tiny_task['dev']}", f"data.test={tiny_task['test']}",
            "tokenizer=kmer3", "model=bert_tiny", f"output_dir={tmp_path}", "run_name=b", *TINY_MODEL, "trainer.max_epochs=1",
            "schedule.min_steps=18", "early_stopping.patience=1"]
    with caplog.at_level("INFO"):
        run = api.finetune(compose("finetune", args))
    assert OmegaConf.load(run / "config.yaml").trainer.max_epochs == 3  # recorded, so a resume keeps it
    assert sorted({int(e) for e in pd.read_csv(run / "metrics.csv")["epoch"].dropna()}) == [0, 1, 2]
    assert "6 steps per epoch x 3 epochs (trainer.max_epochs 1 raised to reach schedule.min_steps=18) = 18 steps" in caplog.text
    assert json.loads((run / "test_metrics.json").read_text())["n_train"] == 96
    assert "BertEncoder trained from scratch on 96 sequences: below ~2,000" in caplog.text  # and what to do instead


def test_small_data_advice_names_the_alternatives():
    assert small_data_advice("BertEncoder", 2000) is None
    advice = small_data_advice("HyenaEncoder", 1900)
    assert advice.startswith("HyenaEncoder trained from scratch on 1,900 sequences") and "model=cnn, init_from=" in advice


def test_early_stopping_waits_for_the_warmup():
    from types import SimpleNamespace

    import torch

    from biolm.tasks.callbacks import SkipUndefinedEarlyStopping

    stopper = SkipUndefinedEarlyStopping(monitor="val/mcc", mode="max", patience=1, from_epoch=2)
    metrics = {"val/mcc": torch.tensor(0.5), "val/loss": torch.tensor(0.6)}
    strategy = SimpleNamespace(reduce_boolean_decision=lambda decision, all=True: decision)
    trainer = SimpleNamespace(current_epoch=0, callback_metrics=metrics, should_stop=False, sanity_checking=False, strategy=strategy)
    for epoch in (0, 1):  # warm-up epochs: nothing is counted, whatever the metric does
        trainer.current_epoch = epoch
        stopper._run_early_stopping_check(trainer)
        assert stopper.wait_count == 0 and not trainer.should_stop
    metrics["val/loss"] = torch.tensor(float("nan"))  # but a diverged model stops even in the warm-up
    trainer.current_epoch = 1
    stopper._run_early_stopping_check(trainer)
    assert trainer.should_stop


@pytest.mark.parametrize(
    ("trainer", "epochs"),
    [({"devices": 1}, 32), ({"devices": [0, 1]}, 63), ({"devices": "auto"}, 8), ({"devices": 1, "max_steps": 100}, 8), ({"devices": 1, "max_epochs": None}, None)],
)
def test_plan_schedule_reads_the_trainer(step_budget, trainer, epochs):
    from biolm.finetuning import plan_schedule

    cfg = OmegaConf.create({"trainer": {"max_epochs": 8, "num_nodes": 1, **trainer}, "data": {"batch_size": 32},
                            "optim": {"warmup_ratio": 0.1}, "schedule": {"min_steps": 1000}})
    plan_schedule(cfg, 1000)  # 1,000 sequences: 32 steps per epoch on one device, 16 on two
    assert cfg.trainer.max_epochs == epochs  # devices=auto, max_steps or max_epochs=null: no budget

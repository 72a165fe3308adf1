"""Fine-tuning resumes: an interrupted run continues from ``checkpoints/last.ckpt`` with
``ckpt=last`` and ends with exactly the weights, metrics and log of an uninterrupted run."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from biolm import api
from biolm.cli import compose, main
from biolm.errors import RunInterrupted
from biolm.tasks.sequence import SequenceTask
from tests.conftest import TINY_MODEL


def _cfg(tiny_task, tmp_path, name: str, *extra: str):
    return compose(
        "finetune",
        [
            f"data.train={tiny_task['train']}",
            f"data.val={tiny_task['dev']}",
            f"data.test={tiny_task['test']}",
            "tokenizer=kmer3",
            "task.monitor=auroc",
            f"output_dir={tmp_path}",
            f"run_name={name}",
            *TINY_MODEL,
            "trainer.max_epochs=3",
            "early_stopping.patience=0",
            *extra,
        ],
    )


def test_interrupted_finetune_resumes_to_the_uninterrupted_result(tiny_task, tmp_path, monkeypatch):
    whole = api.finetune(_cfg(tiny_task, tmp_path, "whole"))
    assert not (whole / "checkpoints").exists()  # resume state is dropped once the run is complete

    def interrupt_after_first_epoch(self):
        raise KeyboardInterrupt  # what Ctrl-C does, after the epoch's checkpoint is written

    monkeypatch.setattr(SequenceTask, "on_train_epoch_end", interrupt_after_first_epoch, raising=False)
    with pytest.raises(RunInterrupted) as stopped:
        api.finetune(_cfg(tiny_task, tmp_path, "r"))
    monkeypatch.undo()
    assert stopped.value.exit_code == 130
    message = str(stopped.value)
    assert "SIGINT" in message and "end of epoch 1" in message and "run_name=r ckpt=last" in message
    stage = tmp_path / ".r.incomplete"
    assert not (tmp_path / "r").exists() and (stage / "checkpoints" / "last.ckpt").exists()

    # the same name without ckpt=last does not wipe the interrupted run
    assert main(["finetune", *_overrides(tiny_task, tmp_path, "r")]) == 2
    assert (stage / "checkpoints" / "last.ckpt").exists()

    resumed = api.finetune(_cfg(tiny_task, tmp_path, "r", "ckpt=last"))
    assert resumed == tmp_path / "r" and not stage.exists() and not (resumed / "checkpoints").exists()
    a, b = load_file(str(whole / "model.safetensors")), load_file(str(resumed / "model.safetensors"))
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)
    assert json.loads((whole / "checkpoint.json").read_text()) == json.loads((resumed / "checkpoint.json").read_text())
    test_a, test_b = (json.loads((run / "test_metrics.json").read_text()) for run in (whole, resumed))
    assert test_a == test_b
    log_a, log_b = (pd.read_csv(run / "metrics.csv") for run in (whole, resumed))
    assert sorted(log_a["epoch"].dropna().unique()) == sorted(log_b["epoch"].dropna().unique()) == [0, 1, 2]
    assert log_a["val/auroc"].dropna().tolist() == pytest.approx(log_b["val/auroc"].dropna().tolist())


def _overrides(tiny_task, tmp_path, name):
    return [
        f"data.train={tiny_task['train']}", f"data.val={tiny_task['dev']}", f"data.test={tiny_task['test']}", "tokenizer=kmer3",
        f"output_dir={tmp_path}", f"run_name={name}", *TINY_MODEL,
    ]


def test_ckpt_last_without_an_interrupted_run_is_one_line(tiny_task, tmp_path, capsys):
    assert main(["finetune", *_overrides(tiny_task, tmp_path, "none"), "ckpt=last"]) == 2
    err = capsys.readouterr().err
    assert "ckpt: no checkpoint at" in err and ".none.incomplete" in err and "Traceback" not in err

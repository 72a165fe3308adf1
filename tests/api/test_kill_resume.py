"""Kill real `biolm pretrain` and `biolm finetune` processes (SIGKILL, SIGTERM, SIGINT) after their first checkpoint, then resume them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

TINY = [
    "model=hyena_tiny", "tokenizer=char", "model.trunk.d_model=32", "model.trunk.n_layer=1", "model.trunk.max_seq_len=256",
    "data.window_bp=200", "data.windows_per_epoch=1024", "data.val_windows=4", "data.batch_size=8", "trainer.accelerator=cpu",
    "progress_bar=false", "baseline.markov_order=0", "trainer.max_epochs=3",
]


def _biolm(*args: str) -> list[str]:
    return [sys.executable, "-c", "from biolm.cli import app; app()", *args]


@pytest.mark.slow
def test_sigkill_after_a_checkpoint_then_resume_loses_at_most_one_epoch(genome, tmp_path):
    args = ["pretrain", f"data.fasta={genome}", f"output_dir={tmp_path}", "run_name=k", *TINY]
    ckpt = tmp_path / "k" / "checkpoints" / "last.ckpt"
    proc = subprocess.Popen(_biolm(*args), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 240
    while not ckpt.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    assert ckpt.exists(), proc.stderr.read().decode()[-2000:] if proc.poll() is not None else "no checkpoint in time"
    time.sleep(0.3)  # into the second epoch (128 steps)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "k" / "pretrain_metrics.json").exists()  # not claimed complete
    saved = torch.load(ckpt, map_location="cpu", weights_only=False)
    steps_per_epoch = 1024 // 8
    assert saved["global_step"] >= steps_per_epoch  # at most one checkpoint interval lost
    done = subprocess.run(_biolm(*args, "ckpt=last"), capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stderr[-2000:]
    metrics = json.loads((tmp_path / "k" / "pretrain_metrics.json").read_text())
    assert metrics["global_step"] == 3 * steps_per_epoch


@pytest.fixture(scope="module")
def longer_task(tmp_path_factory) -> dict[str, Path]:
    """Real prom_300_tata rows: train 2048 x 300 bp (256 steps of 8 per epoch), val and test 64."""
    from tests.conftest import _rows

    root = tmp_path_factory.mktemp("longer_task")
    paths = {}
    for split, n in (("train", 2048), ("dev", 64), ("test", 64)):
        lines = ["sequence,label", *(f"{seq},{label}" for seq, label in _rows(split, n, 300))]
        paths[split] = root / f"{split}.csv"
        paths[split].write_text("\n".join(lines) + "\n")
    return paths


FINETUNE_TINY = [
    "tokenizer=kmer3", "model.trunk.hidden_size=32", "model.trunk.num_layers=1", "model.trunk.num_heads=2",
    "model.trunk.intermediate_size=64", "trainer.max_epochs=3", "trainer.accelerator=cpu", "progress_bar=false",
    "data.batch_size=8", "early_stopping.patience=0", "schedule.min_steps=0",
]


def _wait_for(path: Path, proc: subprocess.Popen) -> None:
    deadline = time.time() + 240
    while not path.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    assert path.exists(), proc.stderr.read().decode()[-2000:] if proc.poll() is not None else "no checkpoint in time"
    time.sleep(0.3)  # into the next epoch
    assert proc.poll() is None, "the run ended before it could be stopped"


@pytest.mark.slow
def test_sigkill_a_finetune_after_a_checkpoint_then_resume(longer_task, tmp_path):
    args = [
        "finetune", f"data.train={longer_task['train']}", f"data.val={longer_task['dev']}", f"data.test={longer_task['test']}",
        f"output_dir={tmp_path}", "run_name=f", *FINETUNE_TINY,
    ]
    stage = tmp_path / ".f.incomplete"
    ckpt = stage / "checkpoints" / "last.ckpt"
    proc = subprocess.Popen(_biolm(*args), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _wait_for(ckpt, proc)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "f").exists()  # an unfinished fine-tune is never published
    steps_per_epoch = 2048 // 8
    assert torch.load(ckpt, map_location="cpu", weights_only=False)["global_step"] >= steps_per_epoch
    done = subprocess.run(_biolm(*args, "ckpt=last"), capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stderr[-2000:]
    run = tmp_path / "f"
    assert not stage.exists() and not (run / "checkpoints").exists()
    assert json.loads((run / "checkpoint.json").read_text())["step"] <= 3 * steps_per_epoch
    epochs = sorted({int(e) for e in pd.read_csv(run / "metrics.csv")["epoch"].dropna()})
    assert epochs == [0, 1, 2]  # the log continues the interrupted one
    assert json.loads((run / "test_metrics.json").read_text())["n_test"] == 64


@pytest.mark.slow
@pytest.mark.parametrize(("sig", "code", "name"), [(signal.SIGTERM, 143, "SIGTERM"), (signal.SIGINT, 130, "SIGINT")])
def test_sigterm_and_sigint_end_a_run_with_one_line_saying_how_to_resume(longer_task, tmp_path, sig, code, name):
    args = [
        "finetune", f"data.train={longer_task['train']}", f"data.val={longer_task['dev']}", f"data.test={longer_task['test']}",
        f"output_dir={tmp_path}", "run_name=s", *FINETUNE_TINY,
    ]
    proc = subprocess.Popen(_biolm(*args), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _wait_for(tmp_path / ".s.incomplete" / "checkpoints" / "last.ckpt", proc)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code
    last = [line for line in err.decode().splitlines() if line.startswith("biolm finetune:")]
    assert len(last) == 1 and f"stopped by {name}" in last[0] and "run_name=s ckpt=last" in last[0], err.decode()[-2000:]
    assert "Traceback" not in err.decode()

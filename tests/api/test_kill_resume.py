"""Kill a real `biolm pretrain` process with SIGKILL after its first checkpoint, then resume it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

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

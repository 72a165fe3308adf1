"""Two DDP processes on CPU (gloo) train for a few steps: their weights agree, their data differ."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

HERE = Path(__file__).resolve().parent


def test_two_ddp_ranks_agree_on_the_weights(tmp_path):
    genome = tmp_path / "g.fa"
    rng = torch.Generator().manual_seed(0)
    bases = "".join("ACGT"[i] for i in torch.randint(0, 4, (20000,), generator=rng).tolist())
    genome.write_text(f">g\n{bases}\n")
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, str(HERE / "ddp_worker.py"), str(genome), str(tmp_path)],
        capture_output=True, text=True, timeout=300, env=env, cwd=HERE.parents[1],
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rank0 = torch.load(tmp_path / "rank0.pt", weights_only=False)
    rank1 = torch.load(tmp_path / "rank1.pt", weights_only=False)
    for key, value in rank0["state"].items():
        torch.testing.assert_close(value, rank1["state"][key], msg=key)
    # the distributed sampler gave the ranks different windows
    assert len(rank0["batches"]) == len(rank1["batches"]) == 3
    assert not torch.equal(rank0["batches"][0], rank1["batches"][0])


@pytest.mark.slow
def test_pretrain_cli_with_trainer_ddp_writes_one_run(tmp_path):
    genome = tmp_path / "g.fa"
    genome.write_text(">g\n" + "ACGTTGCA" * 2500 + "\n")
    exe = Path(sys.executable).parent / "biolm"
    args = [
        str(exe), "pretrain", f"data.fasta={genome}", "model.trunk.d_model=32", "model.trunk.n_layer=1",
        "model.trunk.max_seq_len=256", "data.window_bp=200", "data.windows_per_epoch=32", "data.val_windows=8",
        "data.batch_size=4", "trainer=ddp", "trainer.accelerator=cpu", "trainer.max_epochs=1",
        f"output_dir={tmp_path}", "run_name=d", "progress_bar=false",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(args, capture_output=True, text=True, timeout=300, env=env, cwd=HERE.parents[1])
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((tmp_path / "d" / "pretrain_metrics.json").read_text())
    assert metrics["global_step"] == 4  # 32 windows / (batch 4 x 2 ranks)


@pytest.mark.slow
def test_finetune_cli_with_trainer_ddp_writes_its_test_metrics(tmp_path, tiny_task, tiny_model_overrides):
    """Rank 0 alone tests the finished model; its metrics must not wait for the ranks that have exited."""
    exe = Path(sys.executable).parent / "biolm"
    args = [
        str(exe), "finetune", f"data.train={tiny_task['train']}", f"data.val={tiny_task['dev']}", f"data.test={tiny_task['test']}",
        "tokenizer=kmer3", "model=bert_tiny", "task=binary", *tiny_model_overrides, "trainer=ddp", "trainer.devices=2",
        "schedule.min_steps=0", f"output_dir={tmp_path}", "run_name=d",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(args, capture_output=True, text=True, timeout=300, env=env, cwd=HERE.parents[1])
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((tmp_path / "d" / "test_metrics.json").read_text())
    assert metrics["n_test"] == 32 and metrics["mcc"] is not None

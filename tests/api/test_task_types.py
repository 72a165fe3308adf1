"""finetune -> predict for every label type, on real sequences with labels we can compute.

Labels are functions of the real GUE sequences (GC content, motif presence), so that a tiny
model has something true to learn in seconds and the numbers can be checked.
"""

from __future__ import annotations

import csv
import json

import numpy as np
import pandas as pd
import pytest

from biolm import api
from biolm.cli import compose


def _sequences(tiny_task) -> dict[str, list[str]]:
    return {split: pd.read_csv(path)["sequence"].tolist() for split, path in tiny_task.items()}


def _write(path, seqs, labels):
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["sequence", "label"])
        writer.writerows(zip(seqs, labels, strict=True))
    return path


def _gc(seq: str) -> float:
    return (seq.count("G") + seq.count("C")) / len(seq)


LABELLERS = {
    "regression": lambda s: f"{_gc(s):.4f}",
    "multiclass": lambda s: ["low", "mid", "high"][min(int(_gc(s) * 3), 2)],
    "multilabel": lambda s: ";".join(name for name, motif in (("ta", "TA"), ("cg", "CG"), ("aaa", "AAA")) if motif in s),
}


@pytest.mark.parametrize("task", sorted(LABELLERS))
def test_each_task_type_trains_and_predicts(task, tiny_task, tmp_path):
    seqs = _sequences(tiny_task)
    files = {split: _write(tmp_path / f"{split}.csv", s, [LABELLERS[task](x) for x in s]) for split, s in seqs.items()}
    cfg = compose(
        "finetune",
        [
            f"data.train={files['train']}",
            f"data.val={files['dev']}",
            f"data.test={files['test']}",
            f"task={task}",
            "tokenizer=char",
            "model=cnn_dilated",
            "model.trunk.hidden_size=32",
            "model.trunk.num_layers=1",
            "trainer.max_epochs=8",
            "trainer.accelerator=cpu",
            "optim.lr=3e-3",
            "progress_bar=false",
            f"output_dir={tmp_path / 'runs'}",
            "run_name=r",
        ],
    )
    run_dir = api.finetune(cfg)
    metrics = json.loads((run_dir / "test_metrics.json").read_text())
    labels = json.loads((run_dir / "labels.json").read_text())
    assert labels["task"] == task
    preds = api.predict(run_dir, seqs["test"])
    assert len(preds) == len(seqs["test"])
    if task == "regression":
        assert set(metrics) >= {"mse", "pearson", "spearman", "r2"}
        # GC content is a linear function of mean-pooled base embeddings: the CNN must find it.
        assert metrics["pearson"] > 0.6
        truth = np.array([_gc(s) for s in seqs["test"]])
        assert np.mean((preds["prediction"].to_numpy() - truth) ** 2) == pytest.approx(metrics["mse"], rel=1e-4)
    elif task == "multiclass":
        assert labels["classes"] == ["high", "low", "mid"]
        assert set(metrics) >= {"accuracy", "macro_f1", "mcc"}
        probs = preds[[f"prob_{c}" for c in labels["classes"]]].to_numpy()
        assert probs.sum(axis=1) == pytest.approx(np.ones(len(preds)), abs=1e-5)
    else:
        assert set(metrics) >= {"map", "micro_f1", "macro_f1", "auroc"}
        assert all(set(p.split(";")) <= set(labels["classes"]) for p in preds["prediction"] if p)


def test_same_seed_same_run(tiny_task, tiny_model_overrides, tmp_path):
    frames = []
    for name in ("a", "b"):
        cfg = compose(
            "finetune",
            [f"data.train={tiny_task['train']}", "tokenizer=kmer3", f"output_dir={tmp_path}", f"run_name={name}", "seed=7", *tiny_model_overrides],
        )
        frames.append(pd.read_csv(api.finetune(cfg) / "test_predictions.csv"))
    pd.testing.assert_frame_equal(frames[0], frames[1])
    # data.val/data.test were not given: 10% + 10% of the 96 training rows were held out, stratified.
    assert len(frames[0]) == 10

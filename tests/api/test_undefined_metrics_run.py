"""End to end: a multi-label class that never occurs in validation/test (the case in
cases/multilabel-absent-class) is left out of the macro metrics, the monitor and the checkpoint
pick; undefined metrics are null in test_metrics.json and every reader shows them as undefined."""

from __future__ import annotations

import csv
import json
import logging
import shutil

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sklearn import metrics as skm

from biolm import api
from biolm.cli import main
from biolm.report import write_report
from biolm.service import create_app

MOTIFS = (("a", "TA"), ("b", "CG"))


def _labels(seq: str, with_c: bool) -> str:
    names = [name for name, motif in MOTIFS if motif in seq]
    return ";".join([*names, "c"] if with_c else names)


def _write(path, seqs, labels):
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["sequence", "label"])
        writer.writerows(zip(seqs, labels, strict=True))
    return path


def _truth(labels: pd.Series, classes: list[str]) -> np.ndarray:
    return np.array([[name in str(text).split(";") for name in classes] for text in labels], dtype=int)


def _strict_json(text: str) -> dict:
    def refuse(token):
        raise ValueError(f"not JSON: {token}")

    return json.loads(text, parse_constant=refuse)


@pytest.fixture(scope="module")
def absent_class_run(tiny_task, tmp_path_factory):
    """A multilabel run (cnn + char, 1 epoch) where class 'c' occurs in training only; its logged warnings."""
    root = tmp_path_factory.mktemp("absent_class")
    seqs = {split: pd.read_csv(path)["sequence"].tolist() for split, path in tiny_task.items()}
    files = {
        split: _write(root / f"{split}.csv", s, [_labels(x, split == "train" and i % 4 == 0) for i, x in enumerate(s)])
        for split, s in seqs.items()
    }
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append
    metrics_logger = logging.getLogger("biolm.tasks.metrics")
    metrics_logger.addHandler(handler)  # the CLI replaces the root handlers (and pytest's) when it starts
    try:
        code = main(
            [
                "finetune",
                f"data.train={files['train']}",
                f"data.val={files['dev']}",
                f"data.test={files['test']}",
                "task=multilabel",
                "tokenizer=char",
                "model=cnn_dilated",
                "model.trunk.hidden_size=32",
                "model.trunk.num_layers=1",
                "trainer.max_epochs=1",
                "trainer.accelerator=cpu",
                "data.batch_size=16",
                "progress_bar=false",
                f"output_dir={root / 'runs'}",
                "run_name=absent",
            ]
        )
    finally:
        metrics_logger.removeHandler(handler)
    assert code == 0
    return root / "runs" / "absent", [r.getMessage() for r in records if r.levelno == logging.WARNING], seqs


def test_macro_metrics_average_the_classes_present(absent_class_run):
    run_dir, warnings, seqs = absent_class_run
    text = (run_dir / "test_metrics.json").read_text()
    metrics = _strict_json(text)
    classes = json.loads((run_dir / "labels.json").read_text())["classes"]
    assert classes == ["a", "b", "c"]
    frame = pd.read_csv(run_dir / "test_predictions.csv", keep_default_na=False)
    truth = _truth(frame["label"], classes)
    prob = frame[[f"prob_{c}" for c in classes]].to_numpy(float)
    assert truth[:, 2].sum() == 0 and truth[:, :2].sum(0).min() > 0
    assert metrics["auroc"] == pytest.approx(skm.roc_auc_score(truth[:, :2], prob[:, :2], average="macro"), abs=1e-5)
    assert metrics["map"] == pytest.approx(skm.average_precision_score(truth[:, :2], prob[:, :2], average="macro"), abs=1e-5)
    hard = (prob >= 0.5).astype(int)
    assert metrics["macro_f1"] == pytest.approx(skm.f1_score(truth, hard, average="macro", zero_division=np.nan), abs=1e-5)
    assert "auroc: class 'c' has no positive in the test set; left out of the macro average" in warnings
    assert "map: class 'c' has no positive in the test set; left out of the macro average" in warnings
    assert "val/map: class 'c' has no positive in the validation set; left out of the macro average" in warnings
    assert warnings.count("val/map: class 'c' has no positive in the validation set; left out of the macro average") == 1

    # the checkpoint monitor is the same average over 'a' and 'b' of the validation set
    checkpoint = json.loads((run_dir / "checkpoint.json").read_text())
    val = pd.read_csv(run_dir.parent.parent / "dev.csv", keep_default_na=False)
    val_prob = api.predict(run_dir, val["sequence"].tolist())[[f"prob_{c}" for c in classes]].to_numpy(float)
    val_truth = _truth(val["label"], classes)
    assert checkpoint["best"] == pytest.approx(skm.average_precision_score(val_truth[:, :2], val_prob[:, :2], average="macro"), abs=1e-4)


@pytest.fixture
def undefined_copy(absent_class_run, tmp_path):
    """A copy of the run whose test_metrics.json says auroc is undefined (null) and map NaN (an older run)."""
    run_dir = tmp_path / "copy"
    shutil.copytree(absent_class_run[0], run_dir)
    path = run_dir / "test_metrics.json"
    metrics = json.loads(path.read_text())
    metrics["auroc"] = None
    path.write_text(json.dumps(metrics).replace('"map": ' + json.dumps(metrics["map"]), '"map": NaN'))
    return run_dir


def test_readers_show_undefined_metrics(undefined_copy):
    table = api.compare_runs([undefined_copy])
    assert np.isnan(table.loc[0, "auroc"]) and np.isnan(table.loc[0, "map"]) and table.loc[0, "micro_f1"] > 0
    assert "best_epoch" not in table and "n_test" not in table

    report = write_report(undefined_copy).read_text()
    assert "| auroc | undefined |" in report and "| map | undefined |" in report

    with TestClient(create_app(api.load_run(undefined_copy))) as client:
        card = client.get("/v1/model")
    assert card.status_code == 200
    assert card.json()["metrics"]["auroc"] is None and card.json()["metrics"]["map"] is None


def test_compute_metrics_gives_none_for_undefined(absent_class_run, caplog):
    run = api.load_run(absent_class_run[0])
    seqs = absent_class_run[2]["test"][:6]
    frame = api.predict(run, seqs)
    targets = np.zeros((len(seqs), 3), dtype=np.float32)  # no label at all: every macro metric is undefined
    metrics = api.compute_metrics(run.labels, frame, targets)
    assert metrics["auroc"] is None and metrics["map"] is None
    _strict_json(json.dumps(metrics))
    assert "auroc: undefined for every class, so the macro average is undefined too" in caplog.text

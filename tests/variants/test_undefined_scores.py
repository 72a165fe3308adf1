"""Variant-score AUROC / AUPRC of labels with one class only: undefined (None, JSON null), a
warning naming the metric, no ROC curve; and the other numbers as scikit-learn gives them."""

from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score

from biolm.variants import evaluate_scores


def _scores(labels: list[int]) -> pd.DataFrame:
    n = len(labels)
    return pd.DataFrame(
        {"chrom": "1", "pos": np.arange(1, n + 1), "ref": "A", "alt": "G", "score": np.linspace(-1, 1, n), "label": labels,
         "method": "supervised_diff", "model": "runs/x", "window_bp": 64}
    )


def test_all_benign(tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    metrics = evaluate_scores(_scores([0, 0, 0, 0]), roc_png=tmp_path / "roc.png")
    assert metrics["auroc"] is None and metrics["auprc"] is None
    assert (metrics["n"], metrics["n_pathogenic"], metrics["n_benign"]) == (4, 0, 4)
    assert not (tmp_path / "roc.png").exists()
    assert "auroc: undefined, the 4 labelled variants with a score are all benign" in caplog.text
    assert "auprc: undefined, the 4 labelled variants with a score are all benign" in caplog.text
    json.loads(json.dumps(metrics), parse_constant=lambda token: pytest.fail(f"not JSON: {token}"))


def test_all_pathogenic_and_one_variant(tmp_path, caplog):
    scores = _scores([1, 1, 1])
    metrics = evaluate_scores(scores, roc_png=tmp_path / "roc.png")
    assert metrics["auroc"] is None
    assert metrics["auprc"] == pytest.approx(average_precision_score(scores["label"], scores["score"])) == 1.0
    one = evaluate_scores(_scores([0]))
    assert one["auroc"] is None and one["auprc"] is None and one["n"] == 1

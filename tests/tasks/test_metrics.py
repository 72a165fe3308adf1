"""Our metric collections equal scikit-learn / scipy on random data."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats
from sklearn import metrics as skm

from biolm.tasks.metrics import build_metrics, metric_mode, predictions_from_logits

RNG = np.random.default_rng(0)


def run(task, preds, target, num_classes=2):
    collection = build_metrics(task, num_classes)
    return {k: float(v) for k, v in collection(torch.as_tensor(preds, dtype=torch.float32), torch.as_tensor(target)).items()}


def test_binary_matches_sklearn():
    target = RNG.integers(0, 2, 500)
    prob = np.clip(target * 0.3 + RNG.random(500) * 0.7, 0, 1)
    ours = run("binary", prob, target)
    hard = (prob >= 0.5).astype(int)
    assert ours["accuracy"] == pytest.approx(skm.accuracy_score(target, hard), abs=1e-6)
    assert ours["auroc"] == pytest.approx(skm.roc_auc_score(target, prob), abs=1e-5)
    assert ours["auprc"] == pytest.approx(skm.average_precision_score(target, prob), abs=1e-5)
    assert ours["mcc"] == pytest.approx(skm.matthews_corrcoef(target, hard), abs=1e-5)
    assert ours["f1"] == pytest.approx(skm.f1_score(target, hard), abs=1e-5)


def test_multiclass_matches_sklearn():
    target = RNG.integers(0, 4, 400)
    logits = RNG.normal(size=(400, 4))
    logits[np.arange(400), target] += 1.0
    prob = torch.softmax(torch.tensor(logits), -1).numpy()
    ours = run("multiclass", prob, target, 4)
    hard = prob.argmax(1)
    assert ours["accuracy"] == pytest.approx(skm.accuracy_score(target, hard), abs=1e-6)
    assert ours["macro_f1"] == pytest.approx(skm.f1_score(target, hard, average="macro"), abs=1e-5)
    assert ours["mcc"] == pytest.approx(skm.matthews_corrcoef(target, hard), abs=1e-5)


def test_multilabel_matches_sklearn():
    target = RNG.integers(0, 2, (300, 3))
    prob = np.clip(target * 0.4 + RNG.random((300, 3)) * 0.6, 0, 1)
    ours = run("multilabel", prob, target, 3)
    hard = (prob >= 0.5).astype(int)
    assert ours["map"] == pytest.approx(skm.average_precision_score(target, prob, average="macro"), abs=1e-5)
    assert ours["micro_f1"] == pytest.approx(skm.f1_score(target, hard, average="micro"), abs=1e-5)
    assert ours["macro_f1"] == pytest.approx(skm.f1_score(target, hard, average="macro"), abs=1e-5)
    assert ours["auroc"] == pytest.approx(skm.roc_auc_score(target, prob, average="macro"), abs=1e-5)


def test_regression_matches_sklearn_and_scipy():
    target = RNG.normal(size=200)
    pred = target + RNG.normal(scale=0.5, size=200)
    ours = run("regression", pred, target)
    assert ours["mse"] == pytest.approx(skm.mean_squared_error(target, pred), rel=1e-5)
    assert ours["r2"] == pytest.approx(skm.r2_score(target, pred), rel=1e-4)
    assert ours["pearson"] == pytest.approx(stats.pearsonr(target, pred)[0], abs=1e-5)
    assert ours["spearman"] == pytest.approx(stats.spearmanr(target, pred)[0], abs=1e-5)


def test_prediction_transforms_and_modes():
    logits = torch.tensor([[0.0, 1.0], [2.0, -1.0]])
    assert predictions_from_logits("binary", logits).tolist() == pytest.approx([0.5, torch.sigmoid(torch.tensor(2.0)).item()])
    assert predictions_from_logits("regression", logits, mean=10.0, std=2.0).tolist() == [10.0, 14.0]
    assert predictions_from_logits("multiclass", logits).sum(-1).tolist() == pytest.approx([1.0, 1.0])
    assert metric_mode("val/mse") == "min" and metric_mode("val/auroc") == "max" and metric_mode("loss") == "min"

"""Metrics undefined on the evaluated set are NaN (null in JSON) with a named warning, and macro
averages leave those classes out; every number is checked against scikit-learn / SciPy on
hand-made degenerate sets."""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pytest
import torch
from scipy import stats
from sklearn import metrics as skm

from biolm.tasks.metrics import build_metrics, log_notes

NAMES = {"binary": ["neg", "pos"], "multiclass": ["x", "y", "z"], "multilabel": ["a", "b", "c"]}


def evaluate(task, preds, target, caplog=None, batches: int = 1) -> dict[str, float]:
    """Our metrics over ``batches`` updates (as validation accumulates them), notes logged."""
    names = NAMES.get(task, [])
    collection = build_metrics(task, max(len(names), 1), names, "test set")
    preds = torch.as_tensor(np.asarray(preds), dtype=torch.float32)
    dtype = torch.float32 if task == "regression" else torch.long
    target = torch.as_tensor(np.asarray(target), dtype=dtype)
    for p, t in zip(preds.tensor_split(batches), target.tensor_split(batches), strict=True):
        collection.update(p, t)
    values = {name: float(value) for name, value in collection.compute().items()}
    log_notes(collection)
    return values


def warned(caplog) -> str:
    return "\n".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)


def sk(fn, *args, **kwargs) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(fn(*args, **kwargs))


# ---- binary -------------------------------------------------------------------------------------


@pytest.mark.parametrize("only", [0, 1])
def test_binary_auroc_of_one_class_is_undefined(only, caplog):
    prob = np.array([0.2, 0.7, 0.4, 0.9])
    target = np.full(4, only)
    ours = evaluate("binary", prob, target)
    assert np.isnan(sk(skm.roc_auc_score, target, prob))  # scikit-learn: undefined, NaN with a warning
    assert np.isnan(ours["auroc"])
    cls = NAMES["binary"][only]
    assert f"auroc: undefined: the test set holds class '{cls}' only" in warned(caplog)
    if only == 1:  # all positives: AP is defined (precision 1 everywhere), as in scikit-learn
        assert ours["auprc"] == pytest.approx(sk(skm.average_precision_score, target, prob))
    else:
        assert np.isnan(ours["auprc"]) and "auprc: undefined: the test set has no positive (class 'pos')" in warned(caplog)
    hard = (prob >= 0.5).astype(int)
    assert ours["accuracy"] == pytest.approx(skm.accuracy_score(target, hard))
    assert ours["mcc"] == pytest.approx(sk(skm.matthews_corrcoef, target, hard))  # labels constant: 0


@pytest.mark.parametrize(
    "target, hard",
    [
        ([0, 0, 0, 0], [0, 0, 0, 0]),  # perfect but constant: scikit-learn says 0 (torchmetrics alone says 1)
        ([1, 1, 1, 1], [0, 0, 0, 0]),  # all wrong, constant: 0 (torchmetrics alone says -1)
        ([0, 1, 1, 0], [1, 1, 1, 1]),  # constant predictions
        ([0, 1, 1, 0], [0, 1, 0, 0]),  # ordinary
    ],
)
def test_binary_mcc_and_f1_follow_sklearn(target, hard, caplog):
    target, hard = np.array(target), np.array(hard)
    ours = evaluate("binary", hard.astype(float), target)
    assert ours["mcc"] == pytest.approx(sk(skm.matthews_corrcoef, target, hard), abs=1e-6)
    expected_f1 = sk(skm.f1_score, target, hard, zero_division=np.nan)
    if np.isnan(expected_f1):
        assert np.isnan(ours["f1"]) and "f1: undefined: no positive (class 'pos')" in warned(caplog)
    else:
        assert ours["f1"] == pytest.approx(expected_f1)
    constant = len(set(target)) == 1 or len(set(hard)) == 1
    assert ("reported as 0 (scikit-learn's convention)" in warned(caplog)) == constant


def test_binary_single_record(caplog):
    ours = evaluate("binary", [0.8], [1])
    assert ours["accuracy"] == 1.0 and ours["mcc"] == 0.0 and ours["f1"] == 1.0
    assert np.isnan(ours["auroc"]) and ours["auprc"] == 1.0


# ---- multiclass ---------------------------------------------------------------------------------


def test_multiclass_macro_f1_leaves_out_a_class_absent_from_labels_and_predictions(caplog):
    target = np.array([0, 1, 1, 1, 0, 1])
    hard = np.array([0, 1, 0, 1, 0, 1])  # class 'z' (2) neither observed nor predicted
    ours = evaluate("multiclass", np.eye(3)[hard] * 0.8 + 0.2 / 3, target)
    expected = skm.f1_score(target, hard, labels=[0, 1, 2], average="macro", zero_division=np.nan)
    assert ours["macro_f1"] == pytest.approx(expected)
    assert ours["macro_f1"] != pytest.approx(sk(skm.f1_score, target, hard, labels=[0, 1, 2], average="macro", zero_division=0))
    assert "macro_f1: class 'z' occurs neither in the labels of the test set nor in the predictions; left out of the macro average" in warned(caplog)
    assert ours["mcc"] == pytest.approx(skm.matthews_corrcoef(target, hard), abs=1e-6)


def test_multiclass_predicted_but_absent_class_counts_as_zero():
    target = np.array([0, 1, 1, 0])
    hard = np.array([0, 1, 2, 0])  # 'z' predicted once, never observed: its F1 is 0, not undefined
    ours = evaluate("multiclass", np.eye(3)[hard], target)
    assert ours["macro_f1"] == pytest.approx(skm.f1_score(target, hard, labels=[0, 1, 2], average="macro", zero_division=np.nan))


def test_multiclass_constant_predictions_and_single_record(caplog):
    target = np.array([0, 1, 2, 1])
    ours = evaluate("multiclass", np.tile([0.1, 0.8, 0.1], (4, 1)), target)
    assert ours["mcc"] == sk(skm.matthews_corrcoef, target, [1, 1, 1, 1]) == 0.0
    assert "mcc: the predictions of the test set are all one class" in warned(caplog)
    one = evaluate("multiclass", [[0.1, 0.8, 0.1]], [1])
    assert one["accuracy"] == 1.0 and one["macro_f1"] == 1.0 and one["mcc"] == 0.0


# ---- multilabel ---------------------------------------------------------------------------------

PROB = np.array([[0.9, 0.2, 0.1], [0.3, 0.8, 0.2], [0.7, 0.6, 0.3], [0.2, 0.1, 0.4], [0.6, 0.3, 0.2], [0.4, 0.7, 0.1]])
TARGET = np.array([[1, 0, 0], [0, 1, 0], [1, 1, 0], [0, 0, 0], [0, 0, 0], [1, 1, 0]])  # 'c' never positive


@pytest.mark.parametrize("batches", [1, 3])
def test_multilabel_absent_class_left_out_of_macro_averages(batches, caplog):
    ours = evaluate("multilabel", PROB, TARGET, batches=batches)
    defined = [0, 1]
    hard = (PROB >= 0.5).astype(int)
    assert ours["auroc"] == pytest.approx(skm.roc_auc_score(TARGET[:, defined], PROB[:, defined], average="macro"))
    assert ours["map"] == pytest.approx(skm.average_precision_score(TARGET[:, defined], PROB[:, defined], average="macro"))
    # 'c' is neither observed nor predicted: left out, as scikit-learn does with zero_division=nan
    assert ours["macro_f1"] == pytest.approx(skm.f1_score(TARGET, hard, average="macro", zero_division=np.nan))
    assert ours["micro_f1"] == pytest.approx(skm.f1_score(TARGET, hard, average="micro"))
    # the numbers before: class 'c' averaged in as 0
    assert ours["auroc"] > sk(skm.roc_auc_score, TARGET[:, defined], PROB[:, defined]) * 2 / 3 + 1e-6
    text = warned(caplog)
    assert "auroc: class 'c' has no positive in the test set; left out of the macro average" in text
    assert "map: class 'c' has no positive in the test set; left out of the macro average" in text
    assert "macro_f1: class 'c' occurs neither in the labels of the test set nor in the predictions" in text


def test_multilabel_all_positive_class_leaves_auroc_but_not_map(caplog):
    target = TARGET.copy()
    target[:, 2] = 1
    ours = evaluate("multilabel", PROB, target)
    assert ours["auroc"] == pytest.approx(skm.roc_auc_score(target[:, :2], PROB[:, :2], average="macro"))
    assert ours["map"] == pytest.approx(skm.average_precision_score(target, PROB, average="macro"))  # AP of 'c' is 1, defined
    hard = (PROB >= 0.5).astype(int)
    assert ours["macro_f1"] == pytest.approx(skm.f1_score(target, hard, average="macro", zero_division=np.nan))
    assert "auroc: every record of the test set has class 'c'; left out of the macro average" in warned(caplog)


def test_multilabel_no_label_at_all_is_undefined(caplog):
    prob = np.full((3, 3), 0.1)
    target = np.zeros((3, 3), dtype=int)
    ours = evaluate("multilabel", prob, target)
    assert all(np.isnan(ours[name]) for name in ("auroc", "map", "macro_f1", "micro_f1"))
    assert np.isnan(sk(skm.f1_score, target, np.zeros_like(target), average="micro", zero_division=np.nan))
    assert "auroc: undefined for every class, so the macro average is undefined too" in warned(caplog)
    assert "micro_f1: undefined: no label in the test set nor in the predictions" in warned(caplog)


# ---- regression ---------------------------------------------------------------------------------


def test_regression_constant_labels(caplog):
    pred, target = np.array([1.0, 2.5, 3.0, 4.0]), np.full(4, 2.0)
    ours = evaluate("regression", pred, target)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert np.isnan(stats.pearsonr(target, pred)[0]) and np.isnan(stats.spearmanr(target, pred)[0])
        assert not np.isfinite(skm.r2_score(target, pred, force_finite=False))
    assert np.isnan(ours["pearson"]) and np.isnan(ours["spearman"]) and np.isnan(ours["r2"])
    assert ours["mse"] == pytest.approx(skm.mean_squared_error(target, pred))
    text = warned(caplog)
    assert "pearson: undefined: the labels of the test set are constant" in text
    assert "r2: undefined: the labels of the test set are constant" in text


def test_regression_constant_predictions(caplog):
    pred, target = np.full(4, 2.0), np.array([1.0, 2.5, 3.0, 4.0])
    ours = evaluate("regression", pred, target, batches=2)
    assert np.isnan(ours["pearson"]) and np.isnan(ours["spearman"])
    assert ours["r2"] == pytest.approx(skm.r2_score(target, pred))  # defined: the labels vary
    assert "spearman: undefined: the predictions of the test set are constant" in warned(caplog)


def test_regression_single_record(caplog):
    ours = evaluate("regression", [2.0], [1.0])
    assert ours["mse"] == 1.0
    assert np.isnan(sk(skm.r2_score, [1.0], [2.0]))
    assert all(np.isnan(ours[name]) for name in ("pearson", "spearman", "r2"))
    assert "r2: undefined: the test set has fewer than 2 records" in warned(caplog)


def test_regression_ordinary_values_still_match_scipy():
    rng = np.random.default_rng(1)
    target = 100 + rng.normal(size=50)
    pred = target + rng.normal(scale=0.5, size=50)
    ours = evaluate("regression", pred, target, batches=4)
    assert ours["pearson"] == pytest.approx(stats.pearsonr(target, pred)[0], abs=1e-4)
    assert ours["spearman"] == pytest.approx(stats.spearmanr(target, pred)[0], abs=1e-5)
    assert ours["r2"] == pytest.approx(skm.r2_score(target, pred), abs=1e-3)


def test_notes_are_logged_once_when_seen_is_kept(caplog):
    collection = build_metrics("binary", 2, NAMES["binary"], "validation set")
    seen: set[str] = set()
    for _ in range(3):
        collection.update(torch.tensor([0.2, 0.6]), torch.tensor([0, 0]))
        collection.compute()
        log_notes(collection, seen)
        collection.reset()
    assert warned(caplog).count("auroc: undefined: the validation set holds class 'neg' only") == 1

"""Metrics per task type, all from torchmetrics (checked against scikit-learn in the tests).

In: predictions ``(N,)`` or ``(N, C)`` as returned by `predictions_from_logits` and targets as
encoded by `LabelSpec` (binary ``(N,)`` 0/1, multiclass ``(N,)`` ids, multilabel ``(N, C)``
multi-hot, regression ``(N,)`` values on the original scale).
Out: a `MetricCollection` whose keys are the short names users monitor (``auroc``, ``mcc`` ...).
"""

from __future__ import annotations

import torch
import torchmetrics as tm
from torchmetrics import classification as cls
from torchmetrics import regression as reg

# Metrics where a lower value is better; every other metric is maximised.
LOWER_IS_BETTER = ("loss", "mse")


def build_metrics(task: str, num_classes: int) -> tm.MetricCollection:
    """The metric collection of a task type (see the module docstring for inputs)."""
    if task == "binary":
        metrics = {
            "accuracy": cls.BinaryAccuracy(),
            "auroc": cls.BinaryAUROC(),
            "auprc": cls.BinaryAveragePrecision(),
            "mcc": cls.BinaryMatthewsCorrCoef(),
            "f1": cls.BinaryF1Score(),
        }
    elif task == "multiclass":
        metrics = {
            "accuracy": cls.MulticlassAccuracy(num_classes, average="micro"),
            "macro_f1": cls.MulticlassF1Score(num_classes, average="macro"),
            "mcc": cls.MulticlassMatthewsCorrCoef(num_classes),
        }
    elif task == "multilabel":
        metrics = {
            "map": cls.MultilabelAveragePrecision(num_classes, average="macro"),
            "micro_f1": cls.MultilabelF1Score(num_classes, average="micro"),
            "macro_f1": cls.MultilabelF1Score(num_classes, average="macro"),
            "auroc": cls.MultilabelAUROC(num_classes, average="macro"),
        }
    elif task == "regression":
        metrics = {
            "mse": reg.MeanSquaredError(),
            "pearson": reg.PearsonCorrCoef(),
            "spearman": reg.SpearmanCorrCoef(),
            "r2": reg.R2Score(),
        }
    else:
        raise ValueError(f"unknown task type {task!r}")
    return tm.MetricCollection(metrics)


def metric_mode(name: str) -> str:
    """``min`` for losses and errors, ``max`` for every other metric."""
    return "min" if name.split("/")[-1] in LOWER_IS_BETTER else "max"


def predictions_from_logits(task: str, logits: torch.Tensor, mean: float = 0.0, std: float = 1.0) -> torch.Tensor:
    """Model outputs ``(N, num_outputs)`` -> probabilities (classification) or values (regression).

    binary: ``(N,)`` probability of the positive class; multiclass: ``(N, C)`` softmax;
    multilabel: ``(N, C)`` sigmoids; regression: ``(N,)`` on the original label scale.
    """
    logits = logits.float()
    if task == "binary":
        return torch.sigmoid(logits[:, 0])
    if task == "multiclass":
        return torch.softmax(logits, dim=-1)
    if task == "multilabel":
        return torch.sigmoid(logits)
    return logits[:, 0] * std + mean


def metric_targets(task: str, targets: torch.Tensor, mean: float = 0.0, std: float = 1.0) -> torch.Tensor:
    """Encoded targets -> what the metrics expect (ints for classes, original scale for values)."""
    if task == "regression":
        return targets.float() * std + mean
    return targets.long()

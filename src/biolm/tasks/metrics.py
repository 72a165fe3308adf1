"""Metrics per task type, from torchmetrics (checked against scikit-learn / SciPy in the tests).

In: predictions ``(N,)`` or ``(N, C)`` as returned by `predictions_from_logits` and targets as
encoded by `LabelSpec` (binary ``(N,)`` 0/1, multiclass ``(N,)`` ids, multilabel ``(N, C)``
multi-hot, regression ``(N,)`` values on the original scale).
Out: a `MetricCollection` whose keys are the short names users monitor (``auroc``, ``mcc`` ...).

A metric that is undefined on the evaluated set is NaN, never a number that looks measured:
AUROC of a set (or class) with one label value only, AUPRC / mAP without positives, F1 without
any positive in labels or predictions (scikit-learn's ``zero_division=np.nan``), Pearson /
Spearman with constant predictions or labels, R² with constant labels, and correlations and R²
of fewer than two records. Macro averages are taken over the classes where the per-class metric
is defined (NaN only when it is defined for none). MCC follows scikit-learn: 0 when the
predictions or the labels are all one class. Each metric keeps in ``notes`` why a value is
undefined or follows a convention; `log_notes` logs them as warnings.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torchmetrics as tm
from torchmetrics import classification as cls
from torchmetrics import regression as reg
from torchmetrics.utilities import dim_zero_cat

log = logging.getLogger(__name__)

# Metrics where a lower value is better; every other metric is maximised.
LOWER_IS_BETTER = ("loss", "mse")
NAN = float("nan")
# torchmetrics' own warnings about the degenerate sets we report ourselves (with names) in `notes`
TORCHMETRICS_DEGENERATE = r"(No (positive|negative) samples|The variance of predictions or target is close to zero)"


class Explained:
    """Mixin: the metric says in ``notes`` (filled by ``compute``) why its value is undefined, or
    which convention gave it, on the evaluated set ``split`` with class names ``names``."""

    split: str = "evaluated set"
    names: Sequence[str] = ()
    notes: list[str]

    def explain(self, split: str, names: Sequence[str] | None) -> None:
        self.split, self.names, self.notes = split, list(names or ()), []

    def name_of(self, index: int) -> str:
        return repr(self.names[index]) if index < len(self.names) else f"#{index}"

    def quiet_compute(self):
        """The parent class's ``compute``, without torchmetrics' unnamed warnings about degenerate sets."""
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=TORCHMETRICS_DEGENERATE)
            return super().compute()

    def macro_over_defined(self, per_class: torch.Tensor, defined: torch.Tensor, why: Callable[[int], str]) -> torch.Tensor:
        """Mean of ``per_class`` over the ``defined`` classes, with a note ``why(j)`` for each class left out."""
        for j in torch.nonzero(~defined).flatten().tolist():
            self.notes.append(f"{why(j)}; left out of the macro average")
        if not bool(defined.any()):
            return self.undefined("undefined for every class, so the macro average is undefined too")
        return per_class[defined].float().mean()

    def undefined(self, why: str) -> torch.Tensor:
        self.notes.append(why if why.startswith("undefined") else f"undefined: {why}")
        return torch.tensor(NAN, device=self.device)


def _records(state: list[torch.Tensor] | torch.Tensor) -> torch.Tensor:
    """A concatenated list state (an empty tensor before any update)."""
    return dim_zero_cat(state) if isinstance(state, torch.Tensor) or len(state) else torch.empty(0)


def _binary_labels(metric: Explained) -> tuple[str, str]:
    names = list(metric.names) if len(metric.names) == 2 else ["0", "1"]
    return names[0], names[1]


def sklearn_mcc(confmat: torch.Tensor) -> torch.Tensor:
    """MCC of a ``(C, C)`` confusion matrix as scikit-learn computes it (0 when a marginal is all one class)."""
    counts = confmat.detach().cpu().double()  # float64 for large counts (not on every accelerator)
    t_sum, p_sum = counts.sum(1), counts.sum(0)
    n = counts.sum()
    cov_ytyp = torch.trace(counts) * n - t_sum @ p_sum
    cov_ypyp, cov_ytyt = n**2 - p_sum @ p_sum, n**2 - t_sum @ t_sum
    mcc = torch.zeros(()) if cov_ypyp * cov_ytyt == 0 else cov_ytyp / torch.sqrt(cov_ytyt * cov_ypyp)
    return mcc.to(device=confmat.device, dtype=torch.float32)


class MatthewsNote(Explained):
    """MCC from the ``confmat`` state with scikit-learn's convention, noted when it applies."""

    def compute(self) -> torch.Tensor:
        self.notes = []
        confmat = self.confmat
        predicted, observed = confmat.sum(0), confmat.sum(1)
        if int((predicted > 0).sum()) < 2 or int((observed > 0).sum()) < 2:
            side = "predictions" if int((predicted > 0).sum()) < 2 else "labels"
            self.notes.append(f"the {side} of the {self.split} are all one class; reported as 0 (scikit-learn's convention)")
        return sklearn_mcc(confmat)


class BinaryAUROC(Explained, cls.BinaryAUROC):
    def compute(self) -> torch.Tensor:
        self.notes = []
        target = _records(self.target)
        if target.numel() == 0 or bool(target.min() == target.max()):
            only = _binary_labels(self)[int(target.max())] if target.numel() else None
            return self.undefined(f"the {self.split} holds class {only!r} only; AUROC needs both classes" if only else f"the {self.split} is empty")
        return self.quiet_compute()


class BinaryAveragePrecision(Explained, cls.BinaryAveragePrecision):
    def compute(self) -> torch.Tensor:
        self.notes = []
        if not bool((_records(self.target) == 1).any()):
            return self.undefined(f"the {self.split} has no positive (class {_binary_labels(self)[1]!r})")
        return self.quiet_compute()


class BinaryF1Score(Explained, cls.BinaryF1Score):
    def compute(self) -> torch.Tensor:
        self.notes = []
        if int((self.tp + self.fp + self.fn).sum()) == 0:
            return self.undefined(f"no positive (class {_binary_labels(self)[1]!r}) in the labels of the {self.split} nor in the predictions")
        return self.quiet_compute()


class BinaryMatthewsCorrCoef(MatthewsNote, cls.BinaryMatthewsCorrCoef):
    pass


class MulticlassMatthewsCorrCoef(MatthewsNote, cls.MulticlassMatthewsCorrCoef):
    pass


class MacroF1(Explained):
    """Per-class F1 (``average="none"`` parent) averaged over the classes seen in labels or predictions."""

    def compute(self) -> torch.Tensor:
        self.notes = []
        seen = (self.tp + self.fp + self.fn) > 0
        return self.macro_over_defined(
            self.quiet_compute(), seen, lambda j: f"class {self.name_of(j)} occurs neither in the labels of the {self.split} nor in the predictions"
        )


class MulticlassMacroF1(MacroF1, cls.MulticlassF1Score):
    pass


class MultilabelMacroF1(MacroF1, cls.MultilabelF1Score):
    pass


class MultilabelMicroF1(Explained, cls.MultilabelF1Score):
    def compute(self) -> torch.Tensor:
        self.notes = []
        if int((self.tp + self.fp + self.fn).sum()) == 0:
            return self.undefined(f"no label in the {self.split} nor in the predictions")
        return self.quiet_compute()


class MultilabelAveragePrecision(Explained, cls.MultilabelAveragePrecision):
    def compute(self) -> torch.Tensor:
        self.notes = []
        target = _records(self.target)
        if not len(target):
            return self.undefined(f"the {self.split} is empty")
        has_positive = (target == 1).any(0)
        return self.macro_over_defined(self.quiet_compute(), has_positive, lambda j: f"class {self.name_of(j)} has no positive in the {self.split}")


class MultilabelAUROC(Explained, cls.MultilabelAUROC):
    def compute(self) -> torch.Tensor:
        self.notes = []
        target = _records(self.target)
        if not len(target):
            return self.undefined(f"the {self.split} is empty")
        positives = (target == 1).sum(0)

        def why(j: int) -> str:
            if positives[j] == 0:
                return f"class {self.name_of(j)} has no positive in the {self.split}"
            return f"every record of the {self.split} has class {self.name_of(j)}"

        return self.macro_over_defined(self.quiet_compute(), (positives > 0) & (positives < len(target)), why)


class Ranges:
    """Mixin: exact minimum and maximum of predictions and targets as extra states, to tell
    constant inputs without a tolerance (torchmetrics' own checks use absolute ones)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        for side in ("preds", "target"):
            self.add_state(f"{side}_min", default=torch.tensor(math.inf), dist_reduce_fx="min")
            self.add_state(f"{side}_max", default=torch.tensor(-math.inf), dist_reduce_fx="max")

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        super().update(preds, target)
        for side, values in (("preds", preds), ("target", target)):
            if values.numel():
                setattr(self, f"{side}_min", torch.minimum(getattr(self, f"{side}_min"), values.detach().min().float()))
                setattr(self, f"{side}_max", torch.maximum(getattr(self, f"{side}_max"), values.detach().max().float()))

    def constant_side(self) -> str | None:
        """``labels`` or ``predictions`` when that side holds one value only."""
        if bool(self.target_min == self.target_max):
            return "labels"
        if bool(self.preds_min == self.preds_max):
            return "predictions"
        return None


class Correlation(Ranges, Explained):
    """Pearson / Spearman: NaN for fewer than 2 records or a constant side."""

    def records(self) -> int:
        return int(self.n_total) if hasattr(self, "n_total") else len(_records(self.target))

    def compute(self) -> torch.Tensor:
        self.notes = []
        if self.records() < 2:
            return self.undefined(f"the {self.split} has fewer than 2 records")
        side = self.constant_side()
        if side is not None:
            return self.undefined(f"the {side} of the {self.split} are constant")
        value = self.quiet_compute()
        if torch.isnan(value):
            return self.undefined(f"the predictions or labels of the {self.split} are nearly constant")
        return value


class PearsonCorrCoef(Correlation, reg.PearsonCorrCoef):
    pass


class SpearmanCorrCoef(Correlation, reg.SpearmanCorrCoef):
    pass


class R2Score(Ranges, Explained, reg.R2Score):
    """R²: NaN for fewer than 2 records or constant labels (scikit-learn ``force_finite=False`` is not finite there)."""

    def compute(self) -> torch.Tensor:
        self.notes = []
        if int(self.total) < 2:
            return self.undefined(f"the {self.split} has fewer than 2 records")
        if self.constant_side() == "labels":
            return self.undefined(f"the labels of the {self.split} are constant (R² divides by their variance)")
        return super().compute()


def build_metrics(
    task: str, num_classes: int, class_names: Sequence[str] | None = None, split: str = "evaluated set", threshold: float = 0.5
) -> tm.MetricCollection:
    """The metric collection of a task type (see the module docstring for inputs and undefined values).

    Args:
        task: ``binary``, ``multiclass``, ``multilabel`` or ``regression``.
        num_classes: classes (multiclass) or labels (multilabel); ignored otherwise.
        class_names: names used in the notes (default: class indices).
        split: what the notes call the evaluated records, e.g. ``test set``.
        threshold: binary decision threshold: accuracy, MCC and F1 count a probability at or above it as
            positive (``biolm.tasks.decision``).
    """
    if task == "binary":
        strict = strictly_below(threshold)
        metrics = {
            "accuracy": cls.BinaryAccuracy(threshold=strict),
            "auroc": BinaryAUROC(),
            "auprc": BinaryAveragePrecision(),
            "mcc": BinaryMatthewsCorrCoef(threshold=strict),
            "f1": BinaryF1Score(threshold=strict),
        }
    elif task == "multiclass":
        metrics = {
            "accuracy": cls.MulticlassAccuracy(num_classes, average="micro"),
            "macro_f1": MulticlassMacroF1(num_classes, average="none"),
            "mcc": MulticlassMatthewsCorrCoef(num_classes),
        }
    elif task == "multilabel":
        metrics = {
            "map": MultilabelAveragePrecision(num_classes, average="none"),
            "micro_f1": MultilabelMicroF1(num_classes, average="micro"),
            "macro_f1": MultilabelMacroF1(num_classes, average="none"),
            "auroc": MultilabelAUROC(num_classes, average="none"),
        }
    elif task == "regression":
        metrics = {
            "mse": reg.MeanSquaredError(),
            "pearson": PearsonCorrCoef(),
            "spearman": SpearmanCorrCoef(),
            "r2": R2Score(),
        }
    else:
        raise ValueError(f"unknown task type {task!r}")
    for metric in metrics.values():
        if isinstance(metric, Explained):
            metric.explain(split, class_names)
    return tm.MetricCollection(metrics)


def strictly_below(threshold: float) -> float:
    """The float32 cut-off ``c`` with ``p > c`` exactly when ``p >= threshold`` for float32 ``p`` (torchmetrics
    counts ``p > threshold`` as positive, biolm's decision rule ``p >= threshold``); 0 stays 0."""
    ceiling = np.float32(threshold)
    if float(ceiling) < threshold:
        ceiling = np.nextafter(ceiling, np.float32(np.inf))
    return max(float(np.nextafter(ceiling, np.float32(-np.inf))), 0.0)


def log_notes(collection: tm.MetricCollection, seen: set[str] | None = None) -> None:
    """Log the notes of the last ``compute`` as warnings, ``<metric>: <note>`` (once each when ``seen`` is kept)."""
    for name, metric in collection.items(keep_base=False):
        for note in getattr(metric, "notes", ()):
            message = f"{name}: {note}"
            if seen is not None:
                if message in seen:
                    continue
                seen.add(message)
            log.warning(message)


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

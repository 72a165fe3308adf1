"""What a sequence-level task is: one class per objective, owning its output contract.

An objective turns raw labels into targets (through its `LabelSpec`), model outputs into a loss,
into probabilities or values (`activation`), into metrics and into the prediction table that
`biolm predict`, `evaluate`, the report, the service and variant scoring read (`to_frame`). None
of those callers tests a label-kind string: they ask the run's objective.

Configs choose the class by ``_target_`` in ``configs/task/*.yaml``; a run folder's objective is
rebuilt from its ``labels.json`` (``task``), which is how runs written before ``_target_``
existed still load.

Shapes: logits ``(N, num_outputs)``; values from `activation`: binary ``(N,)`` probability of the
positive class, multiclass ``(N, C)`` softmax, multilabel ``(N, C)`` sigmoids, regression ``(N,)``
on the original label scale.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
import torchmetrics as tm
from omegaconf import DictConfig

from biolm.data.labels import LabelSpec
from biolm.errors import BiolmError
from biolm.tasks import metrics as m
from biolm.tasks.decision import Decision, rates


class SequenceObjective:
    """Base class: one label per sequence.

    Class attributes:
        name: the task type written to ``labels.json`` (``task.type``).
        stratify: draw held-out splits stratified by label.
        plots: the report's plots for this objective (``roc``, ``pr``, ``confusion``, ``scatter``).
        scores_variant_effects: whether `effect_values` gives a per-sequence score whose ALT - REF
            difference is a supervised variant effect.
        serves: whether the HTTP service can answer with it (one prediction and optional class
            probabilities per sequence).
        decides: a decision threshold turns its probabilities into the predicted class (binary): ``task.threshold`` and
            ``task.bands`` apply, and the run keeps them in ``decision.json`` (`biolm.tasks.decision`).
        per_sequence: one output per sequence: `biolm.prediction` computes the values (windows,
            RC averaging) and `to_frame` tabulates them. Objectives without it (per-base outputs)
            implement ``predict_table(run, records, ...)`` and ``evaluate_file(run, data, batch_size)``.

    Args:
        labels: the fitted label space.
    """

    name: ClassVar[str]
    stratify: ClassVar[bool] = False
    plots: ClassVar[tuple[str, ...]] = ()
    scores_variant_effects: ClassVar[bool] = False
    serves: ClassVar[bool] = True
    per_sequence: ClassVar[bool] = True
    decides: ClassVar[bool] = False

    def __init__(self, labels: LabelSpec, decision: Decision | None = None):
        self.labels = labels
        self.decision = decision or Decision()

    @classmethod
    def fit(cls, labels: Sequence[str], where: Callable[[int], str], *, delimiter: str = ";", positive_label: str | None = None) -> SequenceObjective:
        """The objective with its label space fitted on the training labels (see `LabelSpec.fit`)."""
        spec = LabelSpec.fit(cls.name, labels, where, delimiter=delimiter, positive_label=positive_label)
        spec.objective = f"{cls.__module__}.{cls.__qualname__}"
        return cls(spec)

    @property
    def num_outputs(self) -> int:
        """Width of the model's output layer."""
        return self.labels.num_outputs

    @classmethod
    def example_labels(cls, rng: np.random.Generator, n: int) -> list[str]:
        """``n`` labels in this objective's format (for `example_data`)."""
        raise NotImplementedError

    @classmethod
    def example_data(cls, folder: Path, rows: int = 48) -> dict[str, str]:
        """Write a tiny random data set in this objective's format; returns ``data.*`` overrides.

        For smoke tests and documentation: every task config can be trained and used for
        prediction without a hand-written fixture (``tests/tasks/test_task_contract.py``).
        """
        rng = np.random.default_rng(0)
        out = {}
        for split in ("train", "val", "test"):
            sequences = ["".join(rng.choice(list("ACGT"), size=40)) for _ in range(rows)]
            path = Path(folder) / f"{split}.csv"
            pd.DataFrame({"id": [f"{split}{i}" for i in range(rows)], "sequence": sequences, "label": cls.example_labels(rng, rows)}).to_csv(path, index=False)
            out[split] = str(path)
        return out

    @property
    def classes(self) -> list[str]:
        return self.labels.classes

    def build_model(self, model_cfg, vocab_size: int, pad_token_id: int) -> torch.nn.Module:
        """The network for this objective from a model config (trunk + a sequence head)."""
        from biolm.models import build_sequence_model

        return build_sequence_model(model_cfg, vocab_size, pad_token_id, self.num_outputs)

    def encode(self, labels: Sequence[str], where: Callable[[int], str]) -> np.ndarray:
        """Raw label strings -> training targets (errors name the record)."""
        return self.labels.encode(labels, where)

    def loss(self, logits: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
        """The training loss of raw logits ``(B, num_outputs)`` against encoded targets."""
        raise NotImplementedError

    def activation(self, logits: torch.Tensor) -> torch.Tensor:
        """Logits -> probabilities or values (see the module docstring for shapes)."""
        raise NotImplementedError

    def metric_targets(self, targets: torch.Tensor) -> torch.Tensor:
        """Encoded targets -> what the metrics compare `activation` with."""
        return targets.long()

    def update_metrics(self, metrics: tm.MetricCollection, logits: torch.Tensor, targets: torch.Tensor) -> None:
        """Feed one batch of logits and encoded targets to `metrics`."""
        metrics.update(self.activation(logits), self.metric_targets(targets))

    def metrics(self, split: str = "evaluated set") -> tm.MetricCollection:
        """The metric collection (names users monitor: ``auroc``, ``mcc``, ...); ``split`` names the records in notes."""
        return m.build_metrics(self.name, max(len(self.classes), 1), self.classes, split)

    def decision_metrics(self, frame: pd.DataFrame, targets: np.ndarray) -> dict[str, float | int | None]:
        """What the run's decision rule gives on a labelled prediction table (binary: the threshold, confusion counts,
        sensitivity, specificity); empty where there is no threshold."""
        return {}

    def describe_decision(self) -> list[str]:
        """Markdown lines on the decision rule for reports and model cards (empty: none)."""
        return []

    def values_from_frame(self, frame: pd.DataFrame) -> torch.Tensor:
        """The `activation` values back from a prediction table (``to_frame``'s columns)."""
        return torch.tensor(frame[[f"prob_{c}" for c in self.classes]].to_numpy(), dtype=torch.float32)

    def to_frame(self, ids: Sequence[str], values: np.ndarray) -> pd.DataFrame:
        """Per-sequence values -> the prediction table: ``id``, ``prob_<class>`` columns and ``prediction``."""
        raise NotImplementedError

    def probabilities(self, frame: pd.DataFrame) -> list[dict[str, float]] | None:
        """Per-row class probabilities of a prediction table (None: the objective predicts values)."""
        rows = frame[[f"prob_{c}" for c in self.classes]].to_numpy(dtype=float).tolist()
        return [dict(zip(self.classes, row)) for row in rows]

    def effect_values(self, frame: pd.DataFrame) -> np.ndarray:
        """``(N,)`` the per-sequence score whose ALT - REF difference is a supervised variant effect
        (only where `scores_variant_effects`)."""
        raise NotImplementedError(f"{self.name} objectives do not score variant effects")

    # transformers' `problem_type` of this objective's sequence-classification head (None: no equivalent)
    transformers_problem: ClassVar[str | None] = None

    def transformers_head(self, weight: torch.Tensor, bias: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, list[str], str]:
        """The output layer as transformers' ``*ForSequenceClassification`` reads it (`biolm export`):
        ``(weight, bias, label names, note for the model card)``; by default unchanged."""
        return weight, bias, list(self.classes), ""

    def truth_matrix(self, labels: Sequence[str]) -> np.ndarray:
        """``(N, C)`` 0/1 truth per class from raw label strings (for per-class curves)."""
        sets = [{str(text).strip()} for text in labels]
        return np.array([[name in s for name in self.classes] for s in sets], dtype=int)

    def explained(self, logits: torch.Tensor, target: str | None, probabilities: torch.Tensor | None = None) -> tuple[list[int], list[str], float, float]:
        """What attributions explain (`biolm.interpret`): each sequence's output column and its name, and the
        ``(scale, offset)`` that turn that raw output into the reported number (``raw * scale + offset``).

        This default (multiclass, multilabel): the logit of ``target``, or of each row's predicted class (the highest
        of ``probabilities`` when given, e.g. averaged over both strands as `biolm.prediction` averages them; else
        of ``logits``).

        Args:
            logits: ``(N, num_outputs)`` raw outputs.
            target: a class name, or None.
            probabilities: ``(N, num_outputs)`` the probabilities the prediction reports, or None.

        Raises:
            BiolmError: ``target`` is not a class of this run.
        """
        classes = list(self.classes)
        if target is not None:
            if target not in classes:
                raise BiolmError(f"target={target!r}: not a class of this run (accepted: {', '.join(classes)}, or null for each sequence's top class)")
            return [classes.index(target)] * len(logits), [target] * len(logits), 1.0, 0.0
        top = (probabilities if probabilities is not None else logits).argmax(dim=1).tolist()
        return top, [classes[j] for j in top], 1.0, 0.0

    def curve_classes(self) -> list[str]:
        """The classes that get a ROC / precision-recall curve (each one against the rest)."""
        return list(self.classes)

    def class_weights(self, targets: np.ndarray, setting) -> torch.Tensor | None:
        """Loss weights from ``task.class_weights``: null, ``balanced`` or one number per class."""
        from biolm.tasks.sequence import class_weights

        return class_weights(self.name, targets, setting, max(len(self.classes), 1))


class BinaryClassification(SequenceObjective):
    """Two classes; one output, the logit of the positive class (BCE with logits)."""

    name = "binary"
    decides = True
    stratify = True
    plots = ("roc", "pr", "confusion")
    scores_variant_effects = True
    transformers_problem = "single_label_classification"

    def transformers_head(self, weight, bias):
        # one logit z -> two logits [0, z]: softmax gives (1 - sigmoid(z), sigmoid(z))
        return (torch.cat([torch.zeros_like(weight), weight]), torch.cat([torch.zeros_like(bias), bias]), list(self.classes),
                "The binary head's single logit is exported as two logits `[0, z]`.")

    @classmethod
    def example_labels(cls, rng, n):
        return [str(i % 2) for i in range(n)]

    def loss(self, logits, targets, weights=None):
        per_sample = None if weights is None else weights[targets.long()]
        return F.binary_cross_entropy_with_logits(logits.float()[:, 0], targets.float(), weight=per_sample)

    def activation(self, logits):
        return torch.sigmoid(logits.float()[:, 0])

    def values_from_frame(self, frame):
        return torch.tensor(frame[f"prob_{self.classes[1]}"].to_numpy(), dtype=torch.float32)

    def metrics(self, split="evaluated set"):
        return m.build_metrics(self.name, 2, self.classes, split, threshold=self.decision.threshold)

    def to_frame(self, ids, values):
        """``id``, ``prob_<negative>``, ``prob_<positive>``, ``prediction`` (positive at or above the run's decision
        threshold) and, when the run has risk bands, ``call`` (the band's name)."""
        negative, positive = self.classes
        frame = pd.DataFrame({"id": list(ids), f"prob_{negative}": 1.0 - values, f"prob_{positive}": values})
        frame["prediction"] = np.where(self.decision.predict(values), positive, negative)
        if self.decision.bands is not None:
            frame["call"] = self.decision.bands.assign(values)
        return frame

    def decision_metrics(self, frame, targets):
        reached = rates(np.asarray(targets), self.decision.predict(frame[f"prob_{self.classes[1]}"].to_numpy(dtype=np.float64)))
        return {"threshold": self.decision.threshold, **{k: None if isinstance(v, float) and np.isnan(v) else v for k, v in reached.items()}}

    def describe_decision(self):
        decision, positive = self.decision, self.classes[1]
        seen = decision.chosen_on
        lines = [f"Decision threshold: **{decision.threshold:.6g}** on `prob_{positive}` (rule `{decision.rule}`): "
                 f"`prediction` is {positive!r} at or above it (the exact value is in `decision.json`)."]
        if seen.get("error"):
            lines.append(f"The rule failed ({seen['error']}), so the run keeps 0.5.")
        if seen.get("split"):
            sens, spec = seen.get("sensitivity"), seen.get("specificity")
            lines.append(f"Chosen on the {seen['split']} split ({seen['n']} records, {seen['positives']} {positive!r}): "
                         f"sensitivity {_rate(sens)}, specificity {_rate(spec)} there.")
        if decision.bands is not None:
            edges = [0.0, *decision.bands.cutoffs, 1.0]
            spans = [f"{name} [{lo:.6g}, {hi:.6g}{']' if i == len(edges) - 2 else ')'}" for i, (name, lo, hi) in enumerate(zip(decision.bands.names, edges, edges[1:]))]
            lines.append("Risk bands (`call`): " + "; ".join(spans) + ".")
        return lines

    def effect_values(self, frame):
        return frame[f"prob_{self.classes[1]}"].to_numpy(dtype=np.float64)

    def curve_classes(self):
        return self.classes[1:]

    def explained(self, logits, target, probabilities=None):
        positive = self.classes[1]
        if target is not None and target != positive:
            raise BiolmError(f"target={target!r}: a binary run explains its positive class {positive!r} (pass target=null)")
        return [0] * len(logits), [positive] * len(logits), 1.0, 0.0


def _rate(value) -> str:
    return "undefined" if value is None else f"{value:.3f}"


class MulticlassClassification(SequenceObjective):
    """C >= 2 exclusive classes; C outputs (softmax cross-entropy)."""

    name = "multiclass"
    stratify = True
    plots = ("roc", "pr", "confusion")
    transformers_problem = "single_label_classification"

    @classmethod
    def example_labels(cls, rng, n):
        return [("a", "b", "c")[i % 3] for i in range(n)]

    def loss(self, logits, targets, weights=None):
        return F.cross_entropy(logits.float(), targets.long(), weight=weights)

    def activation(self, logits):
        return torch.softmax(logits.float(), dim=-1)

    def to_frame(self, ids, values):
        frame = pd.DataFrame({"id": list(ids), **{f"prob_{name}": values[:, j] for j, name in enumerate(self.classes)}})
        frame["prediction"] = [self.classes[j] for j in values.argmax(axis=1)]
        return frame


class MultilabelClassification(SequenceObjective):
    """Any subset of C labels per sequence (a delimited list); C outputs (per-label BCE with logits)."""

    name = "multilabel"
    plots = ("roc", "pr")
    transformers_problem = "multi_label_classification"

    @classmethod
    def example_labels(cls, rng, n):
        return [("a;b", "b", "", "a;c")[i % 4] for i in range(n)]

    def loss(self, logits, targets, weights=None):
        return F.binary_cross_entropy_with_logits(logits.float(), targets.float(), pos_weight=weights)

    def activation(self, logits):
        return torch.sigmoid(logits.float())

    def to_frame(self, ids, values):
        frame = pd.DataFrame({"id": list(ids), **{f"prob_{name}": values[:, j] for j, name in enumerate(self.classes)}})
        delimiter = self.labels.delimiter
        frame["prediction"] = [delimiter.join(self.classes[j] for j in np.flatnonzero(row >= 0.5)) for row in values]
        return frame

    def truth_matrix(self, labels):
        delimiter = self.labels.delimiter
        sets = [{part.strip() for part in str(text).split(delimiter) if part.strip()} for text in labels]
        return np.array([[name in s for name in self.classes] for s in sets], dtype=int)


class Regression(SequenceObjective):
    """One real value per sequence; one output, trained on standardised targets (MSE)."""

    name = "regression"
    plots = ("scatter",)
    scores_variant_effects = True
    transformers_problem = "regression"

    def transformers_head(self, weight, bias):
        # the run predicts logit * std + mean: fold the label scaling into the layer
        return weight * self.labels.std, bias * self.labels.std + self.labels.mean, ["value"], ""

    @classmethod
    def example_labels(cls, rng, n):
        return [f"{v:.3f}" for v in rng.normal(size=n)]

    def loss(self, logits, targets, weights=None):
        return F.mse_loss(logits.float()[:, 0], targets.float())

    def activation(self, logits):
        return logits.float()[:, 0] * self.labels.std + self.labels.mean

    def metric_targets(self, targets):
        return targets.float() * self.labels.std + self.labels.mean

    def values_from_frame(self, frame):
        return torch.tensor(frame["prediction"].to_numpy(dtype=float), dtype=torch.float32)

    def to_frame(self, ids, values):
        return pd.DataFrame({"id": list(ids), "prediction": values})

    def probabilities(self, frame):
        return None

    def explained(self, logits, target, probabilities=None):
        # the head is trained on standardised targets; the reported value is logit * std + mean, as predict gives
        if target is not None:
            raise BiolmError(f"target={target!r}: a regression run explains its one predicted value (pass target=null)")
        return [0] * len(logits), ["value"] * len(logits), float(self.labels.std), float(self.labels.mean)

    def effect_values(self, frame):
        return frame["prediction"].to_numpy(dtype=np.float64)


# The objectives of runs written before configs named them by `_target_` (labels.json "task").
BUILT_IN: dict[str, type[SequenceObjective]] = {
    cls.name: cls for cls in (BinaryClassification, MulticlassClassification, MultilabelClassification, Regression)
}


def _import_objective(target: str, field: str) -> type[SequenceObjective]:
    from hydra.utils import get_class

    if not str(target).startswith("biolm."):
        raise BiolmError(f"{field}: {target!r} is not a biolm class")
    try:
        found = get_class(str(target))
    except Exception as err:  # noqa: BLE001 - hydra raises ImportError or ValueError variants
        raise BiolmError(f"{field}: cannot import {target!r} ({str(err).splitlines()[0]})") from None
    if not (isinstance(found, type) and issubclass(found, SequenceObjective)):
        raise BiolmError(f"{field}: {target!r} is not a task objective (a SequenceObjective subclass)")
    return found


def objective_class(task_cfg: DictConfig | dict) -> type[SequenceObjective]:
    """The objective class a ``task`` config names: its ``_target_`` (a biolm class), else its ``type``.

    Raises:
        BiolmError: neither names a known objective.
    """
    if task_cfg.get("_target_"):
        return _import_objective(task_cfg["_target_"], "task._target_")
    kind = task_cfg.get("type")
    if kind not in BUILT_IN:
        raise BiolmError(f"task.type: unknown task type {kind!r}; accepted: {', '.join(BUILT_IN)}")
    return BUILT_IN[kind]


def objective_for(labels: LabelSpec) -> SequenceObjective:
    """The objective of a run from its label space (``labels.json``: ``objective``, else ``task``).

    Raises:
        BiolmError: the label file names no known objective.
    """
    if labels.objective:
        return _import_objective(labels.objective, "labels.json objective")(labels)
    if labels.task not in BUILT_IN:
        raise BiolmError(f"labels.json: unknown task type {labels.task!r}; accepted: {', '.join(BUILT_IN)}")
    return BUILT_IN[labels.task](labels)

"""Label spaces for sequence-level tasks: raw label strings <-> training targets.

Task types and what `LabelSpec.encode` returns for N records:
- ``binary``: two classes, targets ``(N,)`` float 0/1; the model has 1 output (logit of the positive class).
- ``multiclass``: C >= 2 classes, targets ``(N,)`` int64 class ids; C outputs.
- ``multilabel``: C labels, each record a delimited list (an empty field: no label), targets ``(N, C)`` float multi-hot; C outputs.
- ``regression``: floats, targets ``(N,)`` float standardised with the training mean/std; 1 output.

The spec is fitted on the training split only and saved as ``labels.json`` with the run.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from biolm.errors import BiolmError

TASK_TYPES = ("binary", "multiclass", "multilabel", "regression")


def _sort_classes(values: set[str]) -> list[str]:
    """Numeric labels in numeric order, others alphabetically."""
    try:
        return sorted(values, key=float)
    except ValueError:
        return sorted(values)


def _is_missing(value: str, allow_empty: bool = False) -> bool:
    text = value.strip().lower()
    return text in ("nan", "na") or (text == "" and not allow_empty)


@dataclass
class LabelSpec:
    """The label space of a run.

    Attributes:
        task: one of TASK_TYPES.
        classes: class names (binary: [negative, positive]; empty for regression).
        delimiter: separator of labels in one multi-label field.
        mean: training-set mean of regression targets.
        std: training-set standard deviation of regression targets.
        objective: the class path of the task objective that owns this label space
            (``biolm.tasks.objectives.*``; None in runs written before it was recorded).
    """

    task: str
    classes: list[str] = field(default_factory=list)
    delimiter: str = ";"
    mean: float = 0.0
    std: float = 1.0
    objective: str | None = None

    @property
    def num_outputs(self) -> int:
        """Width of the model's output layer."""
        return len(self.classes) if self.task in ("multiclass", "multilabel") else 1

    @classmethod
    def fit(
        cls,
        task: str,
        labels: Sequence[str],
        where: Callable[[int], str],
        *,
        delimiter: str = ";",
        positive_label: str | None = None,
    ) -> LabelSpec:
        """Derive the label space from training labels.

        Args:
            task: the task type (``task.type``).
            labels: raw label strings of the training split.
            where: maps a record index to its origin (``file line N``) for messages.
            delimiter: separator of multi-label lists.
            positive_label: for binary tasks, which of the two classes is positive
                (default: the larger in numeric/alphabetic order, so ``1`` over ``0``).
        """
        if task not in TASK_TYPES:
            raise BiolmError(f"task.type: unknown task type {task!r}; accepted: {', '.join(TASK_TYPES)}")
        _check_present(labels, where, allow_empty=task == "multilabel")
        if task == "regression":
            values = _floats(labels, where)
            std = float(values.std()) if len(values) > 1 else 1.0
            return cls(task, [], delimiter, float(values.mean()), std if std > 0 else 1.0)
        if task == "multilabel":
            names = {name for value in labels for name in _split(value, delimiter)}
            return cls(task, _sort_classes(names), delimiter)
        classes = _sort_classes({v.strip() for v in labels})
        if task == "binary":
            if len(classes) != 2:
                shown = ", ".join(classes[:10]) + (", ..." if len(classes) > 10 else "")
                hint = "use task=multiclass" if len(classes) > 2 else "the training labels need both classes"
                raise BiolmError(f"task=binary needs exactly 2 label values in the training data, found {len(classes)}: {shown}; {hint}")
            if positive_label is not None:
                if str(positive_label) not in classes:
                    raise BiolmError(f"task.positive_label: {positive_label!r} is not a label value (found: {', '.join(classes)})")
                classes = [c for c in classes if c != str(positive_label)] + [str(positive_label)]
        elif len(classes) < 2:
            raise BiolmError(f"task=multiclass needs at least 2 label values in the training data, found {classes}")
        return cls(task, classes, delimiter)

    def encode(self, labels: Sequence[str], where: Callable[[int], str]) -> np.ndarray:
        """Turn raw label strings into targets (see module docstring for shapes)."""
        _check_present(labels, where, allow_empty=self.task == "multilabel")
        if self.task == "regression":
            return ((_floats(labels, where) - self.mean) / self.std).astype(np.float32)
        index = {name: i for i, name in enumerate(self.classes)}
        if self.task == "multilabel":
            targets = np.zeros((len(labels), len(self.classes)), dtype=np.float32)
            for row, value in enumerate(labels):
                for name in _split(value, self.delimiter):
                    if name not in index:
                        raise BiolmError(f"{where(row)}: label {name!r} was not seen in training (known: {', '.join(self.classes)})")
                    targets[row, index[name]] = 1.0
            return targets
        ids = np.empty(len(labels), dtype=np.int64)
        for row, value in enumerate(labels):
            key = value.strip()
            if key not in index:
                raise BiolmError(
                    f"{where(row)}: label {key!r} does not match task={self.task} "
                    f"(known labels: {', '.join(self.classes)})"
                )
            ids[row] = index[key]
        return ids.astype(np.float32) if self.task == "binary" else ids

    def to_json(self, path: str | Path) -> None:
        """Write ``labels.json``."""
        Path(path).write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def from_json(cls, path: str | Path) -> LabelSpec:
        """Read ``labels.json``."""
        return cls(**json.loads(Path(path).read_text()))


def _check_present(labels: Sequence[str], where: Callable[[int], str], allow_empty: bool = False) -> None:
    """Every label present; an empty multi-label field is the empty set, not a missing value."""
    for row, value in enumerate(labels):
        if _is_missing(value, allow_empty):
            raise BiolmError(f"{where(row)}: label is empty or NaN; every training/evaluation record needs a label")


def _split(value: str, delimiter: str) -> list[str]:
    return [name.strip() for name in value.split(delimiter) if name.strip()]


def _floats(labels: Sequence[str], where: Callable[[int], str]) -> np.ndarray:
    values = np.empty(len(labels), dtype=np.float64)
    for row, value in enumerate(labels):
        try:
            values[row] = float(value)
        except ValueError:
            raise BiolmError(f"{where(row)}: label {value!r} is not a number (task=regression needs numeric labels)") from None
        if not math.isfinite(values[row]):
            raise BiolmError(f"{where(row)}: label {value!r} is not a finite number")
    return values

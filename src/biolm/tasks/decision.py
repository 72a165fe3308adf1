"""Decision thresholds and risk bands of binary runs.

A binary run predicts the positive class when its probability is at or above the run's decision
threshold, and may sort probabilities into named bands (``low risk`` / ``high risk``). Both are
chosen at the end of `biolm finetune` and kept in the run folder as ``decision.json``; `predict`,
`evaluate`, the report, the export's model card and the service read them from there.

``task.threshold`` (configs/task/binary.yaml) is one of:

- a number in [0, 1]: that threshold (``0.5``, the default, is the usual rule);
- ``youden``: the threshold maximising Youden's J = sensitivity + specificity - 1 on the validation
  split (Youden 1950, *Cancer* 3:32); of equal J, the highest threshold;
- ``sensitivity:0.9``: the highest threshold whose validation sensitivity is at least 0.9 (the best
  specificity that keeps the target);
- ``specificity:0.95``: the lowest threshold whose validation specificity is at least 0.95.

Candidate thresholds are the validation scores themselves (scikit-learn's ``roc_curve``, every
point kept), so the stored threshold is one of them and "positive" means ``probability >= threshold``.

``task.bands`` (null: no ``call`` column) is ``{names: [...], cutoffs: [...]}``: band names from low
to high probability and the ascending cut-offs between them (numbers, or ``threshold`` for the
decision threshold); a probability at a cut-off belongs to the band above it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from biolm.errors import BiolmError

DECISION_FILE = "decision.json"  # in a run folder
RULES = ("youden", "sensitivity:<target>", "specificity:<target>", "a number in [0, 1]")


@dataclass(frozen=True)
class Bands:
    """Named probability bands: ``len(names) == len(cutoffs) + 1``, cut-offs ascending in [0, 1]."""

    names: tuple[str, ...]
    cutoffs: tuple[float, ...]

    def assign(self, probabilities: np.ndarray) -> np.ndarray:
        """``(N,)`` probabilities -> ``(N,)`` band names (a value at a cut-off goes to the band above)."""
        index = np.searchsorted(np.asarray(self.cutoffs, dtype=np.float64), np.asarray(probabilities, dtype=np.float64), side="right")
        return np.asarray(self.names, dtype=object)[index]


@dataclass
class Decision:
    """A binary run's decision rule.

    Attributes:
        threshold: probability of the positive class at or above which it is predicted.
        rule: how it was chosen (``task.threshold``: ``0.5``, ``youden``, ``sensitivity:0.9``, ...).
        bands: the ``call`` column's bands, or None.
        chosen_on: what the rule saw: split name, record counts and the sensitivity / specificity
            reached there (empty for a fixed number).
    """

    threshold: float = 0.5
    rule: str = "0.5"
    bands: Bands | None = None
    chosen_on: dict = field(default_factory=dict)

    def predict(self, probabilities: np.ndarray) -> np.ndarray:
        """``(N,)`` probabilities -> ``(N,)`` bool, positive at or above the threshold."""
        return np.asarray(probabilities) >= self.threshold

    def to_dict(self) -> dict:
        out = asdict(self)
        out["bands"] = None if self.bands is None else {"names": list(self.bands.names), "cutoffs": list(self.bands.cutoffs)}
        return out

    def to_json(self, path: str | Path) -> None:
        """Write ``decision.json`` (the caller stages the run folder)."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def from_json(cls, path: str | Path) -> Decision:
        """Read ``decision.json``.

        Raises:
            BiolmError: the file is not JSON or its fields are out of range (the message names it).
        """
        try:
            data = json.loads(Path(path).read_text())
            bands = data.get("bands")
            return cls(
                threshold=check_threshold(data["threshold"], f"{path}: threshold"),
                rule=str(data.get("rule", data["threshold"])),
                bands=None if bands is None else parse_bands(bands, float(data["threshold"]), f"{path}: bands"),
                chosen_on=dict(data.get("chosen_on") or {}),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            raise BiolmError(f"{path}: not a readable decision file ({err}); fields: threshold, rule, bands, chosen_on") from None


def load_decision(folder: str | Path) -> Decision | None:
    """The ``decision.json`` of a run folder, or None when it has none (runs written before thresholds were stored
    predict at 0.5)."""
    path = Path(folder) / DECISION_FILE
    return Decision.from_json(path) if path.exists() else None


def check_threshold(value, field_name: str, accepted: str = ", ".join(RULES)) -> float:
    """A probability in [0, 1] as float, or a BiolmError naming ``field_name`` and what is ``accepted``."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise BiolmError(f"{field_name}: {value!r} is not a probability; accepted: {accepted}") from None
    if not 0.0 <= number <= 1.0 or math.isnan(number):
        raise BiolmError(f"{field_name}: {value!r} is outside [0, 1]")
    return number


def parse_rule(setting, field_name: str = "task.threshold") -> tuple[str, float]:
    """``task.threshold`` -> ``(kind, value)``: ``("fixed", t)``, ``("youden", nan)``, ``("sensitivity", s)`` or
    ``("specificity", s)``.

    Raises:
        BiolmError: not one of the accepted spellings (listed in the message).
    """
    if setting is None:
        return "fixed", 0.5
    if isinstance(setting, int | float) and not isinstance(setting, bool):
        return "fixed", check_threshold(setting, field_name)
    text = str(setting).strip().lower()
    if text == "youden":
        return "youden", math.nan
    kind, sep, target = text.partition(":")
    if sep and kind in ("sensitivity", "specificity"):
        value = check_threshold(target, f"{field_name}: {kind} target")
        if value == 0.0:
            raise BiolmError(f"{field_name}: a {kind} target of 0 says nothing; pass a target in (0, 1]")
        return kind, value
    try:
        return "fixed", check_threshold(text, field_name)
    except BiolmError:
        raise BiolmError(f"{field_name}: {setting!r} is not a decision rule; accepted: {', '.join(RULES)}") from None


def parse_bands(setting, threshold: float | None, field_name: str = "task.bands") -> Bands | None:
    """``task.bands`` -> `Bands`, ``threshold`` filling the cut-off named ``threshold``. With ``threshold=None`` (a
    rule that picks it after training) the numeric cut-offs are checked among themselves and the ``threshold`` entry
    stays NaN. None or an empty setting -> None.

    Raises:
        BiolmError: names and cut-offs do not fit (the message says how).
    """
    if not setting:
        return None
    example = "{names: [low risk, high risk], cutoffs: [threshold]}"
    if not isinstance(setting, Mapping) or set(setting) - {"names", "cutoffs"}:
        raise BiolmError(f"{field_name}: expected {example}, got {setting!r}")
    if isinstance(setting.get("names"), str) or isinstance(setting.get("cutoffs"), str):
        raise BiolmError(f"{field_name}: names and cutoffs are lists, e.g. {example}")
    names = [str(name) for name in setting.get("names") or ()]
    raw = list(setting.get("cutoffs") or ())
    if len(names) < 2:
        raise BiolmError(f"{field_name}.names: at least 2 band names, from low to high probability (got {names}), e.g. {example}")
    if len(names) != len(raw) + 1:
        raise BiolmError(f"{field_name}: {len(names)} names need {len(names) - 1} cut-off(s) between them, got {len(raw)}")
    if len(set(names)) != len(names):
        raise BiolmError(f"{field_name}.names: band names repeat: {names}")
    cutoffs = []
    for value in raw:
        if str(value).strip().lower() == "threshold":
            cutoffs.append(math.nan if threshold is None else threshold)
        else:
            cutoffs.append(check_threshold(value, f"{field_name}.cutoffs", "a number in [0, 1], or threshold"))
    known = [c for c in cutoffs if not math.isnan(c)]
    if any(b <= a for a, b in zip(known, known[1:])):
        with_threshold = "" if threshold is None else f" (threshold = {threshold:.6g})"
        raise BiolmError(f"{field_name}.cutoffs: {raw} must be strictly ascending{with_threshold}")
    return Bands(tuple(names), tuple(cutoffs))


def rates(truth: np.ndarray, positive: np.ndarray) -> dict[str, float | int]:
    """Confusion counts and rates of 0/1 ``truth`` against bool ``positive`` calls (NaN where a class is absent)."""
    truth, positive = np.asarray(truth).astype(bool), np.asarray(positive).astype(bool)
    tp, fn = int(np.sum(truth & positive)), int(np.sum(truth & ~positive))
    tn, fp = int(np.sum(~truth & ~positive)), int(np.sum(~truth & positive))
    return {
        "tp": tp, "fp": fp, "tn": tn, "fn": fn,
        "sensitivity": tp / (tp + fn) if tp + fn else math.nan,
        "specificity": tn / (tn + fp) if tn + fp else math.nan,
    }


def choose_threshold(truth: Sequence[int], scores: Sequence[float], setting) -> float:
    """The decision threshold of ``task.threshold`` on labelled scores (see the module docstring).

    The rules compare counts, not float rates, so an exactly reached target (93 of 100 negatives for
    ``specificity:0.93``) counts and equal Youden's J ties exactly.

    Args:
        truth: ``(N,)`` 0/1 labels (1 = the positive class).
        scores: ``(N,)`` probabilities of the positive class.
        setting: ``task.threshold``.

    Raises:
        BiolmError: a rule that needs both classes on a split holding one, NaN scores, or an unreachable target.
    """
    from sklearn.metrics import roc_curve

    kind, target = parse_rule(setting)
    if kind == "fixed":
        return target
    truth = np.asarray(truth).astype(int)
    scores = np.asarray(scores, dtype=np.float64)
    if np.isnan(scores).any():
        raise BiolmError(f"task.threshold={setting}: {int(np.isnan(scores).sum())} validation probabilities are NaN (did training diverge?)")
    positives, negatives = int(truth.sum()), int(len(truth) - truth.sum())
    if not positives or not negatives:
        raise BiolmError(f"task.threshold={setting}: the validation split holds one class only ({len(truth)} records), so no threshold can be chosen on it; pass a number")
    fpr, tpr, thresholds = roc_curve(truth, scores, drop_intermediate=False)
    # the first point (threshold +inf) calls nothing positive; counts of true and false positives at the others
    tps, fps, thresholds = np.rint(tpr[1:] * positives).astype(np.int64), np.rint(fpr[1:] * negatives).astype(np.int64), thresholds[1:]
    if kind == "youden":
        j = tps * negatives - fps * positives  # J x positives x negatives, in integers
        index = int(np.flatnonzero(j == j.max())[0])  # thresholds descend: the first of the best is the highest
    elif kind == "sensitivity":
        index = int(np.flatnonzero(tps >= math.ceil(target * positives - 1e-9))[0])
    else:
        reach = np.flatnonzero(negatives - fps >= math.ceil(target * negatives - 1e-9))
        if not len(reach):
            raise BiolmError(f"task.threshold={setting}: no threshold reaches specificity {target} on the validation split")
        index = int(reach[-1])
    return float(thresholds[index])


def decide(task_cfg: Mapping, truth: Sequence[int] | None, scores: Sequence[float] | None, split: str = "val") -> Decision:
    """The run's `Decision` from its task config and the labelled scores of ``split`` (None: a fixed threshold only).

    Raises:
        BiolmError: a rule that needs validation scores without them, or a bad setting.
    """
    setting = task_cfg.get("threshold", 0.5)
    kind, _ = parse_rule(setting)
    if kind != "fixed" and truth is None:
        raise BiolmError(f"task.threshold={setting}: needs a validation split to choose on; pass a number")
    threshold = choose_threshold(truth, scores, setting) if kind != "fixed" else parse_rule(setting)[1]
    chosen_on = {}
    if truth is not None and len(truth):
        reached = rates(np.asarray(truth), np.asarray(scores) >= threshold)
        chosen_on = {"split": split, "n": len(truth), "positives": int(np.sum(truth)), **reached}
        chosen_on = {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in chosen_on.items()}
    rule = "0.5" if setting is None else str(setting)
    return Decision(threshold, rule, parse_bands(task_cfg.get("bands"), threshold), chosen_on)

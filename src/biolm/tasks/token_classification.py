"""Token classification for DNA: one label per base (segmentation), learned per token.

Per-base labels (`biolm.data.base_labels`) become per-token targets through the tokenizer's
geometry: a token takes the label of its **centre base** (`DnaTokenizer.token_labels`; a char
token is its own base, a k-mer's centre is base ``start + (k - 1) // 2``, a BPE token's the
middle one); special tokens and padding get -100 and are left out of the loss and the metrics.
Predictions go back to bases the same way: each base takes the prediction of the token whose
centre is nearest to it among the tokens covering it.

Metrics are over real tokens, as a multi-class problem: ``accuracy``, ``macro_f1``, ``mcc``
(`biolm.tasks.metrics`, undefined values reported as such) and per class ``precision_<c>``,
``recall_<c>``, ``f1_<c>``. The prediction table has one row per predicted segment
(``id``, ``start``, ``end``, ``label``, ``mean_prob``; 0-based half-open), which `biolm predict`
writes as CSV/TSV, or BED for ``output=*.bed``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
import torchmetrics as tm
from torchmetrics import classification as cls

from biolm.data.datasets import Collator
from biolm.data.labels import LabelSpec
from biolm.errors import BiolmError
from biolm.tasks import metrics as m
from biolm.tasks.objectives import SequenceObjective

IGNORE = -100


def _sort(names: set[str]) -> list[str]:
    try:
        return sorted(names, key=float)
    except ValueError:
        return sorted(names)


class TokenClassification(SequenceObjective):
    """One class per base, learned per token (see the module docstring)."""

    name = "token_classification"
    plots = ()
    per_sequence = False
    serves = False  # per-base segments are not in the service's response schema yet

    @classmethod
    def fit_classes(cls, names: set[str]) -> TokenClassification:
        """The objective over the label names seen in training (at least 2).

        Raises:
            BiolmError: fewer than 2 label names.
        """
        classes = _sort(names)
        if len(classes) < 2:
            raise BiolmError(f"task=token_classification needs at least 2 labels among the training bases, found {classes}")
        return cls(LabelSpec(cls.name, classes, objective=f"{cls.__module__}.{cls.__qualname__}"))

    @property
    def num_outputs(self) -> int:
        return len(self.classes)

    @classmethod
    def example_data(cls, folder: Path, rows: int = 32) -> dict[str, str]:
        """A tiny random set: FASTA records of 60 bp, each with one ``gene`` BED interval."""
        rng = np.random.default_rng(0)
        out = {"background": "intergenic"}
        for split in ("train", "val", "test"):
            fasta, bed = [], []
            for i in range(rows):
                start = int(rng.integers(5, 30))
                fasta += [f">{split}{i}", "".join(rng.choice(list("ACGT"), size=60))]
                bed.append(f"{split}{i}\t{start}\t{start + 20}\tgene")
            (Path(folder) / f"{split}.fa").write_text("\n".join(fasta) + "\n")
            (Path(folder) / f"{split}.bed").write_text("\n".join(bed) + "\n")
            out[split], out[f"{split}_bed"] = str(Path(folder) / f"{split}.fa"), str(Path(folder) / f"{split}.bed")
        return out

    def build_model(self, model_cfg, vocab_size: int, pad_token_id: int):
        """Trunk (as the model config builds it) + a per-token linear head."""
        from biolm.models import build_sequence_model
        from biolm.models.token_head import TokenModel

        trunk = build_sequence_model(model_cfg, vocab_size, pad_token_id, self.num_outputs).trunk
        dropout = float((model_cfg.get("head") or {}).get("dropout", 0.1))
        return TokenModel(trunk, self.num_outputs, dropout)

    def token_targets(self, tokenizer, sequence: str, base_classes: np.ndarray) -> np.ndarray:
        """``(T,)`` int64 class id per token of ``tokenizer.encode(sequence)`` (-100 for specials)."""
        return np.asarray(tokenizer.token_labels(sequence, base_classes, ignore_index=IGNORE), dtype=np.int64)

    def loss(self, logits, targets, weights=None):
        """Cross-entropy over real tokens: logits ``(B, L, C)``, targets ``(B, L)`` (-100 ignored)."""
        return F.cross_entropy(logits.float().transpose(1, 2), targets.long(), weight=weights, ignore_index=IGNORE)

    def activation(self, logits):
        """``(B, L, C)`` per-token class probabilities."""
        return torch.softmax(logits.float(), dim=-1)

    def update_metrics(self, metrics: tm.MetricCollection, logits: torch.Tensor, targets: torch.Tensor) -> None:
        """Update with the real tokens only, flattened to ``(M, C)`` probabilities and ``(M,)`` classes."""
        keep = targets != IGNORE
        metrics.update(self.activation(logits)[keep], targets[keep].long())

    def metrics(self, split: str = "evaluated set") -> tm.MetricCollection:
        collection = m.build_metrics("multiclass", len(self.classes), self.classes, f"tokens of the {split}")
        collection.add_metrics({"per_class": PerClassScores(self.classes, f"tokens of the {split}")})
        return collection

    def class_weights(self, targets, setting):
        if setting is None:
            return None
        if setting == "balanced":
            counts = np.bincount(np.concatenate([t[t != IGNORE] for t in targets]), minlength=len(self.classes)).astype(np.float64)
            return torch.tensor(counts.sum() / (len(self.classes) * np.maximum(counts, 1.0)), dtype=torch.float32)
        values = list(setting) if not isinstance(setting, str) else []
        if len(values) != len(self.classes) or any(float(v) <= 0 for v in values):
            raise BiolmError(f"task.class_weights={setting}: accepted: null, balanced, or {len(self.classes)} positive numbers (one per class)")
        return torch.tensor([float(v) for v in values], dtype=torch.float32)

    def base_probabilities(self, tokenizer, sequence: str, token_probs: np.ndarray) -> np.ndarray:
        """``(T, C)`` per-token probabilities -> ``(L, C)`` per base (nearest covering token centre)."""
        spans = np.asarray(tokenizer.token_spans(sequence))[: len(token_probs)]
        length = len(sequence.strip())
        out = np.full((length, token_probs.shape[1]), np.nan, dtype=np.float32)
        best = np.full(length, np.inf)
        for t, (start, end) in enumerate(spans):
            if start < 0:
                continue
            centre = start + (end - start - 1) // 2
            bases = np.arange(start, min(end, length))
            distance = np.abs(bases - centre)
            closer = distance < best[bases]
            out[bases[closer]] = token_probs[t]
            best[bases[closer]] = distance[closer]
        return out

    def segments(self, seq_id: str, base_probs: np.ndarray) -> list[tuple]:
        """Runs of the same predicted class: ``(id, start, end, label, mean_prob)``; bases no token reached are left out."""
        covered = ~np.isnan(base_probs[:, 0])
        predicted = np.where(covered, np.nan_to_num(base_probs).argmax(axis=1), -1)
        rows = []
        start = 0
        for i in range(1, len(predicted) + 1):
            if i == len(predicted) or predicted[i] != predicted[start]:
                if predicted[start] >= 0:
                    k = int(predicted[start])
                    rows.append((seq_id, start, i, self.classes[k], float(base_probs[start:i, k].mean())))
                start = i
        return rows

    def to_frame(self, ids: Sequence[str], values) -> pd.DataFrame:
        """``values``: per record, ``(L, C)`` per-base probabilities -> the segment table."""
        rows = [row for seq_id, probs in zip(ids, values) for row in self.segments(seq_id, probs)]
        return pd.DataFrame(rows, columns=["id", "start", "end", "label", "mean_prob"])

    def evaluate_file(self, run, data, batch_size: int = 64) -> dict[str, float | None]:
        """Metrics over the real tokens of ``data.test`` (+ ``data.test_bed``), as at the end of training, plus ``n``."""
        from biolm.data.base_labels import encode_bases, read_base_labels
        from biolm.data.datasets import tokenize_records

        test = read_base_labels(
            str(data.test), field_name="data.test", sequence_column=data.sequence_column, label_column=data.label_column,
            id_column=data.get("id_column"), bed=data.get("test_bed"), background=str(data.get("background") or "other"),
        )
        tokens = tokenize_records(run.tokenizer, test.records, None)
        targets = []
        for i, sequence in enumerate(test.records.sequences):
            if run.max_tokens is not None and len(tokens[i]) > run.max_tokens:
                raise BiolmError(f"{test.records.where(i)}: {len(tokens[i])} tokens, more than the model's {run.max_tokens}; cut long sequences into pieces first")
            targets.append(self.token_targets(run.tokenizer, sequence, encode_bases(test.runs[i], self.classes, test.records.where(i))))
        metrics = token_metrics(run, tokens, targets, batch_size)
        metrics["n"] = len(test)
        return metrics

    def predict_table(self, run, records, batch_size: int = 64, tokens=None, aggregate=None, rc_average=None) -> pd.DataFrame:
        """Per-base predictions of ``records`` as predicted segments (see the module docstring).

        Raises:
            BiolmError: window or reverse-complement options (not supported for per-base labels yet),
                or a sequence longer than the model accepts.
        """
        from biolm.data.datasets import tokenize_records

        if aggregate not in (None, "mean") or rc_average:
            raise BiolmError("token classification predicts every base of whole sequences; aggregate= and rc_average= do not apply")
        tokens = tokens if tokens is not None else tokenize_records(run.tokenizer, records, None)
        too_long = [i for i, t in enumerate(tokens) if run.max_tokens is not None and len(t) > run.max_tokens]
        if too_long:
            raise BiolmError(f"{records.where(too_long[0])}: {len(tokens[too_long[0]])} tokens, more than the model's {run.max_tokens}; cut long sequences into pieces first")
        collate = PaddedTargetsCollator(run.tokenizer.pad_id)
        device = next(run.model.parameters()).device
        values = []
        with torch.inference_mode():
            for start in range(0, len(tokens), batch_size):
                batch = collate([(tokens[i], None, i) for i in range(start, min(start + batch_size, len(tokens)))])
                probs = self.activation(run.model(batch["input_ids"].to(device), batch["attention_mask"].to(device)).logits).cpu().numpy()
                for row, i in enumerate(batch["index"].tolist()):
                    values.append(self.base_probabilities(run.tokenizer, records.sequences[i], probs[row, : len(tokens[i])]))
        return self.to_frame(records.ids, values)


class PerClassScores(tm.Metric):
    """``precision_<c>``, ``recall_<c>``, ``f1_<c>`` per class from multi-class predictions.

    Undefined values are NaN with a note (`biolm.tasks.metrics.log_notes`), as scikit-learn's
    ``zero_division=np.nan``: precision of a class never predicted, recall of a class absent from
    the labels, F1 of a class absent from both.

    Args:
        classes: class names, in output order.
        split: what the notes call the evaluated records.
    """

    full_state_update = False

    def __init__(self, classes: Sequence[str], split: str = "evaluated set"):
        super().__init__()
        self.classes = list(classes)
        self.split = split
        self.scores = cls.MulticlassStatScores(len(self.classes), average=None)
        self.notes: list[str] = []

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        self.scores.update(preds, target)

    def compute(self) -> dict[str, torch.Tensor]:
        tp, fp, _, fn, _ = self.scores.compute().double().unbind(-1)
        nan = torch.tensor(float("nan"), dtype=torch.float64)
        precision = torch.where(tp + fp > 0, tp / (tp + fp).clamp(min=1), nan)
        recall = torch.where(tp + fn > 0, tp / (tp + fn).clamp(min=1), nan)
        f1 = torch.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn).clamp(min=1), nan)
        self.notes = []
        for j, name in enumerate(self.classes):
            if tp[j] + fp[j] == 0:
                self.notes.append(f"class {name!r} is never predicted on the {self.split}; its precision is undefined")
            if tp[j] + fn[j] == 0:
                self.notes.append(f"class {name!r} is absent from the {self.split}; its recall is undefined")
        out = {}
        for metric, values in (("precision", precision), ("recall", recall), ("f1", f1)):
            out.update({f"{metric}_{name}": values[j].float() for j, name in enumerate(self.classes)})
        return out

    def reset(self) -> None:
        super().reset()
        self.scores.reset()


class PaddedTargetsCollator(Collator):
    """`Collator` for per-token targets: pads them with -100 to the batch's length."""

    def __call__(self, items):
        batch = super().__call__([(ids, None, i) for ids, _, i in items])
        if items[0][1] is not None:
            labels = np.full(batch["input_ids"].shape, IGNORE, dtype=np.int64)
            for row, (_, target, _) in enumerate(items):
                labels[row, : len(target)] = target
            batch["labels"] = torch.from_numpy(labels)
        return batch


@torch.inference_mode()
def token_metrics(run, tokens: list[np.ndarray], targets: list[np.ndarray], batch_size: int) -> dict[str, float | None]:
    """The objective's metrics over the real tokens of a labelled set (None where undefined)."""
    objective = run.objective
    metrics = objective.metrics("test set")
    collate = PaddedTargetsCollator(run.tokenizer.pad_id)
    for start in range(0, len(tokens), batch_size):
        batch = collate([(tokens[i], targets[i], i) for i in range(start, min(start + batch_size, len(tokens)))])
        device = next(run.model.parameters()).device
        logits = run.model(batch["input_ids"].to(device), batch["attention_mask"].to(device)).logits.cpu()
        objective.update_metrics(metrics, logits, batch["labels"])
    values = {name: float(value) for name, value in metrics.compute().items()}
    m.log_notes(metrics)
    return {name: None if np.isnan(value) else value for name, value in values.items()}

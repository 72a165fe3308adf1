"""Tokenised sequence datasets, batching, and the Lightning data module.

In: `SequenceRecords` (from `biolm.data.io`), a tokenizer, a `LabelSpec`.
Out: batches ``{"input_ids": (B, L) int64, "attention_mask": (B, L) bool,
"labels": (B,) or (B, C), "index": (B,) int64}`` padded to the longest sequence in the batch.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import lightning as L
import numpy as np
import torch
from sklearn.model_selection import train_test_split
from torch.utils.data import DataLoader, Dataset

from biolm.data.io import SequenceRecords, read_records
from biolm.data.labels import LabelSpec
from biolm.errors import BiolmError, InvalidSequenceError

log = logging.getLogger(__name__)


def tokenize_records(tokenizer, records: SequenceRecords, max_tokens: int | None) -> list[np.ndarray]:
    """Tokenise every record; a bad character is reported with the record's file and line.

    Sequences longer than ``max_tokens`` keep their first ``max_tokens - 1`` tokens and the
    closing special token (a warning counts them).
    """
    for i, seq in enumerate(records.sequences):
        if not seq.strip():
            raise BiolmError(f"{records.where(i)}: sequence is empty")
    try:
        tokens = tokenizer.encode_batch(records.sequences)
    except InvalidSequenceError as err:
        raise BiolmError(f"{records.where(err.index)}: {err.problem}") from None
    if max_tokens is not None:
        cut = sum(len(ids) > max_tokens for ids in tokens)
        tokens = [truncate_tokens(tokenizer, ids, max_tokens) for ids in tokens]
        if cut:
            log.warning(
                "%s: %d of %d sequences truncated to %d tokens (the model's limit; data.window.size cuts long inputs into windows instead)",
                records.source,
                cut,
                len(tokens),
                max_tokens,
            )
    return tokens


def truncate_tokens(tokenizer, ids: np.ndarray, max_tokens: int | None) -> np.ndarray:
    """The first ``max_tokens - 1`` tokens and the closing special token (unchanged when short enough)."""
    if max_tokens is None or len(ids) <= max_tokens:
        return ids
    end = ids[-1:] if getattr(tokenizer, "add_special_tokens", True) else ids[max_tokens - 1 : max_tokens]
    return np.concatenate([ids[: max_tokens - 1], end])


class TokenDataset(Dataset):
    """Token id arrays with optional targets; item ``i`` is ``(ids, target, i)``."""

    def __init__(self, tokens: Sequence[np.ndarray], targets: np.ndarray | None = None):
        self.tokens = tokens
        self.targets = targets

    def __len__(self) -> int:
        return len(self.tokens)

    def __getitem__(self, index: int):
        target = None if self.targets is None else self.targets[index]
        return self.tokens[index], target, index


@dataclass
class Collator:
    """Pads a list of dataset items into one batch (see module docstring)."""

    pad_id: int

    def __call__(self, items) -> dict[str, torch.Tensor]:
        length = max(len(ids) for ids, _, _ in items)
        input_ids = np.full((len(items), length), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(items), length), dtype=bool)
        for row, (ids, _, _) in enumerate(items):
            input_ids[row, : len(ids)] = ids
            mask[row, : len(ids)] = True
        batch = {
            "input_ids": torch.from_numpy(input_ids),
            "attention_mask": torch.from_numpy(mask),
            "index": torch.tensor([i for _, _, i in items], dtype=torch.long),
        }
        if items[0][1] is not None:
            batch["labels"] = torch.from_numpy(np.stack([t for _, t, _ in items]))
        return batch


def load_splits(data_cfg, task_type: str) -> dict[str, SequenceRecords]:
    """Read train/val/test records from ``data_cfg``, splitting the train file when asked.

    ``data.val`` / ``data.test`` may be null: then a seeded share (``data.split.val`` /
    ``data.split.test``) of the training file is held out, stratified by label for
    classification tasks.
    """
    if not data_cfg.get("train"):
        raise BiolmError("data.train: no training file given; pass data.train=path/to/train.csv (or choose a data= config)")
    read = dict(
        sequence_column=data_cfg.sequence_column,
        label_column=data_cfg.label_column,
        id_column=data_cfg.get("id_column"),
        require_label=True,
        labels_file=data_cfg.get("labels_file"),
    )
    splits = {"train": read_records(data_cfg.train, field_name="data.train", **read)}
    for name in ("val", "test"):
        if data_cfg.get(name):
            splits[name] = read_records(data_cfg[name], field_name=f"data.{name}", **read)
    missing = [name for name in ("val", "test") if name not in splits]
    if missing:
        splits.update(_hold_out(splits["train"], missing, data_cfg.split, task_type))
        splits["train"] = splits.pop("_rest")
    return splits


def _hold_out(records: SequenceRecords, names: list[str], split_cfg, task_type: str) -> dict[str, SequenceRecords]:
    rest = np.arange(len(records))
    out: dict[str, SequenceRecords] = {}
    stratify_ok = task_type in ("binary", "multiclass")
    for offset, name in enumerate(names):
        share = float(split_cfg[name])
        if not 0.0 < share < 1.0:
            raise BiolmError(f"data.split.{name}: must be between 0 and 1 when data.{name} is not given, got {share}")
        size = share / (1.0 - sum(float(split_cfg[n]) for n in names[:offset]))
        strata = [records.labels[i].strip() for i in rest] if stratify_ok else None
        try:
            rest, held = train_test_split(rest, test_size=size, random_state=int(split_cfg.seed) + offset, stratify=strata)
        except ValueError:
            rest, held = train_test_split(rest, test_size=size, random_state=int(split_cfg.seed) + offset)
        out[name] = records.subset(sorted(held))
    out["_rest"] = records.subset(sorted(rest))
    return out


class SequenceDataModule(L.LightningDataModule):
    """Serves tokenised train/val/test splits as padded batches."""

    def __init__(self, datasets: dict[str, TokenDataset], pad_id: int, batch_size: int, num_workers: int = 0, eval_batch_size: int | None = None):
        super().__init__()
        self.datasets = datasets
        self.collate = Collator(pad_id)
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = num_workers

    def _loader(self, name: str, shuffle: bool) -> DataLoader:
        return DataLoader(
            self.datasets[name],
            batch_size=self.batch_size if shuffle else self.eval_batch_size,
            shuffle=shuffle,
            collate_fn=self.collate,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def set_epoch(self, epoch: int) -> None:
        """Pass the epoch to a training set that augments per epoch."""
        if hasattr(self.datasets["train"], "set_epoch"):
            self.datasets["train"].set_epoch(epoch)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)


def encode_labels(spec: LabelSpec, records: SequenceRecords) -> np.ndarray:
    """Targets for ``records`` under ``spec`` (errors name the record's file and line)."""
    return spec.encode(records.labels, records.where)

"""Tokenised sequence datasets, batching, and the Lightning data module.

In: `SequenceRecords` (from `biolm.data.io`), a tokenizer, a `LabelSpec`.
Out: batches ``{"input_ids": (B, L) int64, "attention_mask": (B, L) bool,
"labels": (B,) or (B, C), "index": (B,) int64}`` padded to the longest sequence in the batch.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import lightning as L
import numpy as np
import torch
from sklearn.model_selection import train_test_split
from torch.utils.data import DataLoader, Dataset, Sampler, Subset

from biolm.data.bucketing import LengthBucketBatches
from biolm.data.io import SequenceRecords, read_records
from biolm.data.labels import LabelSpec
from biolm.errors import BiolmError, InvalidSequenceError

log = logging.getLogger(__name__)


def tokenize_records(tokenizer, records: SequenceRecords, max_tokens: int | None) -> list[np.ndarray]:
    """Tokenise every record; a bad character or a too-short sequence is reported with the record's file and line.

    Sequences longer than ``max_tokens`` keep their first ``max_tokens - 1`` tokens and the
    closing special token (a warning counts them).

    Raises:
        BiolmError: a sequence is empty or shorter than the tokenizer's ``min_length_bp`` (naming
            the first few such records), or holds a character outside the tokenizer's alphabet.
    """
    check_lengths(tokenizer, records)
    try:
        tokens = tokenizer.encode_batch(records.sequences)
    except InvalidSequenceError as err:
        raise BiolmError(f"{records.where(err.index)}: {err.problem}") from None
    if max_tokens is not None:
        cut = sum(len(ids) > max_tokens for ids in tokens)
        tokens = [truncate_tokens(tokenizer, ids, max_tokens) for ids in tokens]
        if cut:
            log.warning(
                "%s: %d of %d sequences truncated to %d tokens (the model's limit; data.window_bp cuts long inputs into windows instead)",
                records.source,
                cut,
                len(tokens),
                max_tokens,
            )
    return tokens


def check_lengths(tokenizer, records: SequenceRecords, shown: int = 3) -> None:
    """Refuse records shorter than ``tokenizer.min_length_bp`` (empty ones included).

    A k-mer tokenizer would turn each of them into the same lone ``[UNK]``, so different
    sequences would silently get identical predictions.

    Raises:
        BiolmError: ``<file>: 3 sequences are shorter than 6 bases (line 1 'a' (3 bp), ...); the
            6-mer tokenizer needs at least 6 bases`` (the first ``shown`` records, then a count).
    """
    short = tokenizer.too_short(records.sequences)
    if not short:
        return
    minimum = int(tokenizer.min_length_bp)
    named = []
    for i in short[:shown]:
        length = len(records.sequences[i].strip())
        named.append(f"{records.line_word} {records.lines[i]} {records.ids[i]!r}" + (f" ({length} bp)" if minimum > 1 else ""))
    more = f" and {len(short) - shown} more" if len(short) > shown else ""
    what = "empty" if minimum == 1 else f"shorter than {minimum} bases"
    verb = "is" if len(short) == 1 else "are"
    raise BiolmError(
        f"{records.source}: {len(short)} sequence{'s' if len(short) != 1 else ''} {verb} {what} "
        f"({', '.join(named)}{more}); {tokenizer.length_rule} (remove or lengthen those records)"
    )


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


def load_splits(data_cfg, stratify: bool = False) -> dict[str, SequenceRecords]:
    """Read train/val/test records from ``data_cfg``, splitting the train file when asked.

    ``data.val`` / ``data.test`` may be null: then a seeded share (``data.split.val`` /
    ``data.split.test``) of the training file is held out (``ceil(share * rows)`` rows, as
    scikit-learn counts). Every split needs at least one row; a file too small for that is
    refused with the rows each split would get and the minimum needed. With ``stratify`` (the
    objective's choice: classification) splits are stratified by label; a split is drawn without stratification when a class among the rows
    left to split has a single row (one warning names the class) or when the split is smaller
    than the number of classes (it cannot hold each of them anyway).
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
        splits.update(_hold_out(splits["train"], missing, data_cfg.split, stratify))
        splits["train"] = splits.pop("_rest")
    return splits


def split_sizes(n_rows: int, shares: dict[str, float]) -> dict[str, int]:
    """Rows per split when ``shares`` (in order) are held out of ``n_rows`` one after another.

    Each held-out split gets ``ceil(share / (1 - earlier shares) * rows left)`` rows, exactly as
    ``train_test_split`` counts a float ``test_size``; ``"train"`` gets the rest.
    """
    rest = n_rows
    sizes: dict[str, int] = {}
    taken = 0.0
    for name, share in shares.items():
        sizes[name] = math.ceil(share / (1.0 - taken) * rest)
        rest = max(rest - sizes[name], 0)
        taken += share
    return {"train": rest, **sizes}


def _check_shares(split_cfg, names: list[str]) -> dict[str, float]:
    shares = {}
    for name in names:
        share = float(split_cfg[name])
        if not 0.0 < share < 1.0:
            raise BiolmError(f"data.split.{name}: must be between 0 and 1 when data.{name} is not given, got {share}")
        shares[name] = share
    if sum(shares.values()) >= 1.0:
        given = " + ".join(f"data.split.{n}={v:g}" for n, v in shares.items())
        raise BiolmError(f"data.split: {given} leaves nothing to train on; the held-out shares must add up to less than 1")
    return shares


def _check_split_sizes(records: SequenceRecords, shares: dict[str, float]) -> dict[str, int]:
    sizes = split_sizes(len(records), shares)
    if min(sizes.values()) >= 1:
        return sizes
    needed = next(n for n in range(len(records) + 1, 1_000_000) if min(split_sizes(n, shares).values()) >= 1)
    given = " and ".join(f"data.split.{n}={v:g}" for n, v in shares.items())
    counts = ", ".join(f"{name} {count}" for name, count in sizes.items())
    rows = f"{len(records)} row{'s' if len(records) != 1 else ''}"
    raise BiolmError(
        f"data.train: {records.source} has {rows}, too few to hold out {given}: the splits would get {counts} rows; "
        f"every split needs at least 1 row, so at least {needed} rows are needed "
        f"(add rows, or pass {' and '.join(f'data.{n}=' for n in shares)} files)"
    )


def _rare_class(strata: list[str]) -> str | None:
    """The first class (in sorted order) with a single row, which no stratified split can place, or None."""
    singles = sorted(label for label, count in Counter(strata).items() if count < 2)
    return singles[0] if singles else None


def _hold_out(records: SequenceRecords, names: list[str], split_cfg, stratify: bool) -> dict[str, SequenceRecords]:
    shares = _check_shares(split_cfg, names)
    sizes = _check_split_sizes(records, shares)
    rest = np.arange(len(records))
    out: dict[str, SequenceRecords] = {}
    unstratified: list[str] = []
    for offset, name in enumerate(names):
        held_rows = sizes[name]
        strata = [records.labels[i].strip() for i in rest] if stratify else None
        if strata is not None:
            rare = _rare_class(strata)
            if rare is not None:
                unstratified.append(f"data.{name} (class {rare!r} has 1 row among the {len(rest)} rows left to split)")
                strata = None
            elif min(held_rows, len(rest) - held_rows) < len(set(strata)):
                strata = None  # a split smaller than the number of classes cannot hold each of them anyway
        rest, held = train_test_split(rest, test_size=held_rows, random_state=int(split_cfg.seed) + offset, stratify=strata)
        out[name] = records.subset(sorted(held))
    out["_rest"] = records.subset(sorted(rest))
    if unstratified:
        log.warning("%s: %s drawn without stratifying by label", records.source, " and ".join(unstratified))
    return out


class EpochShuffle(Sampler):
    """A training order drawn from ``(seed, epoch)`` alone.

    The epoch is read when the epoch's iterator starts (``epoch_of()``), so a run resumed from a
    checkpoint draws the order the uninterrupted run drew, whatever the global random state and
    however early the loader prefetches. Datasets that draw per epoch (``per_epoch=True``, e.g.
    augmentation) receive ``(epoch, index)`` pairs, which also reach persistent worker processes.

    Args:
        n: number of items.
        seed: the run's seed.
        epoch_of: returns the epoch being started (0-based).
        per_epoch: yield ``(epoch, index)`` instead of ``index``.
    """

    def __init__(self, n: int, seed: int, epoch_of: Callable[[], int], per_epoch: bool = False):
        self.n = int(n)
        self.seed = int(seed)
        self.epoch_of = epoch_of
        self.per_epoch = per_epoch

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator:
        epoch = int(self.epoch_of())
        generator = torch.Generator().manual_seed(hash((self.seed, epoch)) % (2**63))
        order = torch.randperm(self.n, generator=generator).tolist()
        return iter([(epoch, i) for i in order] if self.per_epoch else order)


def item_lengths(dataset: Dataset) -> list[int] | None:
    """Each item's length for length bucketing: tokens of a `TokenDataset`, bases of a dataset that
    tokenises on the fly (``.sequences``, e.g. augmentation: the same order as its tokens), or None."""
    if isinstance(dataset, TokenDataset):
        return [len(ids) for ids in dataset.tokens]
    sequences = getattr(dataset, "sequences", None)
    return None if sequences is None else [len(seq) for seq in sequences]


class SequenceDataModule(L.LightningDataModule):
    """Serves tokenised train/val/test splits as padded batches.

    The training order is drawn from ``(seed, epoch)`` alone (a resumed run sees the batches the
    uninterrupted run saw): an `EpochShuffle`, or with ``bucket_pool > 1`` length-bucketed batches
    (`biolm.data.bucketing.LengthBucketBatches`: pools of ``bucket_pool`` batches sorted by length,
    then the batches shuffled), which pad far less when lengths vary. Validation and test items are
    served shortest first, for the same reason; each batch's ``index`` still names the items.
    """

    def __init__(
        self,
        datasets: dict[str, TokenDataset],
        pad_id: int,
        batch_size: int,
        num_workers: int = 0,
        eval_batch_size: int | None = None,
        seed: int = 0,
        bucket_pool: int = 1,
    ):
        super().__init__()
        self.datasets = datasets
        self.collate = Collator(pad_id)
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = num_workers
        self.seed = seed
        self.bucket_pool = int(bucket_pool)

    def _loader(self, dataset: Dataset, **batching) -> DataLoader:
        return DataLoader(dataset, collate_fn=self.collate, num_workers=self.num_workers, persistent_workers=self.num_workers > 0, **batching)

    def _epoch(self) -> int:
        return int(self.trainer.current_epoch) if self.trainer is not None else 0

    def train_dataloader(self) -> DataLoader:
        train = self.datasets["train"]
        per_epoch = hasattr(train, "set_epoch")
        lengths = item_lengths(train) if self.bucket_pool > 1 else None
        if lengths is None:
            if self.bucket_pool > 1:
                log.info("data.bucket_pool=%d: %s has no item lengths; training batches are plain shuffled", self.bucket_pool, type(train).__name__)
            return self._loader(train, batch_size=self.batch_size, sampler=EpochShuffle(len(train), self.seed, self._epoch, per_epoch=per_epoch))
        batches = LengthBucketBatches(lengths, self.batch_size, self.seed, self._epoch, self.bucket_pool, per_epoch=per_epoch)
        return self._loader(train, batch_sampler=batches)

    def _eval_loader(self, name: str) -> DataLoader:
        dataset = self.datasets[name]
        lengths = item_lengths(dataset)
        if lengths is not None:
            dataset = Subset(dataset, sorted(range(len(lengths)), key=lengths.__getitem__))
        return self._loader(dataset, batch_size=self.eval_batch_size)

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader("test")


def encode_labels(spec: LabelSpec, records: SequenceRecords) -> np.ndarray:
    """Targets for ``records`` under ``spec`` (errors name the record's file and line)."""
    return spec.encode(records.labels, records.where)

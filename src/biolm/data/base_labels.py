"""Per-base labels (segmentation: gene / intergenic, exon / intron, splice sites) for sequences.

Two ways to give them:

- a **label string** the length of the sequence, one character per base, in a table column
  (``data.label_column``): ``sequence=ACGTAC, labels=iiggg i`` -> classes ``g`` and ``i``;
- **BED intervals over FASTA records** (``data.<split>_bed``): ``chrom start end name`` with
  ``chrom`` a record id and 0-based half-open coordinates relative to the record; bases outside
  every interval get ``data.background`` (e.g. ``intergenic``). Overlapping intervals with the
  same name merge; with different names they are refused (which label would a base take?).

Out: `BaseLabels`, the records plus, per record, its labels as runs ``(start, end, name)``
covering every base exactly once. `encode_bases` turns runs into class ids ``(L,)`` int64.
"""

from __future__ import annotations

import gzip
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from biolm.data.io import SequenceRecords, read_records
from biolm.errors import BiolmError

Run = tuple[int, int, str]


@dataclass
class BaseLabels:
    """Sequences with one label per base.

    Attributes:
        records: the sequences (ids, origins for messages).
        runs: per record, ``(start, end, name)`` runs covering bases ``0..len`` in order.
    """

    records: SequenceRecords
    runs: list[list[Run]]

    def __len__(self) -> int:
        return len(self.records)

    def names(self) -> set[str]:
        """Every label name used."""
        return {name for runs in self.runs for _, _, name in runs}

    def subset(self, indices) -> BaseLabels:
        pick = list(indices)
        return BaseLabels(self.records.subset(pick), [self.runs[i] for i in pick])


def runs_of(labels: str) -> list[Run]:
    """Runs of a per-base label string (one character per base)."""
    runs: list[Run] = []
    start = 0
    for i in range(1, len(labels) + 1):
        if i == len(labels) or labels[i] != labels[start]:
            runs.append((start, i, labels[start]))
            start = i
    return runs


def encode_bases(runs: list[Run], classes: list[str], where: str) -> np.ndarray:
    """Runs -> class id per base ``(L,)`` int64.

    Raises:
        BiolmError: a label name not among ``classes`` (``where`` names the record).
    """
    index = {name: i for i, name in enumerate(classes)}
    length = runs[-1][1] if runs else 0
    out = np.empty(length, dtype=np.int64)
    for start, end, name in runs:
        if name not in index:
            raise BiolmError(f"{where}: label {name!r} was not seen in training (known: {', '.join(classes)})")
        out[start:end] = index[name]
    return out


def read_base_labels(
    path: str,
    *,
    field_name: str,
    sequence_column: str = "sequence",
    label_column: str = "labels",
    id_column: str | None = "id",
    bed: str | None = None,
    background: str = "other",
) -> BaseLabels:
    """Read sequences with per-base labels (see the module docstring for the two layouts).

    Args:
        path: a table (label strings in ``label_column``) or, with ``bed``, a FASTA file.
        field_name: the config key that named the file, for messages.
        bed: BED intervals over the records of ``path`` (plain or gzip).
        background: the label of bases outside every BED interval.

    Raises:
        BiolmError: a label string whose length differs from its sequence, a BED line naming an
            unknown record, out of its bounds, malformed, or overlapping another label.
    """
    if bed is None:
        records = read_records(path, field_name=field_name, sequence_column=sequence_column, label_column=label_column, id_column=id_column, require_label=True)
        runs = []
        for i, (sequence, labels) in enumerate(zip(records.sequences, records.labels)):
            if len(labels) != len(sequence):
                raise BiolmError(
                    f"{records.where(i)}: the label string has {len(labels)} characters for {len(sequence)} bases; "
                    "give one label character per base"
                )
            runs.append(runs_of(labels))
        return BaseLabels(records, runs)
    records = read_records(path, field_name=field_name, label_column=None, id_column=id_column)
    intervals = _read_bed(bed, f"{field_name} BED", records)
    return BaseLabels(records, [_fill(intervals.get(rid, []), len(seq), background) for rid, seq in zip(records.ids, records.sequences)])


def _read_bed(path: str, field: str, records: SequenceRecords) -> dict[str, list[tuple[int, int, str, str]]]:
    if not Path(path).is_file():
        raise BiolmError(f"{field}: file not found: {path}")
    lengths = dict(zip(records.ids, (len(s) for s in records.sequences)))
    opener = gzip.open if str(path).endswith(".gz") else open
    out: dict[str, list[tuple[int, int, str, str]]] = defaultdict(list)
    try:
        with opener(path, "rt") as handle:
            lines = handle.read().splitlines()
    except (OSError, UnicodeDecodeError, EOFError) as err:
        raise BiolmError(f"{path}: not a readable BED file ({err})") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip() or line.startswith(("#", "track", "browser")):
            continue
        parts = line.rstrip("\n").split("\t") if "\t" in line else line.split()
        where = f"{path} line {number}"
        if len(parts) < 4:
            raise BiolmError(f"{where}: expected 'chrom start end name' (tab-separated), got {len(parts)} field(s)")
        chrom, start, end, name = parts[0], parts[1], parts[2], parts[3].strip()
        try:
            start_i, end_i = int(start), int(end)
        except ValueError:
            raise BiolmError(f"{where}: start and end must be integers, got {start!r} and {end!r}") from None
        if chrom not in lengths:
            raise BiolmError(f"{where}: record {chrom!r} is not in {records.source}")
        if not 0 <= start_i < end_i <= lengths[chrom]:
            raise BiolmError(f"{where}: interval {start_i}-{end_i} is outside record {chrom!r} (0-{lengths[chrom]}, 0-based half-open)")
        if not name:
            raise BiolmError(f"{where}: empty name; the name is the label of the interval's bases")
        out[chrom].append((start_i, end_i, name, where))
    return out


def _fill(intervals: list[tuple[int, int, str, str]], length: int, background: str) -> list[Run]:
    """Runs covering 0..length: the (merged) intervals, background in the gaps."""
    runs: list[Run] = []
    position = 0
    for start, end, name, where in sorted(intervals):
        if runs and start < runs[-1][1]:
            last_start, last_end, last_name = runs[-1]
            if last_name != name:
                raise BiolmError(f"{where}: {name!r} interval {start}-{end} overlaps {last_name!r} {last_start}-{last_end}; a base takes one label")
            runs[-1] = (last_start, max(last_end, end), name)
            position = runs[-1][1]
            continue
        if start > position:
            runs.append((position, start, background))
        runs.append((start, end, name))
        position = end
    if position < length:
        runs.append((position, length, background))
    # neighbouring runs of one name (an interval named like the background) join
    joined: list[Run] = []
    for run in runs:
        if joined and joined[-1][2] == run[2] and joined[-1][1] == run[0]:
            joined[-1] = (joined[-1][0], run[1], run[2])
        else:
            joined.append(run)
    return joined

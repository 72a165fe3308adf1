"""Long inputs: cut sequences into overlapping windows and aggregate per-window predictions.

In: sequences (strings) longer than a model's window, ``size_bp`` and ``stride_bp``.
Out: window records (each remembers its source sequence and length) and, after prediction,
``(n_windows, C)`` per-window values -> ``(n_sequences, C)`` per-sequence values by ``mean``,
``max`` or ``length`` (mean weighted by window length in bases).

Windows start at ``0, stride, 2 * stride, ...`` while they fit; when the last of them stops short
of the end, one more window of the full ``size_bp`` ends exactly at the end (it starts less than
``stride`` after the previous one). So every window of a sequence longer than ``size_bp`` has
``size_bp`` bases: a short tail never becomes a window shorter than a tokenizer's
``min_length_bp`` (a lone ``[UNK]`` for k-mers). A sequence no longer than ``size_bp`` is its own
single window (``length`` weighting counts it by its length).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from biolm.data.io import SequenceRecords
from biolm.errors import BiolmError

AGGREGATIONS = ("mean", "max", "length")


def window_spans(length_bp: int, size_bp: int, stride_bp: int) -> list[tuple[int, int]]:
    """``[(start, end), ...]`` half-open windows covering ``[0, length_bp)``, the last one end-aligned."""
    if length_bp <= size_bp:
        return [(0, length_bp)]
    spans = [(start, start + size_bp) for start in range(0, length_bp - size_bp + 1, stride_bp)]
    if spans[-1][1] < length_bp:
        spans.append((length_bp - size_bp, length_bp))
    return spans


@dataclass
class Windows:
    """Window records cut from ``n_sequences`` records.

    Attributes:
        records: one record per window (id ``<id>:<start>-<end>``, label of its sequence).
        owner: ``(n_windows,)`` index of each window's source record.
        length_bp: ``(n_windows,)`` window lengths.
        n_sequences: how many source records there were.
    """

    records: SequenceRecords
    owner: np.ndarray
    length_bp: np.ndarray
    n_sequences: int


def check_window(size_bp: int | None, stride_bp: int | None, tokenizer=None) -> tuple[int, int] | None:
    """Validate ``data.window_bp`` / ``data.window_stride_bp`` (None: windowing off); the stride defaults to the size.

    With ``tokenizer``, also refuse windows shorter than its ``min_length_bp``.
    """
    if size_bp is None:
        return None
    stride_bp = size_bp if stride_bp is None else stride_bp
    if not (int(size_bp) >= 1 and 1 <= int(stride_bp) <= int(size_bp)):
        raise BiolmError(f"data.window_bp={size_bp}, data.window_stride_bp={stride_bp}: accepted: window_bp >= 1 base and 1 <= window_stride_bp <= window_bp")
    if tokenizer is not None and int(size_bp) < tokenizer.min_length_bp:
        raise BiolmError(f"data.window_bp={size_bp}: {tokenizer.length_rule}; use windows of at least {tokenizer.min_length_bp} bases")
    return int(size_bp), int(stride_bp)


def split_into_windows(records: SequenceRecords, size_bp: int, stride_bp: int) -> Windows:
    """Cut every record into windows (see the module docstring)."""
    ids, seqs, labels, owner, lengths, lines = [], [], [], [], [], []
    for i, seq in enumerate(records.sequences):
        for start, end in window_spans(len(seq), size_bp, stride_bp):
            ids.append(f"{records.ids[i]}:{start}-{end}")
            seqs.append(seq[start:end])
            labels.append(None if records.labels is None else records.labels[i])
            owner.append(i)
            lengths.append(end - start)
            lines.append(records.lines[i])
    windowed = SequenceRecords(records.source, ids, seqs, None if records.labels is None else labels, lines, records.line_word)
    return Windows(windowed, np.asarray(owner, dtype=np.int64), np.asarray(lengths, dtype=np.float64), len(records))


def aggregate_windows(values: np.ndarray, owner: np.ndarray, length_bp: np.ndarray, n_sequences: int, how: str) -> np.ndarray:
    """Per-window values ``(n_windows,)`` or ``(n_windows, C)`` -> per-sequence ``(n_sequences, ...)``."""
    if how not in AGGREGATIONS:
        raise BiolmError(f"predict.aggregate={how!r}: accepted: {', '.join(AGGREGATIONS)}")
    values = np.asarray(values, dtype=np.float64)
    flat = values.reshape(len(values), -1)  # (n_windows, C)
    out = np.zeros((n_sequences, flat.shape[1]))
    if how == "max":
        out[:] = -np.inf
        np.maximum.at(out, owner, flat)
    else:
        weight = length_bp if how == "length" else np.ones(len(flat))
        np.add.at(out, owner, flat * weight[:, None])
        out /= np.bincount(owner, weights=weight, minlength=n_sequences)[:, None]
    return out.reshape((n_sequences, *values.shape[1:]))

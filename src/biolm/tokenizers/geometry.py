"""Token geometry: which bases each token stands for, and what follows from it.

In: ``spans``, a ``(n_tokens, 2)`` int64 array of half-open ``[start, end)`` base offsets, one row
per token of ``encode_batch([sequence])[0]`` (what `DnaTokenizer.token_spans` returns). Offsets
count in the normalised sequence (surrounding whitespace stripped). Special tokens (``[CLS]``,
``[SEP]``, ...) have the empty span ``(-1, -1)``. Per tokenizer:

- char: token ``i`` (after ``[CLS]``) is ``[i, i + 1)``.
- k-mer (any k, any stride): token ``j`` is ``[j * stride, j * stride + k)``; overlapping when
  ``stride < k``, so one base lies in up to ``ceil(k / stride)`` tokens. Bases after the last full
  window are in no token. A sequence shorter than k is one ``[UNK]`` spanning all of it.
- BPE: the offsets of the Hugging Face ``tokenizers`` encoding (each token a run of bases; an N is
  its own ``[UNK]`` token).

Out: `tokens_overlapping` (the token range covering a base range, e.g. the tokens to mask for a
variant), `centre_bases` and `labels_at_centres` (per-base labels -> per-token labels: a token takes
the label of its centre base ``start + (end - start - 1) // 2``, the left one of the two middle
bases when it has an even number), and `base_scores` (per-token scores -> per-base scores, e.g.
attributions: each token's score is shared evenly among its bases).
"""

from __future__ import annotations

import numpy as np

from biolm.errors import BiolmError

SPECIAL_SPAN = (-1, -1)


def spans_with_specials(spans: np.ndarray, add_special_tokens: bool) -> np.ndarray:
    """(n, 2) content spans -> (n + 2, 2) with ``(-1, -1)`` rows for ``[CLS]`` and ``[SEP]`` if asked."""
    if not add_special_tokens:
        return spans
    out = np.empty((len(spans) + 2, 2), dtype=np.int64)  # (n + 2, 2)
    out[0] = out[-1] = SPECIAL_SPAN
    out[1:-1] = spans
    return out


def tokens_overlapping(spans: np.ndarray, start_bp: int, end_bp: int) -> tuple[int, int]:
    """Token indices ``[first, stop)`` of the tokens whose spans share a base with ``[start_bp, end_bp)``.

    Args:
        spans: ``(n_tokens, 2)`` token spans (see the module docstring).
        start_bp: first base, 0-based.
        end_bp: one past the last base.

    Returns:
        ``(first, stop)``, a slice of token positions (specials count as positions); ``(0, 0)``
        when no token holds any of those bases (e.g. the uncovered tail of a strided k-mer tokenizer).

    Raises:
        BiolmError: the base range is empty or negative.
    """
    if not 0 <= start_bp < end_bp:
        raise BiolmError(f"base range [{start_bp}, {end_bp}) is empty or negative (accepted: 0 <= start < end)")
    hit = np.flatnonzero((spans[:, 0] < end_bp) & (spans[:, 1] > start_bp))
    if not len(hit):
        return 0, 0
    return int(hit[0]), int(hit[-1]) + 1  # spans are ordered, so the overlapping tokens are contiguous


def centre_bases(spans: np.ndarray) -> np.ndarray:
    """(n_tokens, 2) spans -> (n_tokens,) int64 centre base ``start + (end - start - 1) // 2``, -1 for empty spans."""
    start, end = spans[:, 0], spans[:, 1]
    return np.where(end > start, start + (end - start - 1) // 2, -1)


def labels_at_centres(spans: np.ndarray, base_labels: np.ndarray, ignore_index: int = -100) -> np.ndarray:
    """Per-base labels -> per-token labels: each token takes the label of its centre base.

    Args:
        spans: ``(n_tokens, 2)`` token spans.
        base_labels: ``(n_bases,)`` one label per base of the normalised sequence (label ids or values).
        ignore_index: the label of tokens with no bases (specials), ``-100`` for ``cross_entropy``.

    Returns:
        ``(n_tokens,)`` labels, of a dtype that holds both ``base_labels`` and ``ignore_index``.

    Raises:
        BiolmError: ``base_labels`` is not 1-D numbers, or a token reaches past its end.
    """
    base_labels = np.asarray(base_labels)
    if base_labels.ndim != 1 or base_labels.dtype.kind not in "biuf":
        raise BiolmError(f"base labels: expected one number per base (1-D label ids or values), got {base_labels.dtype} of shape {base_labels.shape}")
    centres = centre_bases(spans)
    real = centres >= 0
    if real.any() and spans[real, 1].max() > len(base_labels):
        raise BiolmError(f"base labels: {len(base_labels)} labels, but the tokens cover {int(spans[real, 1].max())} bases")
    out = np.full(len(spans), ignore_index, dtype=np.result_type(base_labels.dtype, np.min_scalar_type(ignore_index)))
    out[real] = base_labels[centres[real]]
    return out


def base_scores(spans: np.ndarray, token_scores: np.ndarray, length_bp: int) -> np.ndarray:
    """Per-token scores -> per-base scores: each token's score is shared evenly among the bases it spans.

    A base's score is the sum, over the tokens holding it, of ``score / (end - start)``; so a char
    token's score goes to its base, a k-mer's is split k ways (and a base inside k overlapping k-mers
    collects k shares), a BPE token's is split over its run of bases. The total is conserved: the
    per-base scores sum to the scores of the non-special tokens. Special tokens (empty spans) and
    bases in no token (a truncated tail, the uncovered end of a strided k-mer) get nothing.

    Args:
        spans: ``(n_tokens, 2)`` token spans (see the module docstring).
        token_scores: ``(n_tokens,)`` or ``(n_tokens, C)`` scores, row ``t`` for token ``t``.
        length_bp: bases in the sequence.

    Returns:
        ``(length_bp,)`` or ``(length_bp, C)`` float64 per-base scores.

    Raises:
        BiolmError: the two arrays differ in length, or a token reaches past ``length_bp``.
    """
    token_scores = np.asarray(token_scores, dtype=np.float64)
    if len(token_scores) != len(spans):
        raise BiolmError(f"token scores: {len(token_scores)} scores for {len(spans)} tokens")
    real = spans[:, 1] > spans[:, 0]
    if real.any() and spans[real, 1].max() > length_bp:
        raise BiolmError(f"token scores: the tokens cover {int(spans[real, 1].max())} bases, the sequence has {length_bp}")
    starts, ends = spans[real, 0], spans[real, 1]
    width = ends - starts  # (n_real,)
    shares = token_scores[real] / width.reshape((-1,) + (1,) * (token_scores.ndim - 1))
    # a difference array: +share at each start, -share at each end, then a running sum over bases
    delta = np.zeros((length_bp + 1,) + token_scores.shape[1:], dtype=np.float64)
    np.add.at(delta, starts, shares)
    np.add.at(delta, ends, -shares)
    return np.cumsum(delta, axis=0)[:length_bp]

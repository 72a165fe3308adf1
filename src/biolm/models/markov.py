"""Order-k Markov chain over ACGT: the baseline a DNA language model has to beat.

In: sequences as strings or uint8 ASCII arrays (any case; anything but A, C, G, T counts as N).
Out: `fit` fills a ``(4**order, 4)`` count table, context -> next base; `bits_per_base` is the
mean ``-log2 p(x_t | x_{t-order} .. x_{t-1})`` over every position ``t >= order`` whose
``order + 1`` bases hold no N.

How: bases are mapped to codes ``A=0, C=1, G=2, T=3`` by a 256-entry table and the index of each
``(order + 1)``-mer (context then target) is built with ``order + 1`` shift-or passes over shifted
views, as in the k-mer tokenizer; counts are one ``np.bincount``. Long sequences run in chunks
so that memory stays at a few times the chunk size.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

from biolm.errors import BiolmError

MAX_ORDER = 11  # the count table has 4**(order + 1) entries: 128 MB of float64 at order 11
_CHUNK_BP = 1 << 22
_N_CODE = 4
_BYTE_TO_CODE = np.full(256, _N_CODE, dtype=np.uint8)
for _code, _base in enumerate(b"ACGT"):
    _BYTE_TO_CODE[_base] = _BYTE_TO_CODE[_base | 0x20] = _code


class MarkovChain:
    """Order-k Markov chain with add-pseudocount smoothing over ACGT.

    Args:
        order: bases of context, 0 to 11 (0: base composition only).
        pseudocount: added to every (context, base) count before normalising; > 0.
    """

    def __init__(self, order: int = 6, pseudocount: float = 1.0):
        if isinstance(order, bool) or not isinstance(order, (int, np.integer)) or not 0 <= order <= MAX_ORDER:
            raise BiolmError(f"baseline.markov_order={order!r}: accepted: an integer from 0 to {MAX_ORDER}")
        if not pseudocount > 0:
            raise BiolmError(f"pseudocount={pseudocount!r}: accepted: a positive number")
        self.order = int(order)
        self.pseudocount = float(pseudocount)
        self.counts = np.zeros((4**self.order, 4), dtype=np.int64)  # (contexts, next base)

    def fit(self, sequences: Iterable[np.ndarray | str]) -> MarkovChain:
        """Add the (context, next base) counts of ``sequences`` (calling it again accumulates).

        Args:
            sequences: strings or uint8 ASCII arrays; a single string is one sequence.

        Returns:
            ``self``.
        """
        flat = self.counts.reshape(-1)  # view: index = context * 4 + base
        for index in self._kmer_indices(sequences):
            flat += np.bincount(index, minlength=flat.size)
        return self

    def log2_probs(self) -> np.ndarray:
        """``(4**order, 4)`` smoothed ``log2 p(base | context)``."""
        smoothed = self.counts + self.pseudocount
        return np.log2(smoothed) - np.log2(smoothed.sum(axis=1, keepdims=True))

    def bits_per_base(self, sequences: Iterable[np.ndarray | str]) -> float:
        """Mean ``-log2 p(x_t | previous order bases)`` over the N-free positions ``t >= order``.

        Args:
            sequences: strings or uint8 ASCII arrays; a single string is one sequence.

        Returns:
            Bits per base (2.0 is a uniform guess).

        Raises:
            BiolmError: no position to score (every sequence shorter than ``order + 1`` or N-rich).
        """
        table = self.log2_probs().reshape(-1)
        total_bits, n_scored = 0.0, 0
        for index in self._kmer_indices(sequences):
            total_bits -= float(table[index].sum())
            n_scored += len(index)
        if n_scored == 0:
            raise BiolmError(f"no position to score: every sequence is shorter than order + 1 = {self.order + 1} bases or hits N")
        return total_bits / n_scored

    def _kmer_indices(self, sequences: Iterable[np.ndarray | str]) -> Iterator[np.ndarray]:
        """For each chunk of each sequence, the int64 index ``context * 4 + base`` of every N-free (order + 1)-mer."""
        if isinstance(sequences, (str, np.ndarray)):
            sequences = [sequences]
        span = self.order + 1
        for seq in sequences:
            raw = np.frombuffer(seq.encode("ascii"), dtype=np.uint8) if isinstance(seq, str) else np.asarray(seq, dtype=np.uint8)
            # Chunks overlap by order bases, so every (order + 1)-mer is in exactly one chunk.
            for begin in range(0, max(len(raw) - self.order, 0), _CHUNK_BP):
                codes = _BYTE_TO_CODE[raw[begin : begin + _CHUNK_BP + self.order]]
                width = len(codes) - span + 1
                index = (codes[:width] & 3).astype(np.int64)
                has_n = codes[:width] == _N_CODE
                for j in range(1, span):
                    index <<= 2
                    index |= codes[j : j + width] & 3
                    has_n |= codes[j : j + width] == _N_CODE
                yield index[~has_n]

"""DNABERT-style k-mer tokenizer, vectorised with numpy.

In: nucleotide strings of length L. Out: int64 ids, one per k-mer window starting at
``0, stride, 2*stride, ...`` (``(L - k) // stride + 1`` tokens, +2 with ``[CLS]``/``[SEP]``).
``stride=1`` is DNABERT's overlapping k-mers; ``stride=k`` is non-overlapping. Bases after the last
full window are not covered (only possible when ``stride > 1``), so `decode` returns the covered prefix.
Geometry: token ``j`` after ``[CLS]`` spans bases ``[j * stride, j * stride + k)``, so one base lies
in up to ``ceil(k / stride)`` tokens (`max_tokens_per_base`).

Vocabulary: the special tokens ``[PAD]=0, [UNK]=1, [CLS]=2, [SEP]=3, [MASK]=4``, then all ``4**k``
k-mers in ``itertools.product("ACGT", repeat=k)`` order, i.e. ``id = 5 + sum_j code_j * 4**(k-1-j)``
with ``A=0, C=1, G=2, T=3``. A k-mer holding N is ``[UNK]``; a sequence shorter than k is a single
``[UNK]`` (so every such sequence looks the same: readers of user input refuse them first, see
`DnaTokenizer.min_length_bp`).

How: the batch is joined into one byte string and mapped by a 256-entry ``bytes.translate`` table to
codes ``A=0, C=1, G=2, T=3, N=4``; the window index is k shift-or passes over shifted views (N's
bit 2 is masked off), and only if the batch holds an N, k or passes of the N bit mark ``[UNK]``
windows. Equal-length batches run as ``(batch, L)`` arrays; mixed lengths run over the concatenation
and each sequence's windows are gathered from it (windows straddling two sequences are never read).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from itertools import product
from numbers import Integral
from typing import Any

import numpy as np

from biolm.errors import BiolmError
from biolm.tokenizers.alphabet import SpecialTokens
from biolm.tokenizers.base import DnaTokenizer, as_id_array, gather_tokens, length_bp, pack_rows
from biolm.tokenizers.geometry import spans_with_specials

K_RANGE = range(3, 7)
_N_CODE = 4


class KmerTokenizer(DnaTokenizer):
    """k-mer tokenizer (k in 3..6) with overlapping (stride 1) or strided windows.

    Args:
        k: k-mer length, 3 to 6.
        stride: bases between window starts, 1 to k (``stride=k``: non-overlapping).
        invalid: ``"error"`` rejects characters outside ACGTN, ``"n"`` reads them as N.
        add_special_tokens: wrap every encoded sequence as ``[CLS] ... [SEP]``.
        special_tokens: the token of each role (default ``[PAD] [UNK] [CLS] [SEP] [MASK]``); they
            take the first ids, in role order.
    """

    kind = "kmer"

    def __init__(
        self,
        k: int = 6,
        stride: int = 1,
        invalid: str = "error",
        add_special_tokens: bool = True,
        special_tokens: SpecialTokens | Mapping[str, str | None] | None = None,
    ):
        if isinstance(k, bool) or not isinstance(k, Integral) or k not in K_RANGE:
            raise BiolmError(f"tokenizer.k={k!r} is not supported (accepted: an integer from 3 to 6)")
        if isinstance(stride, bool) or not isinstance(stride, Integral) or not 1 <= stride <= k:
            raise BiolmError(f"tokenizer.stride={stride!r} is not supported (accepted: an integer from 1 to k={k})")
        k, stride = int(k), int(stride)
        roles = SpecialTokens.coerce(special_tokens, self.default_special_tokens)
        kmers = ["".join(bases) for bases in product("ACGT", repeat=k)]
        super().__init__({tok: i for i, tok in enumerate((*roles.tokens(), *kmers))}, invalid, add_special_tokens, roles)
        self.k = k
        self.stride = stride
        self._first_kmer_id = len(roles.tokens())
        byte_to_code = np.full(256, _N_CODE, dtype=np.uint8)
        for code, base in enumerate("ACGT"):
            byte_to_code[ord(base)] = code
        self._byte_to_code = byte_to_code.tobytes()  # a bytes.translate table
        self._kmer_bytes = np.frombuffer("".join(kmers).encode("ascii"), dtype=np.uint8).reshape(-1, k)  # (4**k, k)

    @property
    def bases_per_token(self) -> float:
        """The stride: each token after the first advances by ``stride`` bases."""
        return float(self.stride)

    @property
    def max_tokens_per_base(self) -> int:
        """``ceil(k / stride)``: overlapping windows share bases (6 for 6-mers with stride 1; 1 for stride k)."""
        return math.ceil(self.k / self.stride)

    @property
    def min_length_bp(self) -> int:
        """k: a shorter sequence holds no k-mer (`encode_batch` gives it a single ``[UNK]``)."""
        return self.k

    @property
    def _name(self) -> str:
        return f"{self.k}-mer"

    def config(self) -> dict[str, Any]:
        """Constructor parameters."""
        return {"k": self.k, "stride": self.stride, "invalid": self.invalid, "add_special_tokens": self.add_special_tokens, **self._roles_config()}

    def encode_batch(self, seqs: Sequence[str]) -> list[np.ndarray]:
        """Encode a batch: ``[CLS] kmer_0 kmer_stride ... [SEP]`` per sequence (see `DnaTokenizer.encode_batch`)."""
        joined, lengths = self.alphabet.normalize_joined(seqs, self.invalid)
        codes = np.frombuffer(joined.translate(self._byte_to_code), dtype=np.uint8)  # (total_bp,)
        has_n = b"N" in joined
        k, stride = self.k, self.stride
        if len(lengths) and (lengths == lengths[0]).all() and lengths[0] >= k:
            windows = self._window_ids(codes.reshape(len(lengths), int(lengths[0])), has_n)  # (batch, L - k + 1)
            return pack_rows(windows[:, ::stride], self.cls_id, self.sep_id, self.add_special_tokens)
        # Windows over the concatenation, plus a sentinel [UNK] for sequences shorter than k.
        windows = np.append(self._window_ids(codes, has_n), self.unk_id)  # (total_bp - k + 2,)
        short = lengths < k
        first = np.where(short, len(windows) - 1, np.cumsum(lengths) - lengths)
        n_tokens = np.where(short, 1, (lengths - k) // stride + 1)
        return gather_tokens(windows, first, n_tokens, stride, self.cls_id, self.sep_id, self.add_special_tokens)

    def token_spans(self, sequence: str | int) -> np.ndarray:
        """``(n_tokens, 2)`` spans: ``[j * stride, j * stride + k)`` per k-mer, ``(-1, -1)`` for specials.

        A sequence shorter than k is one ``[UNK]`` spanning all of it (see `DnaTokenizer.token_spans`).
        """
        n_bases = length_bp(sequence)
        if n_bases < self.k:
            spans = np.array([[0, n_bases]], dtype=np.int64)
        else:
            starts = np.arange(0, n_bases - self.k + 1, self.stride, dtype=np.int64)
            spans = np.stack([starts, starts + self.k], axis=1)  # (n_kmers, 2)
        return spans_with_specials(spans, self.add_special_tokens)

    def _window_ids(self, codes: np.ndarray, has_n: bool) -> np.ndarray:
        """(..., L) byte codes -> (..., L - k + 1) int64 ids of the k-mer starting at each position."""
        k = self.k
        width = codes.shape[-1] - k + 1
        if width <= 0:
            return np.empty((*codes.shape[:-1], 0), dtype=np.int64)
        bases = codes & 3 if has_n else codes
        index = bases[..., :width].astype(np.int16)  # 4**6 fits in int16
        for j in range(1, k):
            index <<= 2
            index |= bases[..., j : j + width]
        ids = np.add(index, self._first_kmer_id, dtype=np.int64)
        if has_n:
            is_n = codes >> 2
            window_has_n = is_n[..., :width].copy()
            for j in range(1, k):
                window_has_n |= is_n[..., j : j + width]
            ids[window_has_n.view(bool)] = self.unk_id
        return ids

    def decode(self, ids: Sequence[int]) -> str:
        """Ids back to the covered bases.

        ``[PAD]``, ``[CLS]``, ``[SEP]`` are dropped; ``[UNK]`` and ``[MASK]`` keep their window but
        say nothing about its bases. Each position takes its base from any known k-mer covering it,
        else ``N``. So ACGT sequences of length >= k round-trip exactly (up to the uncovered tail when
        ``stride > 1``); a position is N only if every window over it held an N.

        Args:
            ids: token ids.

        Returns:
            The upper-case nucleotide string, ``(n_tokens - 1) * stride + k`` long.
        """
        ids = as_id_array(ids, self.vocab_size)
        ids = ids[(ids != self.pad_id) & (ids != self.cls_id) & (ids != self.sep_id)]
        if ids.size == 0:
            return ""
        out = np.full((len(ids) - 1) * self.stride + self.k, ord("N"), dtype=np.uint8)
        known = ids >= self._first_kmer_id
        positions = np.flatnonzero(known)[:, None] * self.stride + np.arange(self.k)  # (n_known, k)
        out[positions] = self._kmer_bytes[ids[known] - self._first_kmer_id]
        return out.tobytes().decode("ascii")

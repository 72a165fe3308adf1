"""Single-nucleotide tokenizer: one token per base.

In: nucleotide strings of length L. Out: int64 ids of length L (+2 with ``[CLS]``/``[SEP]``).
Vocabulary (10 ids): ``[PAD]=0, [UNK]=1, [CLS]=2, [SEP]=3, [MASK]=4, A=5, C=6, G=7, T=8, N=9``
(the special tokens, then the alphabet's letters). Token ``i`` after ``[CLS]`` is base ``i``: span
``[i, i + 1)``. Encoding is one 256-entry ``bytes.translate`` table applied to the whole joined batch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from biolm.tokenizers.alphabet import SpecialTokens
from biolm.tokenizers.base import DnaTokenizer, as_id_array, gather_tokens, length_bp, pack_rows
from biolm.tokenizers.geometry import spans_with_specials


class CharTokenizer(DnaTokenizer):
    """One token per letter of the alphabet (DNA: A, C, G, T, N).

    Args:
        invalid: ``"error"`` rejects characters outside ACGTN, ``"n"`` reads them as N.
        add_special_tokens: wrap every encoded sequence as ``[CLS] ... [SEP]``.
        special_tokens: the token of each role (default ``[PAD] [UNK] [CLS] [SEP] [MASK]``); they
            take the first ids, in role order.
    """

    kind = "char"

    def __init__(
        self,
        invalid: str = "error",
        add_special_tokens: bool = True,
        special_tokens: SpecialTokens | Mapping[str, str | None] | None = None,
    ):
        roles = SpecialTokens.coerce(special_tokens, self.default_special_tokens)
        letters = self.alphabet.letters
        vocab = {tok: i for i, tok in enumerate((*roles.tokens(), *letters))}
        super().__init__(vocab, invalid, add_special_tokens, roles)
        byte_to_id = np.full(256, self.unk_id, dtype=np.uint8)
        self._id_to_byte = np.full(len(vocab), ord(self.alphabet.unknown), dtype=np.uint8)
        for base in letters:
            byte_to_id[ord(base)] = vocab[base]
            self._id_to_byte[vocab[base]] = ord(base)
        self._byte_to_id = byte_to_id.tobytes()  # a bytes.translate table

    @property
    def bases_per_token(self) -> float:
        """Always 1.0."""
        return 1.0

    def config(self) -> dict[str, Any]:
        """Constructor parameters."""
        return {"invalid": self.invalid, "add_special_tokens": self.add_special_tokens, **self._roles_config()}

    def encode_batch(self, seqs: Sequence[str]) -> list[np.ndarray]:
        """Encode a batch: ``[CLS] b_1 ... b_L [SEP]`` per sequence (see `DnaTokenizer.encode_batch`)."""
        joined, lengths = self.alphabet.normalize_joined(seqs, self.invalid)
        flat = np.frombuffer(joined.translate(self._byte_to_id), dtype=np.uint8)  # (total_bp,)
        if len(lengths) and (lengths == lengths[0]).all():
            return pack_rows(flat.reshape(len(lengths), int(lengths[0])), self.cls_id, self.sep_id, self.add_special_tokens)
        starts = np.cumsum(lengths) - lengths
        return gather_tokens(flat, starts, lengths, 1, self.cls_id, self.sep_id, self.add_special_tokens)

    def token_spans(self, sequence: str | int) -> np.ndarray:
        """``(n_tokens, 2)`` spans: ``[i, i + 1)`` for base ``i``, ``(-1, -1)`` for specials (see `DnaTokenizer.token_spans`)."""
        starts = np.arange(length_bp(sequence), dtype=np.int64)
        return spans_with_specials(np.stack([starts, starts + 1], axis=1), self.add_special_tokens)  # (L [+ 2], 2)

    def decode(self, ids: Sequence[int]) -> str:
        """Ids back to bases; ``[PAD]``, ``[CLS]``, ``[SEP]`` are dropped, other specials read as N.

        Args:
            ids: token ids.

        Returns:
            The upper-case nucleotide string.
        """
        ids = as_id_array(ids, self.vocab_size)
        keep = (ids != self.pad_id) & (ids != self.cls_id) & (ids != self.sep_id)
        return self._id_to_byte[ids[keep]].tobytes().decode("ascii")

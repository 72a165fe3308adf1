"""Nucleotide Transformer tokenizer: non-overlapping 6-mers from the left, split at N.

In: nucleotide strings. Out: int64 ids ``<cls> t_1 ... t_n`` (no end token: the NT checkpoints
set no ``<eos>``). Each maximal run of A/C/G/T is cut into 6-mers from its left end; the 0-5
bases left over become single-base tokens, and every N is its own token. This is what
`transformers.EsmTokenizer` does with an NT ``vocab.txt`` (greedy longest match from the left)
and the NT repository's own tokenizer (``ATCGAATNGG`` -> ``ATCGAA T N G G``).

Vocabulary: read from the checkpoint's ``vocab.txt`` (line i has id i), because the two releases
order it differently (v1: ``<unk> <pad> <mask> <cls>``, 6-mers, ``A T C G N``, ``<eos> <bos>``;
v2: ``<unk> <pad> <mask> <cls> <eos> <bos>``, 6-mers, ``A T C G N``). Trailing tokens it never
emits are dropped, so the vocabulary size equals the model's embedding rows (NT v1's model has
4105, its ``vocab.txt`` 4107 lines). Geometry: every token stands for its own run of bases, so
`token_spans` needs the sequence (its N positions), or, for an N-free sequence, its length.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from itertools import product
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from biolm.errors import BiolmError
from biolm.tokenizers.alphabet import SpecialTokens
from biolm.tokenizers.base import VOCAB_FILE, DnaTokenizer, as_id_array, length_bp, read_vocab_txt
from biolm.tokenizers.geometry import SPECIAL_SPAN

K = 6
_RUNS = re.compile(r"[ACGT]+|N")
NT_SPECIAL_TOKENS = SpecialTokens(pad="<pad>", unk="<unk>", cls="<cls>", sep=None, mask="<mask>", bos=None, eos=None)


class NtTokenizer(DnaTokenizer):
    """Nucleotide Transformer (v1 and v2) tokenizer over a checkpoint's ``vocab.txt``.

    Args:
        path: the checkpoint folder, or its ``vocab.txt``.
        invalid: ``"error"`` rejects characters outside ACGTN, ``"n"`` reads them as N.
        add_special_tokens: open every sequence with ``<cls>`` (and close it with the ``sep`` or
            ``eos`` token, if a role names one).
        special_tokens: roles -> tokens of the file (default ``<pad> <unk> <cls> <mask>``).

    Raises:
        BiolmError: no such file, or a vocabulary without every 6-mer, base or special token.
    """

    kind = "nt"
    default_special_tokens: ClassVar[SpecialTokens] = NT_SPECIAL_TOKENS

    def __init__(
        self,
        path: str | Path,
        invalid: str = "error",
        add_special_tokens: bool = True,
        special_tokens: SpecialTokens | Mapping[str, str | None] | None = None,
    ):
        roles = SpecialTokens.coerce(special_tokens, self.default_special_tokens)
        vocab_path = Path(path).expanduser()
        if vocab_path.is_dir():
            vocab_path = vocab_path / VOCAB_FILE
        file_vocab = read_vocab_txt(vocab_path)
        emitted = {*roles.tokens(), *("".join(b) for b in product("ACGT", repeat=K)), *self.alphabet.letters}
        missing = sorted(emitted - file_vocab.keys())
        if missing:
            raise BiolmError(
                f"{vocab_path}: not a Nucleotide Transformer vocabulary ({len(missing)} tokens missing, e.g. {missing[:3]}; "
                "it needs the special tokens, all 4096 6-mers and A, C, G, T, N)"
            )
        size = 1 + max(file_vocab[token] for token in emitted)
        super().__init__({tok: i for tok, i in file_vocab.items() if i < size}, invalid, add_special_tokens, roles)
        self._end_id = self.sep_id if self.sep_id is not None else self.eos_id
        # What each id decodes to: its bases; nothing for framing tokens; one N for any other token.
        framing = {self.pad_id, self.cls_id, self._end_id}
        self._pieces = [
            tok if set(tok) <= set(self.alphabet.letters) else "" if i in framing else self.alphabet.unknown
            for i, tok in enumerate(sorted(self.vocab, key=self.vocab.__getitem__))
        ]

    @property
    def bases_per_token(self) -> float:
        """6: all but at most five tokens of an N-free sequence are 6-mers."""
        return float(K)

    def config(self) -> dict[str, Any]:
        """Constructor parameters, without the vocabulary (saved as ``vocab.txt`` beside them)."""
        return {"invalid": self.invalid, "add_special_tokens": self.add_special_tokens, **self._roles_config()}

    @classmethod
    def _load(cls, directory: Path, params: dict[str, Any]) -> NtTokenizer:
        return cls(directory / VOCAB_FILE, **params)

    def encode_batch(self, seqs: Sequence[str]) -> list[np.ndarray]:
        """Encode a batch: ``<cls>`` then 6-mers and single bases (see the module docstring)."""
        out = []
        for seq in self.alphabet.normalize(seqs, self.invalid):
            ids = [self.vocab[seq[a:b]] for a, b in _content_spans(seq)]
            if self.add_special_tokens:
                ids = [self.cls_id, *ids] + ([self._end_id] if self._end_id is not None else [])
            out.append(np.array(ids, dtype=np.int64))
        return out

    def token_spans(self, sequence: str | int) -> np.ndarray:
        """``(n_tokens, 2)`` spans of ``encode(sequence)``: 6 or 1 bases per token, ``(-1, -1)`` for specials.

        A length stands for an N-free sequence of that many bases (see `DnaTokenizer.token_spans`).
        """
        seq = "A" * length_bp(sequence) if not isinstance(sequence, str) else self.alphabet.normalize([sequence], "n")[0]
        spans = [*_content_spans(seq)]
        if self.add_special_tokens:
            spans = [SPECIAL_SPAN, *spans] + ([SPECIAL_SPAN] if self._end_id is not None else [])
        return np.array(spans, dtype=np.int64).reshape(-1, 2)

    def decode(self, ids: Sequence[int]) -> str:
        """Ids back to bases; pad, cls and end tokens are dropped, any other special token reads as one N.

        Args:
            ids: token ids.

        Returns:
            The upper-case nucleotide string.
        """
        return "".join(self._pieces[i] for i in as_id_array(ids, self.vocab_size).tolist())


def _content_spans(seq: str) -> list[tuple[int, int]]:
    """``[start, end)`` of every token of a normalised sequence: 6-mers from the left of each ACGT run, then singles."""
    spans = []
    for run in _RUNS.finditer(seq):
        start, end = run.span()
        full = start + (end - start) // K * K
        spans += [(a, a + K) for a in range(start, full, K)]
        spans += [(a, a + 1) for a in range(full, end)]
    return spans

"""Byte-pair-encoding tokenizer: a Hugging Face ``tokenizers.Tokenizer`` behind the biolm interface.

In: nucleotide strings. Out: int64 ids from the wrapped tokenizer's Rust ``encode_batch`` after
`normalize_sequences` (so ids equal ``Tokenizer.from_file(path).encode(seq.upper()).ids`` for valid
input). With ``add_special_tokens`` the tokenizer's post-processor adds the specials (DNABERT-2:
``[CLS] $A [SEP]``); a tokenizer without one gets that template on a private copy.

The DNABERT-2 vocabulary has no ``N``: each N becomes ``[UNK]`` (``fuse_unk`` is off), and `decode`
reads ``[UNK]`` back as ``N``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import tokenizers
from tokenizers.models import BPE
from tokenizers.pre_tokenizers import Whitespace
from tokenizers.processors import TemplateProcessing
from tokenizers.trainers import BpeTrainer

from biolm.errors import BiolmError
from biolm.tokenizers.alphabet import SPECIAL_TOKENS, normalize_sequences
from biolm.tokenizers.base import DnaTokenizer, as_id_array, atomic_path

TOKENIZER_FILE = "tokenizer.json"
# DNABERT-2's special-token order; trained tokenizers use it too.
BPE_SPECIAL_TOKENS = ("[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]")
_ESTIMATE_BP = 20_000


class BpeTokenizer(DnaTokenizer):
    """BPE tokenizer wrapping a ``tokenizers.Tokenizer`` (e.g. DNABERT-2's ``tokenizer.json``).

    Args:
        tokenizer: the Hugging Face tokenizer; its vocabulary must hold all of ``SPECIAL_TOKENS``.
        invalid: ``"error"`` rejects characters outside ACGTN, ``"n"`` reads them as N.
        add_special_tokens: wrap every encoded sequence as ``[CLS] ... [SEP]``.
    """

    kind = "bpe"

    def __init__(self, tokenizer: tokenizers.Tokenizer, invalid: str = "error", add_special_tokens: bool = True):
        super().__init__(tokenizer.get_vocab(with_added_tokens=True), invalid, add_special_tokens)
        if tokenizer.post_processor is None:
            tokenizer = tokenizers.Tokenizer.from_str(tokenizer.to_str())
            tokenizer.post_processor = _cls_sep_template(self.cls_id, self.sep_id)
        self.tokenizer = tokenizer
        self._pieces = [""] * self.vocab_size  # id -> decoded text; specials empty, [UNK] -> N
        for token, index in self.vocab.items():
            self._pieces[index] = "" if token in SPECIAL_TOKENS else token
        self._pieces[self.unk_id] = "N"
        self._bases_per_token: float | None = None

    @classmethod
    def from_file(cls, path: str | Path, invalid: str = "error", add_special_tokens: bool = True) -> BpeTokenizer:
        """Load a ``tokenizer.json`` (Hugging Face ``tokenizers`` format).

        Args:
            path: the JSON file, e.g. ``data/tokenizers/dnabert2_117m/tokenizer.json``.
            invalid: ``"error"`` or ``"n"``.
            add_special_tokens: wrap every encoded sequence as ``[CLS] ... [SEP]``.

        Returns:
            The wrapped tokenizer.

        Raises:
            BiolmError: the file is missing or is not a tokenizers JSON file.
        """
        path = Path(path)
        if not path.is_file():
            raise BiolmError(f"{path}: tokenizer file not found (expected a Hugging Face tokenizer.json)")
        try:
            tokenizer = tokenizers.Tokenizer.from_file(str(path))
        except Exception as err:  # the Rust side raises plain Exception on bad JSON
            raise BiolmError(f"{path}: not a Hugging Face tokenizer.json ({err})") from None
        return cls(tokenizer, invalid=invalid, add_special_tokens=add_special_tokens)

    @classmethod
    def train(
        cls,
        sequences: Iterable[str],
        vocab_size: int = 4096,
        invalid: str = "error",
        add_special_tokens: bool = True,
    ) -> BpeTokenizer:
        """Train a DNABERT-2-style BPE tokenizer (specials ids 0..4 in DNABERT-2 order, then A, C, G, T).

        Args:
            sequences: training sequences (normalised with the ``invalid`` policy first).
            vocab_size: target vocabulary size, specials included.
            invalid: ``"error"`` or ``"n"``.
            add_special_tokens: wrap every encoded sequence as ``[CLS] ... [SEP]``.

        Returns:
            The trained tokenizer.
        """
        tokenizer = tokenizers.Tokenizer(BPE(unk_token="[UNK]"))
        tokenizer.pre_tokenizer = Whitespace()
        trainer = BpeTrainer(
            vocab_size=vocab_size,
            special_tokens=list(BPE_SPECIAL_TOKENS),
            initial_alphabet=list("ACGT"),
            show_progress=False,
        )
        tokenizer.train_from_iterator(normalize_sequences(list(sequences), invalid), trainer=trainer)
        tokenizer.post_processor = _cls_sep_template(tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]"))
        return cls(tokenizer, invalid=invalid, add_special_tokens=add_special_tokens)

    @property
    def bases_per_token(self) -> float:
        """Estimated bp per token: measured once on a fixed uniform-random 20 kbp sequence.

        Real genomes compress better than random sequence (DNABERT-2 reports about 4-5 bp per token),
        so this errs low, i.e. sizes token budgets generously.
        """
        if self._bases_per_token is None:
            rng = np.random.default_rng(0)
            seq = np.frombuffer(b"ACGT", dtype=np.uint8)[rng.integers(0, 4, _ESTIMATE_BP)].tobytes().decode("ascii")
            n_tokens = len(self.tokenizer.encode(seq, add_special_tokens=False).ids)
            self._bases_per_token = _ESTIMATE_BP / max(n_tokens, 1)
        return self._bases_per_token

    def config(self) -> dict[str, Any]:
        """Constructor parameters besides the tokenizer itself (saved as ``tokenizer.json``)."""
        return {"invalid": self.invalid, "add_special_tokens": self.add_special_tokens}

    def encode_batch(self, seqs: Sequence[str]) -> list[np.ndarray]:
        """Encode a batch with the Rust tokenizer (see `DnaTokenizer.encode_batch`)."""
        normalized = normalize_sequences(seqs, self.invalid)
        encode = getattr(self.tokenizer, "encode_batch_fast", self.tokenizer.encode_batch)  # _fast: no offsets, tokenizers>=0.20
        encodings = encode(normalized, add_special_tokens=self.add_special_tokens)
        return [np.array(encoding.ids, dtype=np.int64) for encoding in encodings]

    def decode(self, ids: Sequence[int]) -> str:
        """Ids back to bases: tokens concatenated, ``[UNK]`` read as N, other specials dropped.

        Args:
            ids: token ids.

        Returns:
            The upper-case nucleotide string.
        """
        pieces = self._pieces
        return "".join([pieces[i] for i in as_id_array(ids, self.vocab_size).tolist()])

    def _save_files(self, directory: Path) -> None:
        """Write ``tokenizer.json``."""
        with atomic_path(directory / TOKENIZER_FILE) as tmp:
            self.tokenizer.save(str(tmp))

    @classmethod
    def _load(cls, directory: Path, params: dict[str, Any]) -> BpeTokenizer:
        """Read ``tokenizer.json`` with the saved params."""
        return cls.from_file(directory / TOKENIZER_FILE, **params)


def _cls_sep_template(cls_id: int, sep_id: int) -> TemplateProcessing:
    """DNABERT-2's post-processor: ``[CLS] $A [SEP]`` (pairs ``[CLS] $A [SEP] $B:1 [SEP]:1``)."""
    return TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )

"""Byte-pair-encoding tokenizer: a Hugging Face ``tokenizers.Tokenizer`` behind the biolm interface.

In: nucleotide strings. Out: int64 ids from the wrapped tokenizer's Rust ``encode_batch`` after
`normalize_sequences` (so ids equal ``Tokenizer.from_file(path).encode(seq.upper()).ids`` for valid
input). With ``add_special_tokens`` the tokenizer's post-processor adds the specials (DNABERT-2:
``[CLS] $A [SEP]``); a tokenizer without one gets that template on a private copy.

The DNABERT-2 vocabulary has no ``N``: each N becomes ``[UNK]`` (``fuse_unk`` is off), and `decode`
reads ``[UNK]`` back as ``N``. Geometry (`BpeTokenizer.token_spans`) comes from the encoding's
character offsets: each token spans the run of bases it merged, an N its own base.

Special-token ids are the file's own (looked up by role in its vocabulary), so GENA-LM's
``tokenizer.json`` (``[UNK] [CLS] [SEP] [PAD] [MASK] -`` at ids 0..5, its own ``BertProcessing``)
reads as it is. Its normalizer replaces each run of 10 or more N by one ``-`` token: that token
spans the whole run in `token_spans`, and `decode` reads it as a single ``N`` (a decoded run is
shorter); other letters outside ACGTN in a vocabulary (GENA-LM's IUPAC codes) decode as ``N`` each.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import tokenizers
from tokenizers.models import BPE
from tokenizers.pre_tokenizers import Whitespace
from tokenizers.processors import TemplateProcessing
from tokenizers.trainers import BpeTrainer

from biolm.atomic import atomic_path
from biolm.errors import BiolmError
from biolm.tokenizers.alphabet import SpecialTokens
from biolm.tokenizers.base import DnaTokenizer, as_id_array

TOKENIZER_FILE = "tokenizer.json"
# DNABERT-2's special-token id order, by role; trained tokenizers use it too.
BPE_ROLE_ORDER = ("unk", "cls", "sep", "pad", "mask", "bos", "eos")
_ESTIMATE_BP = 20_000


class BpeTokenizer(DnaTokenizer):
    """BPE tokenizer wrapping a ``tokenizers.Tokenizer`` (e.g. DNABERT-2's ``tokenizer.json``).

    Args:
        tokenizer: the Hugging Face tokenizer; its vocabulary must hold every special token.
        invalid: ``"error"`` rejects characters outside ACGTN, ``"n"`` reads them as N.
        add_special_tokens: wrap every encoded sequence as ``[CLS] ... [SEP]``.
        special_tokens: the token of each role (default ``[PAD] [UNK] [CLS] [SEP] [MASK]``).
    """

    kind = "bpe"

    def __init__(
        self,
        tokenizer: tokenizers.Tokenizer,
        invalid: str = "error",
        add_special_tokens: bool = True,
        special_tokens: SpecialTokens | Mapping[str, str | None] | None = None,
    ):
        super().__init__(tokenizer.get_vocab(with_added_tokens=True), invalid, add_special_tokens, special_tokens)
        if tokenizer.post_processor is None and self.cls_id is not None and self.sep_id is not None:
            tokenizer = tokenizers.Tokenizer.from_str(tokenizer.to_str())
            tokenizer.post_processor = _cls_sep_template(self.special_tokens, self.cls_id, self.sep_id)
        self.tokenizer = tokenizer
        specials = set(self.special_tokens.tokens())
        letters = self.alphabet.letters
        self._pieces = [""] * self.vocab_size  # id -> decoded text; specials empty, [UNK] -> N, other letters -> N each
        for token, index in self.vocab.items():
            self._pieces[index] = "" if token in specials else "".join(c if c in letters else self.alphabet.unknown for c in token)
        if self.unk_id is not None:
            self._pieces[self.unk_id] = self.alphabet.unknown
        self._bases_per_token: float | None = None

    @classmethod
    def from_file(
        cls,
        path: str | Path,
        invalid: str = "error",
        add_special_tokens: bool = True,
        special_tokens: SpecialTokens | Mapping[str, str | None] | None = None,
    ) -> BpeTokenizer:
        """Load a ``tokenizer.json`` (Hugging Face ``tokenizers`` format).

        Args:
            path: the JSON file, e.g. ``data/tokenizers/dnabert2_117m/tokenizer.json``.
            invalid: ``"error"`` or ``"n"``.
            add_special_tokens: wrap every encoded sequence as ``[CLS] ... [SEP]``.
            special_tokens: the token of each role (default ``[PAD] [UNK] [CLS] [SEP] [MASK]``).

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
        return cls(tokenizer, invalid=invalid, add_special_tokens=add_special_tokens, special_tokens=special_tokens)

    @classmethod
    def train(
        cls,
        sequences: Iterable[str],
        vocab_size: int = 4096,
        invalid: str = "error",
        add_special_tokens: bool = True,
        special_tokens: SpecialTokens | Mapping[str, str | None] | None = None,
    ) -> BpeTokenizer:
        """Train a DNABERT-2-style BPE tokenizer (specials first in DNABERT-2 order, ids 0..4 by default, then A, C, G, T).

        Args:
            sequences: training sequences (normalised with the ``invalid`` policy first).
            vocab_size: target vocabulary size, specials included.
            invalid: ``"error"`` or ``"n"``.
            add_special_tokens: wrap every encoded sequence as ``[CLS] ... [SEP]``.
            special_tokens: the token of each role (default ``[PAD] [UNK] [CLS] [SEP] [MASK]``).

        Returns:
            The trained tokenizer.
        """
        roles = SpecialTokens.coerce(special_tokens, cls.default_special_tokens)
        ordered = [getattr(roles, role) for role in BPE_ROLE_ORDER if getattr(roles, role) is not None]
        tokenizer = tokenizers.Tokenizer(BPE(unk_token=roles.unk))
        tokenizer.pre_tokenizer = Whitespace()
        trainer = BpeTrainer(
            vocab_size=vocab_size,
            special_tokens=list(dict.fromkeys(ordered)),
            initial_alphabet=list("ACGT"),
            show_progress=False,
        )
        tokenizer.train_from_iterator(cls.alphabet.normalize(list(sequences), invalid), trainer=trainer)
        if roles.cls is not None and roles.sep is not None:
            tokenizer.post_processor = _cls_sep_template(roles, tokenizer.token_to_id(roles.cls), tokenizer.token_to_id(roles.sep))
        return cls(tokenizer, invalid=invalid, add_special_tokens=add_special_tokens, special_tokens=roles)

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
        return {"invalid": self.invalid, "add_special_tokens": self.add_special_tokens, **self._roles_config()}

    def encode_batch(self, seqs: Sequence[str]) -> list[np.ndarray]:
        """Encode a batch with the Rust tokenizer (see `DnaTokenizer.encode_batch`)."""
        normalized = self.alphabet.normalize(seqs, self.invalid)
        encode = getattr(self.tokenizer, "encode_batch_fast", self.tokenizer.encode_batch)  # _fast: no offsets, tokenizers>=0.20
        encodings = encode(normalized, add_special_tokens=self.add_special_tokens)
        return [np.array(encoding.ids, dtype=np.int64) for encoding in encodings]

    def token_spans(self, sequence: str | int) -> np.ndarray:
        """``(n_tokens, 2)`` spans from the encoding's offsets; specials ``(-1, -1)`` (see `DnaTokenizer.token_spans`).

        Args:
            sequence: the sequence (a length is not enough: BPE tokens depend on the bases).

        Raises:
            InvalidSequenceError: a character outside ACGTN while ``invalid="error"``.
        """
        if not isinstance(sequence, str):
            raise TypeError(f"the BPE tokenizer needs the sequence to place its tokens, got {sequence!r}")
        (normalized,) = self.alphabet.normalize([sequence], self.invalid)
        encoding = self.tokenizer.encode(normalized, add_special_tokens=self.add_special_tokens)
        spans = np.array(encoding.offsets, dtype=np.int64).reshape(-1, 2)  # (n_tokens, 2)
        special = np.array(encoding.special_tokens_mask, dtype=bool)
        # The tokens tile the sequence, so each starts where the previous one ended. Offsets alone miss
        # that when a normalizer rewrites text: `tokenizers` aligns GENA-LM's `-` (a run of >= 10 N)
        # to the run's last base only.
        ends = spans[~special, 1]
        spans[~special, 0] = np.concatenate([[0], ends[:-1]])
        spans[special] = -1
        return spans

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


def _cls_sep_template(roles: SpecialTokens, cls_id: int, sep_id: int) -> TemplateProcessing:
    """DNABERT-2's post-processor: ``[CLS] $A [SEP]`` (pairs ``[CLS] $A [SEP] $B:1 [SEP]:1``), with the role strings."""
    cls_token, sep_token = roles.cls, roles.sep
    return TemplateProcessing(
        single=f"{cls_token} $A {sep_token}",
        pair=f"{cls_token} $A {sep_token} $B:1 {sep_token}:1",
        special_tokens=[(cls_token, cls_id), (sep_token, sep_id)],
    )

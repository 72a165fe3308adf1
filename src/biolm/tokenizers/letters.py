"""One token per letter over an imported checkpoint's vocabulary (HyenaDNA, ESM-2 protein models).

In: strings over the tokenizer's `Alphabet` (DNA or protein). Out: int64 ids
``[open] l_1 ... l_L [close]``, where ``open`` and ``close`` are roles (``cls``, ``sep``, ``eos``,
``bos``) or nothing, as the checkpoint's own tokenizer frames its inputs:

- HyenaDNA (``LongSafari/hyenadna-*-hf``, `hyenadna_tokenizer`): no opening token, ``[SEP]`` closes
  (``build_inputs_with_special_tokens = ids + [SEP]``); the fixed vocabulary ``[CLS]=0 [SEP]=1
  [BOS]=2 [MASK]=3 [PAD]=4 [RESERVED]=5 [UNK]=6 A=7 C=8 G=9 T=10 N=11`` of its
  ``tokenization_hyena.py`` (the ``-hf`` folders ship no vocabulary file). The port pads on the left;
  biolm pads on the right, which leaves every real position of the causal model unchanged.
- ESM-2 (``facebook/esm2_*``, read from its ``vocab.txt``): ``<cls>`` opens, ``<eos>`` closes, as
  ``transformers.EsmTokenizer`` does; amino-acid letters, ``X`` for unknown residues.

Letters are upper-cased (the HyenaDNA tokenizer maps lower case to ``[UNK]``; biolm reads ``a`` as
``A``). Token ``i`` after the opening token is letter ``i``: span ``[i, i + 1)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from biolm.errors import BiolmError
from biolm.tokenizers.alphabet import ALPHABETS, ROLES, Alphabet, SpecialTokens
from biolm.tokenizers.base import VOCAB_FILE, DnaTokenizer, as_id_array, length_bp, read_vocab_txt
from biolm.tokenizers.geometry import SPECIAL_SPAN

HYENADNA_TOKENS = ("[CLS]", "[SEP]", "[BOS]", "[MASK]", "[PAD]", "[RESERVED]", "[UNK]", "A", "C", "G", "T", "N")
HYENADNA_SPECIAL_TOKENS = SpecialTokens(pad="[PAD]", unk="[UNK]", cls="[CLS]", sep="[SEP]", mask="[MASK]", bos="[BOS]", eos=None)
ESM_SPECIAL_TOKENS = SpecialTokens(pad="<pad>", unk="<unk>", cls="<cls>", sep=None, mask="<mask>", bos=None, eos="<eos>")


class LetterTokenizer(DnaTokenizer):
    """One token per letter of ``alphabet``, with the ids and framing of a checkpoint's tokenizer.

    Args:
        vocab: token -> id, or a ``vocab.txt`` (line i has id i) or the folder holding it; it must
            hold every letter of the alphabet and every special token.
        alphabet: ``"DNA"`` or ``"protein"`` (see `biolm.tokenizers.alphabet`).
        open: the role of the token that opens every sequence (``"cls"``, ``"bos"``), or None.
        close: the role of the token that closes it (``"sep"``, ``"eos"``), or None.
        invalid: ``"error"`` rejects letters outside the alphabet, ``"n"`` reads them as its
            unknown letter (N for DNA, X for protein).
        add_special_tokens: frame every sequence with the ``open`` and ``close`` tokens.
        special_tokens: the token of each role (default: BERT's ``[PAD] [UNK] [CLS] [SEP] [MASK]``).

    Raises:
        BiolmError: an unknown alphabet or role, a role without a token, or a vocabulary that lacks
            a letter or special token.
    """

    kind = "letters"

    def __init__(
        self,
        vocab: Mapping[str, int] | str | Path,
        alphabet: str = "DNA",
        open: str | None = "cls",  # noqa: A002 - the framing role's name
        close: str | None = "sep",
        invalid: str = "error",
        add_special_tokens: bool = True,
        special_tokens: SpecialTokens | Mapping[str, str | None] | None = None,
    ):
        if alphabet not in ALPHABETS:
            raise BiolmError(f"tokenizer.alphabet={alphabet!r}: unknown (accepted: {', '.join(ALPHABETS)})")
        self.alphabet: Alphabet = ALPHABETS[alphabet]
        if not isinstance(vocab, Mapping):
            path = Path(vocab).expanduser()
            vocab = read_vocab_txt(path / VOCAB_FILE if path.is_dir() else path)
        vocab = dict(vocab)
        missing = [letter for letter in self.alphabet.letters if letter not in vocab]
        if missing:
            raise BiolmError(f"{self.alphabet.name} letter tokenizer: the vocabulary lacks the letters {missing}")
        super().__init__(vocab, invalid, add_special_tokens, special_tokens)
        for key, role in (("open", open), ("close", close)):
            if role is not None and (role not in ROLES or getattr(self.special_tokens, role) is None):
                raise BiolmError(f"tokenizer.{key}={role!r}: not a role with a token here (roles with tokens: {', '.join(self.special_tokens.by_role())})")
        self.open, self.close = open, close
        self._head = [self.token_id(open)] if open else []
        self._tail = [self.token_id(close)] if close else []
        byte_to_id = np.full(256, self.unk_id if self.unk_id is not None else vocab[self.alphabet.unknown], dtype=np.int64)
        for letter in self.alphabet.letters:
            byte_to_id[ord(letter)] = vocab[letter]
        self._byte_to_id = byte_to_id  # (256,) int64: a letter's byte -> its id
        framing = {self.pad_id, *self._head, *self._tail}
        by_id = sorted(vocab, key=vocab.__getitem__)
        self._pieces = [
            tok if tok in self.alphabet.letters else "" if i in framing else self.alphabet.unknown for i, tok in enumerate(by_id)
        ]

    @property
    def bases_per_token(self) -> float:
        """Always 1.0."""
        return 1.0

    @property
    def special_ids(self) -> list[int]:
        """Every id that is not a letter, sorted: the roles' tokens and the rest (HyenaDNA's ``[RESERVED]``,
        ESM's ``.``, ``-``, ``<null_1>``), so none is a language-model target or a random replacement."""
        return sorted(i for token, i in self.vocab.items() if token not in self.alphabet.letters)

    @property
    def _name(self) -> str:
        return f"{self.alphabet.name} letter"

    def config(self) -> dict[str, Any]:
        """Constructor parameters, without the vocabulary (saved as ``vocab.txt`` beside them)."""
        return {
            "alphabet": self.alphabet.name,
            "open": self.open,
            "close": self.close,
            "invalid": self.invalid,
            "add_special_tokens": self.add_special_tokens,
            "special_tokens": self.special_tokens.as_config(),
        }

    @classmethod
    def _load(cls, directory: Path, params: dict[str, Any]) -> LetterTokenizer:
        return cls(directory / VOCAB_FILE, **params)

    def encode_batch(self, seqs: Sequence[str]) -> list[np.ndarray]:
        """Encode a batch: ``[open] l_1 ... l_L [close]`` per sequence (see the module docstring)."""
        joined, lengths = self.alphabet.normalize_joined(seqs, self.invalid)
        flat = self._byte_to_id[np.frombuffer(joined, dtype=np.uint8)]  # (total letters,)
        head, tail = (self._head, self._tail) if self.add_special_tokens else ([], [])
        if len(lengths) and (lengths == lengths[0]).all():
            rows = flat.reshape(len(lengths), int(lengths[0]))
            out = np.empty((len(lengths), len(head) + rows.shape[1] + len(tail)), dtype=np.int64)  # (batch, n_tokens)
            out[:, : len(head)] = head
            out[:, len(head) : out.shape[1] - len(tail)] = rows
            out[:, out.shape[1] - len(tail) :] = tail
            return list(out)
        pieces = np.split(flat, np.cumsum(lengths)[:-1])
        return [np.concatenate([head, piece, tail]).astype(np.int64) for piece in pieces]

    def token_spans(self, sequence: str | int) -> np.ndarray:
        """``(n_tokens, 2)`` spans: ``[i, i + 1)`` for letter ``i``, ``(-1, -1)`` for framing tokens."""
        starts = np.arange(length_bp(sequence), dtype=np.int64)
        spans = np.stack([starts, starts + 1], axis=1)
        if not self.add_special_tokens:
            return spans
        head = np.full((len(self._head), 2), SPECIAL_SPAN, dtype=np.int64)
        tail = np.full((len(self._tail), 2), SPECIAL_SPAN, dtype=np.int64)
        return np.concatenate([head, spans, tail])

    def decode(self, ids: Sequence[int]) -> str:
        """Ids back to letters; pad and framing tokens are dropped, any other special reads as the unknown letter.

        Args:
            ids: token ids.

        Returns:
            The upper-case string.
        """
        return "".join(self._pieces[i] for i in as_id_array(ids, self.vocab_size).tolist())


def hyenadna_tokenizer(invalid: str = "error", add_special_tokens: bool = True) -> LetterTokenizer:
    """The HyenaDNA ``-hf`` character tokenizer: ids ``A=7 C=8 G=9 T=10 N=11``, ``[SEP]`` appended."""
    vocab = {token: i for i, token in enumerate(HYENADNA_TOKENS)}
    return LetterTokenizer(vocab, "DNA", None, "sep", invalid, add_special_tokens, HYENADNA_SPECIAL_TOKENS)


def esm_protein_tokenizer(path: str | Path, invalid: str = "error", add_special_tokens: bool = True) -> LetterTokenizer:
    """An ESM-2 protein tokenizer from its ``vocab.txt`` (or the folder): ``<cls> residues <eos>``."""
    return LetterTokenizer(path, "protein", "cls", "eos", invalid, add_special_tokens, ESM_SPECIAL_TOKENS)

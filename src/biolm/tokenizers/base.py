"""The interface every DNA tokenizer implements, and saving/loading tokenizer folders.

In: nucleotide strings. Out: one 1-D int64 id array per sequence, wrapped as ``[CLS] ... [SEP]``
when ``add_special_tokens`` is set; ``decode`` maps ids back to a nucleotide string.
A tokenizer owns
- its `Alphabet` (``alphabet``, `DNA` today): the letters it reads and how others are handled;
- its special tokens by role (``special_tokens``, a `SpecialTokens`; ids as ``pad_id``, ``cls_id``, ...);
- its geometry: `token_spans` gives the ``(n_tokens, 2)`` ``[start, end)`` bases of every token,
  from which `tokens_covering` (a base range -> token range) and `token_labels` (per-base labels ->
  per-token labels, each token taking its centre base's label) follow (see `biolm.tokenizers.geometry`).

``min_length_bp`` is the shortest sequence a tokenizer reads faithfully (k for k-mers, else 1):
``encode_batch`` still encodes shorter ones (a k-mer tokenizer as one ``[UNK]``), but the readers
of user input (`biolm.data.datasets.tokenize_records`, the prediction path, the service) refuse
them by name.

A saved tokenizer folder holds Hugging Face files (``vocab.txt`` for char/k-mer, readable by
``transformers.BertTokenizer``; ``tokenizer.json`` for BPE) plus ``biolm_tokenizer.json``:
``{"_target_": "biolm.tokenizers.kmer.KmerTokenizer", <constructor params>}``. `load_tokenizer`
imports the class named by ``_target_`` (only classes under ``biolm.``) and lets it rebuild itself;
folders of the older layout, ``{"kind": "char" | "kmer" | "bpe", ...}``, still load. Files are
written atomically, ``biolm_tokenizer.json`` last, so a folder that has it is complete.
"""

from __future__ import annotations

import importlib
import json
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from numbers import Integral
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from biolm.atomic import atomic_path
from biolm.errors import BiolmError
from biolm.tokenizers.alphabet import BERT_SPECIAL_TOKENS, DNA, Alphabet, SpecialTokens, check_invalid_policy
from biolm.tokenizers.geometry import labels_at_centres, tokens_overlapping

META_FILE = "biolm_tokenizer.json"
VOCAB_FILE = "vocab.txt"
# The older folder layout named a kind instead of a class; these are the only kinds it ever wrote.
_LEGACY_KINDS = {
    "char": "biolm.tokenizers.char.CharTokenizer",
    "kmer": "biolm.tokenizers.kmer.KmerTokenizer",
    "bpe": "biolm.tokenizers.bpe.BpeTokenizer",
}


class DnaTokenizer(ABC):
    """A DNA tokenizer: a vocabulary with special tokens by role, encode/decode, geometry, save/load.

    Args:
        vocab: token -> id; must hold every special token of ``special_tokens``.
        invalid: ``"error"`` rejects characters outside the alphabet, ``"n"`` reads them as its
            unknown letter (N).
        add_special_tokens: wrap every encoded sequence as ``[CLS] ... [SEP]``.
        special_tokens: the token of each role; a mapping overrides some roles of the class's
            ``default_special_tokens`` (``[PAD] [UNK] [CLS] [SEP] [MASK]``, no bos/eos).
    """

    kind: ClassVar[str]  # a short name for messages and reports (``char``, ``kmer``, ``bpe``)
    alphabet: ClassVar[Alphabet] = DNA
    default_special_tokens: ClassVar[SpecialTokens] = BERT_SPECIAL_TOKENS

    def __init__(
        self,
        vocab: dict[str, int],
        invalid: str = "error",
        add_special_tokens: bool = True,
        special_tokens: SpecialTokens | Mapping[str, str | None] | None = None,
    ):
        self.special_tokens = SpecialTokens.coerce(special_tokens, self.default_special_tokens)
        needed = self.special_tokens.tokens()
        missing = [tok for tok in needed if tok not in vocab]
        if missing:
            raise BiolmError(f"{self.kind} tokenizer vocabulary lacks special tokens {missing} (needs all of {list(needed)})")
        self.vocab = vocab
        self.invalid = check_invalid_policy(invalid)
        self.add_special_tokens = bool(add_special_tokens)

    def token_id(self, role: str) -> int | None:
        """Id of the special token of ``role`` (``"pad"``, ``"cls"``, ...), ``None`` if the tokenizer has none."""
        token = getattr(self.special_tokens, role)
        return None if token is None else self.vocab[token]

    @property
    def pad_id(self) -> int | None:
        """Id of the pad token (``[PAD]``)."""
        return self.token_id("pad")

    @property
    def unk_id(self) -> int | None:
        """Id of the unknown token (``[UNK]``)."""
        return self.token_id("unk")

    @property
    def cls_id(self) -> int | None:
        """Id of the classification/start token (``[CLS]``)."""
        return self.token_id("cls")

    @property
    def sep_id(self) -> int | None:
        """Id of the separator/end token (``[SEP]``)."""
        return self.token_id("sep")

    @property
    def mask_id(self) -> int | None:
        """Id of the mask token (``[MASK]``)."""
        return self.token_id("mask")

    @property
    def bos_id(self) -> int | None:
        """Id of the begin-of-sequence token (none for biolm's own tokenizers)."""
        return self.token_id("bos")

    @property
    def eos_id(self) -> int | None:
        """Id of the end-of-sequence token (none for biolm's own tokenizers)."""
        return self.token_id("eos")

    @property
    def special_ids(self) -> list[int]:
        """The ids of every special token, sorted."""
        return sorted({self.vocab[tok] for tok in self.special_tokens.tokens()})

    @property
    def vocab_size(self) -> int:
        """Number of ids (the embedding table size a model needs)."""
        return len(self.vocab)

    @property
    @abstractmethod
    def bases_per_token(self) -> float:
        """Average number of new bases each non-special token advances by."""

    @property
    def max_tokens_per_base(self) -> int:
        """The most tokens one base lies in: 1 when tokens do not overlap (char, BPE, stride-k k-mers)."""
        return 1

    @property
    def min_length_bp(self) -> int:
        """Fewest bases a sequence needs to become at least one token that carries its bases.

        1 for char and BPE; k for k-mers (a shorter sequence has no k-mer, and `encode_batch`
        can only give it one ``[UNK]``, which looks the same for every short sequence).
        """
        return 1

    @property
    def length_rule(self) -> str:
        """`min_length_bp` as a sentence for messages, e.g. ``the 6-mer tokenizer needs at least 6 bases``."""
        n = self.min_length_bp
        return f"the {self._name} tokenizer needs at least {n} base{'s' if n != 1 else ''}"

    @property
    def _name(self) -> str:
        return self.kind

    def too_short(self, seqs: Sequence[str]) -> list[int]:
        """Indices of the sequences shorter than `min_length_bp` (surrounding whitespace not counted).

        Items that are not strings are left to `encode_batch`, which names them.
        """
        minimum = self.min_length_bp
        return [i for i, seq in enumerate(seqs) if isinstance(seq, str) and len(seq.strip()) < minimum]

    @abstractmethod
    def encode_batch(self, seqs: Sequence[str]) -> list[np.ndarray]:
        """Encode a batch of sequences.

        Args:
            seqs: nucleotide strings (any case; see `Alphabet.normalize`).

        Returns:
            One 1-D int64 id array per sequence.

        Raises:
            InvalidSequenceError: a character outside the alphabet while ``invalid="error"``.
        """

    @abstractmethod
    def decode(self, ids: Sequence[int]) -> str:
        """Map ids back to an upper-case nucleotide string, dropping special tokens."""

    @abstractmethod
    def config(self) -> dict[str, Any]:
        """The constructor parameters that `save` records in ``biolm_tokenizer.json``."""

    def encode(self, seq: str) -> np.ndarray:
        """Encode one sequence into a 1-D int64 id array (see `encode_batch`)."""
        return self.encode_batch([seq])[0]

    def token_spans(self, sequence: str | int) -> np.ndarray:
        """The bases of every token of ``encode(sequence)``.

        Args:
            sequence: the sequence, or (char and k-mer tokenizers, whose geometry depends only on
                it) its length in bases. Letters are not checked here; `encode_batch` checks them.

        Returns:
            ``(n_tokens, 2)`` int64 half-open ``[start, end)`` base offsets into the normalised
            sequence (surrounding whitespace stripped), row ``t`` for token ``t``; special tokens
            get ``(-1, -1)``. See `biolm.tokenizers.geometry` for each tokenizer's layout.
        """
        raise NotImplementedError(f"the {self._name} tokenizer does not report token spans")

    def tokens_covering(self, sequence: str | int, start_bp: int, end_bp: int) -> tuple[int, int]:
        """Token positions ``[first, stop)`` (specials counted) of the tokens holding any base of ``[start_bp, end_bp)``.

        Args:
            sequence: the sequence or, for char and k-mer tokenizers, its length (see `token_spans`).
            start_bp: first base, 0-based, in the normalised sequence.
            end_bp: one past the last base.

        Returns:
            ``(first, stop)``, a slice of ``encode(sequence)``; ``(0, 0)`` if no token holds those
            bases. E.g. 6-mers, stride 1, with ``[CLS]``: base 10 gives ``(6, 12)``, the six k-mers over it.
        """
        return tokens_overlapping(self.token_spans(sequence), start_bp, end_bp)

    def token_labels(self, sequence: str | int, base_labels: Sequence | np.ndarray, ignore_index: int = -100) -> np.ndarray:
        """Per-base labels -> per-token labels: each token takes the label of its centre base.

        The centre of a token over bases ``[start, end)`` is ``start + (end - start - 1) // 2``: the
        base itself for char tokens, base ``start + (k - 1) // 2`` of a k-mer, the middle (left of
        the two middles when even) of a BPE token. Special tokens get ``ignore_index``.

        Args:
            sequence: the sequence or, for char and k-mer tokenizers, its length (see `token_spans`).
            base_labels: one label per base of the normalised sequence.
            ignore_index: the label of special tokens.

        Returns:
            ``(n_tokens,)`` labels aligned with ``encode(sequence)``.

        Raises:
            BiolmError: ``base_labels`` does not have one label per base.
        """
        n_bases = length_bp(sequence)
        if len(base_labels) != n_bases:
            raise BiolmError(f"base labels: {len(base_labels)} labels for a sequence of {n_bases} bases (need one per base)")
        return labels_at_centres(self.token_spans(sequence), np.asarray(base_labels), ignore_index)

    def save(self, directory: str | Path) -> None:
        """Write the tokenizer files and ``biolm_tokenizer.json`` into ``directory`` (created if needed).

        Args:
            directory: destination folder.
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self._save_files(directory)
        target = f"{type(self).__module__}.{type(self).__qualname__}"
        with atomic_path(directory / META_FILE) as tmp:
            tmp.write_text(json.dumps({"_target_": target, **self.config()}, indent=2) + "\n")

    @staticmethod
    def load(directory: str | Path) -> DnaTokenizer:
        """Load a tokenizer saved with `save` (same as `load_tokenizer`)."""
        return load_tokenizer(directory)

    def _roles_config(self) -> dict[str, Any]:
        """``{"special_tokens": {...}}`` when the roles differ from the class default, else ``{}`` (for `config`)."""
        if self.special_tokens == self.default_special_tokens:
            return {}
        return {"special_tokens": self.special_tokens.as_config()}

    def _save_files(self, directory: Path) -> None:
        """Write the Hugging Face files; default: ``vocab.txt`` (the vocabulary is fixed by `config`)."""
        with atomic_path(directory / VOCAB_FILE) as tmp:
            write_vocab_txt(self.vocab, tmp)

    @classmethod
    def _load(cls, directory: Path, params: dict[str, Any]) -> DnaTokenizer:
        """Rebuild from params; default: construct, then check ``vocab.txt`` agrees."""
        tokenizer = cls(**params)
        vocab_path = directory / VOCAB_FILE
        if read_vocab_txt(vocab_path) != tokenizer.vocab:
            raise BiolmError(f"{vocab_path}: vocabulary does not match {META_FILE} ({params}); the folder was modified")
        return tokenizer

    def __repr__(self) -> str:
        params = ", ".join(f"{key}={value!r}" for key, value in self.config().items())
        return f"{type(self).__name__}({params})"


def load_tokenizer(directory: str | Path) -> DnaTokenizer:
    """Load a tokenizer folder written by `DnaTokenizer.save`.

    Args:
        directory: folder holding ``biolm_tokenizer.json`` and the Hugging Face files.

    Returns:
        The tokenizer, of the class named by ``_target_`` (or, in older folders, by ``kind``).

    Raises:
        BiolmError: the folder or its metadata is missing or unreadable, or names a class that is
            not a biolm tokenizer.
    """
    meta_path = Path(directory) / META_FILE
    if not meta_path.is_file():
        raise BiolmError(f"{meta_path}: not found (a tokenizer folder written by DnaTokenizer.save has it)")
    try:
        params = json.loads(meta_path.read_text())
        kind = params.pop("kind", None)
        target = params.pop("_target_", None) or _LEGACY_KINDS.get(kind)
    except (json.JSONDecodeError, AttributeError, TypeError) as err:
        raise BiolmError(f"{meta_path}: not a tokenizer description ({err}); expected JSON with a '_target_' field") from None
    if target is None:
        found = f"unknown tokenizer kind {kind!r}" if kind is not None else "no '_target_' field"
        raise BiolmError(f"{meta_path}: {found} (expected '_target_': a biolm tokenizer class, e.g. biolm.tokenizers.kmer.KmerTokenizer)")
    cls = _tokenizer_class(target, meta_path)
    try:
        return cls._load(meta_path.parent, params)
    except TypeError as err:
        raise BiolmError(f"{meta_path}: parameters do not fit {target} ({err})") from None


def _tokenizer_class(target: Any, meta_path: Path) -> type[DnaTokenizer]:
    """Import the `DnaTokenizer` subclass named by ``_target_``; only ``biolm.`` classes, never code from elsewhere."""
    refused = f"{meta_path}: _target_ {target!r} is not a biolm tokenizer class (accepted: biolm.tokenizers.<module>.<Class>)"
    if not isinstance(target, str) or not target.startswith("biolm.") or "." not in target[len("biolm.") :]:
        raise BiolmError(refused)
    module_name, _, class_name = target.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError):
        raise BiolmError(refused) from None
    if not (isinstance(cls, type) and issubclass(cls, DnaTokenizer)):
        raise BiolmError(refused)
    return cls


def length_bp(sequence: str | int) -> int:
    """Bases in ``sequence`` (surrounding whitespace not counted), or ``sequence`` itself when it is a length."""
    if isinstance(sequence, str):
        return len(sequence.strip())
    if isinstance(sequence, Integral) and not isinstance(sequence, bool) and sequence >= 0:
        return int(sequence)
    raise TypeError(f"expected a sequence string or a length in bases, got {sequence!r}")


def pack_rows(ids: np.ndarray, cls_id: int, sep_id: int, add_special_tokens: bool) -> list[np.ndarray]:
    """(batch, n_tokens) ids of equal-length sequences -> one int64 row view each, ``[CLS] ... [SEP]`` if asked."""
    batch, n_tokens = ids.shape
    if not add_special_tokens:
        return list(np.ascontiguousarray(ids, dtype=np.int64))
    out = np.empty((batch, n_tokens + 2), dtype=np.int64)  # (batch, n_tokens + 2)
    out[:, 0] = cls_id
    out[:, 1:-1] = ids
    out[:, -1] = sep_id
    return list(out)


def gather_tokens(
    values: np.ndarray,
    first: np.ndarray,
    counts: np.ndarray,
    step: int,
    cls_id: int,
    sep_id: int,
    add_special_tokens: bool,
) -> list[np.ndarray]:
    """Sequence i gets ``values[first[i] + step * j]`` for ``j < counts[i]``, as int64, ``[CLS] ... [SEP]`` if asked.

    The gather index is built as a cumulative sum of jumps (``step`` inside a sequence, a computed
    jump at each sequence boundary), so no per-token Python work and no ``np.repeat``.
    """
    if len(counts) == 0:
        return []
    extra = 2 if add_special_tokens else 0
    ends = np.cumsum(counts + extra)
    starts = ends - counts - extra
    last = first + step * (counts - 1)
    filled = counts > 0
    deltas = np.full(int(ends[-1]), step, dtype=np.int64)  # (total_tokens,) jumps between gathered indices
    if add_special_tokens:
        values = np.concatenate([values, np.array([cls_id, sep_id], dtype=values.dtype)])
        cls_src, sep_src = len(values) - 2, len(values) - 1
        deltas[starts] = cls_src - sep_src
        deltas[0] = cls_src
        deltas[starts[filled] + 1] = first[filled] - cls_src
        deltas[ends - 1] = sep_src - np.where(filled, last, cls_src)
    else:
        starts, first, last = starts[filled], first[filled], last[filled]
        if len(starts):
            deltas[starts] = first - np.concatenate([[0], last[:-1]])
    out = values[np.cumsum(deltas)].astype(np.int64, copy=False)
    bounds = ends.tolist()
    return [out[a:b] for a, b in zip([0, *bounds[:-1]], bounds)]


def as_id_array(ids: Sequence[int], vocab_size: int) -> np.ndarray:
    """Ids as a 1-D int64 array; `BiolmError` if any is outside ``0..vocab_size - 1``."""
    ids = np.asarray(ids, dtype=np.int64).ravel()
    if ids.size and (ids.min() < 0 or ids.max() >= vocab_size):
        raise BiolmError(f"cannot decode ids outside 0..{vocab_size - 1}")
    return ids


def write_vocab_txt(vocab: dict[str, int], path: Path) -> None:
    """Write one token per line in id order (the ``vocab.txt`` format of ``BertTokenizer``)."""
    tokens = sorted(vocab, key=vocab.__getitem__)
    path.write_text("".join(f"{tok}\n" for tok in tokens))


def read_vocab_txt(path: Path) -> dict[str, int]:
    """Read a ``vocab.txt`` (token on line i has id i)."""
    if not path.is_file():
        raise BiolmError(f"{path}: not found (the tokenizer folder is incomplete)")
    return {line: i for i, line in enumerate(path.read_text().splitlines())}

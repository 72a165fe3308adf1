"""The interface every DNA tokenizer implements, and saving/loading tokenizer folders.

In: nucleotide strings. Out: one 1-D int64 id array per sequence, wrapped as ``[CLS] ... [SEP]``
when ``add_special_tokens`` is set; ``decode`` maps ids back to a nucleotide string.
``min_length_bp`` is the shortest sequence a tokenizer reads faithfully (k for k-mers, else 1):
``encode_batch`` still encodes shorter ones (a k-mer tokenizer as one ``[UNK]``), but the readers
of user input (`biolm.data.datasets.tokenize_records`, the prediction path, the service) refuse
them by name.

A saved tokenizer folder holds Hugging Face files (``vocab.txt`` for char/k-mer, readable by
``transformers.BertTokenizer``; ``tokenizer.json`` for BPE) plus ``biolm_tokenizer.json``:
``{"kind": ..., <constructor params>}``. `load_tokenizer` dispatches on ``kind``; each subclass
registers its ``kind`` when it is defined. Files are written atomically, ``biolm_tokenizer.json``
last, so a folder that has it is complete.
"""

from __future__ import annotations

import contextlib
import json
import os
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from biolm.errors import BiolmError
from biolm.tokenizers.alphabet import SPECIAL_TOKENS, check_invalid_policy

META_FILE = "biolm_tokenizer.json"
VOCAB_FILE = "vocab.txt"

_KINDS: dict[str, type[DnaTokenizer]] = {}


class DnaTokenizer(ABC):
    """A DNA tokenizer: a vocabulary with the shared special tokens, encode/decode, save/load.

    Args:
        vocab: token -> id; must hold every name in ``SPECIAL_TOKENS``.
        invalid: ``"error"`` rejects characters outside ACGTN, ``"n"`` reads them as N.
        add_special_tokens: wrap every encoded sequence as ``[CLS] ... [SEP]``.
    """

    kind: ClassVar[str]

    def __init__(self, vocab: dict[str, int], invalid: str = "error", add_special_tokens: bool = True):
        missing = [tok for tok in SPECIAL_TOKENS if tok not in vocab]
        if missing:
            raise BiolmError(f"{self.kind} tokenizer vocabulary lacks special tokens {missing} (needs all of {list(SPECIAL_TOKENS)})")
        self.vocab = vocab
        self.invalid = check_invalid_policy(invalid)
        self.add_special_tokens = bool(add_special_tokens)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "kind" in cls.__dict__:
            _KINDS[cls.kind] = cls

    @property
    def pad_id(self) -> int:
        """Id of ``[PAD]``."""
        return self.vocab["[PAD]"]

    @property
    def unk_id(self) -> int:
        """Id of ``[UNK]``."""
        return self.vocab["[UNK]"]

    @property
    def cls_id(self) -> int:
        """Id of ``[CLS]``."""
        return self.vocab["[CLS]"]

    @property
    def sep_id(self) -> int:
        """Id of ``[SEP]``."""
        return self.vocab["[SEP]"]

    @property
    def mask_id(self) -> int:
        """Id of ``[MASK]``."""
        return self.vocab["[MASK]"]

    @property
    def vocab_size(self) -> int:
        """Number of ids (the embedding table size a model needs)."""
        return len(self.vocab)

    @property
    @abstractmethod
    def bases_per_token(self) -> float:
        """Average number of new bases each non-special token advances by."""

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
            seqs: nucleotide strings (any case; see `normalize_sequences`).

        Returns:
            One 1-D int64 id array per sequence.

        Raises:
            InvalidSequenceError: a character outside ACGTN while ``invalid="error"``.
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

    def save(self, directory: str | Path) -> None:
        """Write the tokenizer files and ``biolm_tokenizer.json`` into ``directory`` (created if needed).

        Args:
            directory: destination folder.
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self._save_files(directory)
        with atomic_path(directory / META_FILE) as tmp:
            tmp.write_text(json.dumps({"kind": self.kind, **self.config()}, indent=2) + "\n")

    @staticmethod
    def load(directory: str | Path) -> DnaTokenizer:
        """Load a tokenizer saved with `save` (same as `load_tokenizer`)."""
        return load_tokenizer(directory)

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
        The tokenizer, of the class named by ``kind``.

    Raises:
        BiolmError: the folder or its metadata is missing, unreadable, or names an unknown kind.
    """
    meta_path = Path(directory) / META_FILE
    if not meta_path.is_file():
        raise BiolmError(f"{meta_path}: not found (a tokenizer folder written by DnaTokenizer.save has it)")
    try:
        params = json.loads(meta_path.read_text())
        kind = params.pop("kind")
    except (json.JSONDecodeError, KeyError, AttributeError, TypeError) as err:
        raise BiolmError(f"{meta_path}: not a tokenizer description ({err}); expected JSON with a 'kind' field") from None
    if kind not in _KINDS:
        raise BiolmError(f"{meta_path}: unknown tokenizer kind {kind!r} (accepted: {sorted(_KINDS)})")
    try:
        return _KINDS[kind]._load(meta_path.parent, params)
    except TypeError as err:
        raise BiolmError(f"{meta_path}: parameters do not fit the {kind} tokenizer ({err})") from None


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


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary sibling of ``path`` to write; it replaces ``path`` only if the block succeeds."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)

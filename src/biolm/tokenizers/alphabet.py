"""The nucleotide alphabet, the special-token names, and input normalisation shared by every tokenizer.

In: a batch of nucleotide strings (any case, surrounding whitespace allowed).
Out: upper-case strings over ``A, C, G, T, N`` (`normalize_sequences`), or the same batch as one
joined ASCII ``bytes`` object plus a ``(batch,)`` int64 array of lengths (`normalize_joined`, what
the vectorised tokenizers consume).

Leading and trailing whitespace is removed; whitespace *inside* a sequence is an invalid character.
With ``invalid="error"`` the first character outside ``ACGTNacgtn`` raises `InvalidSequenceError`
(its ``position`` counts from the start of the string as given, whitespace included); with
``invalid="n"`` every such character (one code point each) becomes ``N``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from biolm.errors import BiolmError, InvalidSequenceError

SPECIAL_TOKENS: tuple[str, ...] = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
NUCLEOTIDES = "ACGTN"
INVALID_POLICIES = ("error", "n")

_VALID_BYTES = b"ACGTNacgtn"
_INVALID_CHAR = re.compile(r"[^ACGTNacgtn]")


def check_invalid_policy(invalid: str) -> str:
    """Return ``invalid`` if it is a known policy, else raise `BiolmError` naming ``tokenizer.invalid``."""
    if invalid not in INVALID_POLICIES:
        raise BiolmError(f"tokenizer.invalid={invalid!r} is not a policy (accepted: 'error' to reject, 'n' to read as N)")
    return invalid


def normalize_joined(seqs: Sequence[str], invalid: str = "error") -> tuple[bytes, np.ndarray]:
    """Normalise a batch and return it joined, ready for byte lookup tables.

    Args:
        seqs: nucleotide strings.
        invalid: ``"error"`` or ``"n"`` (see the module docstring).

    Returns:
        ``(joined, lengths)``: the normalised sequences concatenated as upper-case ASCII bytes over
        ``ACGTN``, and their ``(batch,)`` int64 lengths.

    Raises:
        InvalidSequenceError: ``invalid="error"`` and a sequence holds a character outside ACGTN.
    """
    check_invalid_policy(invalid)
    if isinstance(seqs, str):
        raise BiolmError("expected a list of sequences, got a single string (wrap it in a list)")
    try:
        joined = "".join(seqs)
    except TypeError:
        bad = next(i for i, s in enumerate(seqs) if not isinstance(s, str))
        raise BiolmError(f"sequence {bad}: expected a string, got {type(seqs[bad]).__name__}") from None
    # Fast path, the common case: plain ASCII nucleotides, no whitespace to strip.
    if joined.isascii():
        raw = joined.encode("ascii")
        if not raw.translate(None, _VALID_BYTES):
            return raw.upper(), np.fromiter(map(len, seqs), dtype=np.int64, count=len(seqs))
    cleaned = [s.strip() for s in seqs]
    if invalid == "error":
        for index, (original, seq) in enumerate(zip(seqs, cleaned)):
            match = _INVALID_CHAR.search(seq)
            if match:
                leading = len(original) - len(original.lstrip())
                raise InvalidSequenceError(index, leading + match.start(), match.group())
    else:
        cleaned = [_INVALID_CHAR.sub("N", s) for s in cleaned]
    lengths = np.fromiter(map(len, cleaned), dtype=np.int64, count=len(cleaned))
    return "".join(cleaned).encode("ascii").upper(), lengths


def normalize_sequences(seqs: Sequence[str], invalid: str = "error") -> list[str]:
    """Upper-case, strip surrounding whitespace, and check (or repair) the alphabet.

    Args:
        seqs: nucleotide strings; ``A, C, G, T, N`` are accepted in any case.
        invalid: ``"error"`` raises on the first other character; ``"n"`` replaces each one by ``N``.

    Returns:
        The normalised strings, one per input, over ``ACGTN``.

    Raises:
        InvalidSequenceError: ``invalid="error"`` and a character is outside the alphabet; it carries
            the sequence index, the 0-based position in the string as given, and the character.
        BiolmError: ``invalid`` is not a known policy, or an item is not a string.
    """
    joined, lengths = normalize_joined(seqs, invalid)
    text = joined.decode("ascii")
    ends = np.cumsum(lengths).tolist()
    starts = [0, *ends[:-1]]
    return [text[a:b] for a, b in zip(starts, ends)]

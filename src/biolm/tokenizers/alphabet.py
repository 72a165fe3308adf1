"""What a tokenizer reads: its alphabet (letters, the unknown letter, complements) and its special tokens by role.

An `Alphabet` (``DNA``, ``PROTEIN``) turns a batch of strings (any case, surrounding whitespace allowed)
into upper-case strings over its letters: `Alphabet.normalize` gives a list of strings,
`Alphabet.normalize_joined` one joined ASCII ``bytes`` object plus a ``(batch,)`` int64 array of
lengths (what the vectorised tokenizers consume). Leading and trailing whitespace is removed;
whitespace *inside* a sequence is an invalid character. With ``invalid="error"`` the first character
outside the letters (either case) raises `InvalidSequenceError` (its ``position`` counts from the
start of the string as given, whitespace included); with ``invalid="n"`` every such character (one
code point each) becomes the alphabet's unknown letter (``N`` for DNA, ``X`` for protein). RNA input
is read as its DNA equivalent: ``U`` (either case) becomes ``T``. `Alphabet.reverse_complement`
complements with the alphabet's table (DNA: the IUPAC codes and U, case kept; protein has none).

`SpecialTokens` names a tokenizer's special tokens by role (pad, unk, cls, sep, mask, bos, eos;
``None`` where it has none): ``[PAD] [UNK] [CLS] [SEP] [MASK]`` for biolm's own tokenizers, other
strings for imported ones (e.g. Nucleotide Transformer's ``<pad> <unk> <cls> <mask> <bos> <eos>``).
Each tokenizer holds one (`DnaTokenizer.special_tokens`), chosen per class or per instance.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence

import numpy as np

from biolm.errors import BiolmError, InvalidSequenceError

INVALID_POLICIES = ("error", "n")
ROLES = ("pad", "unk", "cls", "sep", "mask", "bos", "eos")


def check_invalid_policy(invalid: str) -> str:
    """Return ``invalid`` if it is a known policy, else raise `BiolmError` naming ``tokenizer.invalid``."""
    if invalid not in INVALID_POLICIES:
        raise BiolmError(f"tokenizer.invalid={invalid!r} is not a policy (accepted: 'error' to reject, 'n' to read as N)")
    return invalid


class Alphabet:
    """The letters a tokenizer reads, how other letters are handled, and the complement table.

    Args:
        name: e.g. ``"DNA"``, for messages.
        letters: the valid letters, upper case (accepted in either case, returned upper case).
        unknown: the letter (one of ``letters``) that stands for any other under ``invalid="n"``.
        complement: upper-case letter -> its complement (lower case is derived and keeps its case);
            it may cover more letters than ``letters`` (DNA: every IUPAC code), since it is also
            applied to raw sequence. ``None`` where complements make no sense (protein, text).
        aliases: other upper-case letters read as one of ``letters`` (DNA: RNA's ``U`` as ``T``).
        accepted: what the alphabet reads, in words, for messages (default: the letters listed).
    """

    def __init__(
        self,
        name: str,
        letters: str,
        unknown: str,
        complement: Mapping[str, str] | None = None,
        aliases: Mapping[str, str] | None = None,
        accepted: str | None = None,
    ):
        aliases = dict(aliases or {})
        if unknown not in letters or not letters.isascii() or letters != letters.upper():
            raise ValueError(f"alphabet {name}: letters must be upper-case ASCII holding the unknown letter {unknown!r}")
        if any(a in letters or len(a) != 1 or b not in letters for a, b in aliases.items()):
            raise ValueError(f"alphabet {name}: aliases must map other single letters onto its letters")
        self.name = name
        self.letters = letters
        self.unknown = unknown
        self.aliases = aliases
        self.accepted = accepted or f"{', '.join(letters)} in any case"
        self.complement = dict(complement) if complement is not None else None
        readable = letters + "".join(aliases)
        self._valid_bytes = (readable + readable.lower()).encode("ascii")
        self._invalid_char = re.compile(f"[^{re.escape(readable + readable.lower())}]")
        self._alias_table = bytes.maketrans("".join(aliases).encode(), "".join(aliases.values()).encode()) if aliases else None
        if self.complement is None:
            self._complement_table = None
        else:
            upper, lower = "".join(self.complement), "".join(self.complement.values())
            self._complement_table = str.maketrans(upper + upper.lower(), lower + lower.lower())

    def normalize_joined(self, seqs: Sequence[str], invalid: str = "error") -> tuple[bytes, np.ndarray]:
        """Normalise a batch and return it joined, ready for byte lookup tables.

        Args:
            seqs: sequence strings.
            invalid: ``"error"`` or ``"n"`` (see the module docstring).

        Returns:
            ``(joined, lengths)``: the normalised sequences concatenated as upper-case ASCII bytes over
            the letters, and their ``(batch,)`` int64 lengths.

        Raises:
            InvalidSequenceError: ``invalid="error"`` and a sequence holds a character outside the letters.
            BiolmError: ``invalid`` is not a known policy, or an item is not a string.
        """
        check_invalid_policy(invalid)
        if isinstance(seqs, str):
            raise BiolmError("expected a list of sequences, got a single string (wrap it in a list)")
        try:
            joined = "".join(seqs)
        except TypeError:
            bad = next(i for i, s in enumerate(seqs) if not isinstance(s, str))
            raise BiolmError(f"sequence {bad}: expected a string, got {type(seqs[bad]).__name__}") from None
        # Fast path, the common case: plain ASCII letters, no whitespace to strip.
        if joined.isascii():
            raw = joined.encode("ascii")
            if not raw.translate(None, self._valid_bytes):
                return self._read_aliases(raw.upper()), np.fromiter(map(len, seqs), dtype=np.int64, count=len(seqs))
        cleaned = [s.strip() for s in seqs]
        if invalid == "error":
            for index, (original, seq) in enumerate(zip(seqs, cleaned)):
                match = self._invalid_char.search(seq)
                if match:
                    leading = len(original) - len(original.lstrip())
                    raise InvalidSequenceError(index, leading + match.start(), match.group(), accepted=self.accepted, unknown=self.unknown)
        else:
            cleaned = [self._invalid_char.sub(self.unknown, s) for s in cleaned]
        lengths = np.fromiter(map(len, cleaned), dtype=np.int64, count=len(cleaned))
        return self._read_aliases("".join(cleaned).encode("ascii").upper()), lengths

    def _read_aliases(self, upper: bytes) -> bytes:
        """Upper-case bytes with every alias replaced by its letter (U -> T for DNA)."""
        return upper if self._alias_table is None else upper.translate(self._alias_table)

    def normalize(self, seqs: Sequence[str], invalid: str = "error") -> list[str]:
        """Upper-case, strip surrounding whitespace, and check (or repair) the letters.

        Args:
            seqs: sequence strings; the letters are accepted in any case.
            invalid: ``"error"`` raises on the first other character; ``"n"`` replaces each one by
                the unknown letter.

        Returns:
            The normalised strings, one per input.

        Raises:
            InvalidSequenceError: ``invalid="error"`` and a character is outside the alphabet; it carries
                the sequence index, the 0-based position in the string as given, and the character.
            BiolmError: ``invalid`` is not a known policy, or an item is not a string.
        """
        joined, lengths = self.normalize_joined(seqs, invalid)
        text = joined.decode("ascii")
        ends = np.cumsum(lengths).tolist()
        starts = [0, *ends[:-1]]
        return [text[a:b] for a, b in zip(starts, ends)]

    def reverse_complement(self, seq: str) -> str:
        """Reverse complement (case kept; characters outside the complement table kept as they are).

        Args:
            seq: a sequence string.

        Returns:
            The reverse complement, same length.

        Raises:
            BiolmError: the alphabet has no complement.
        """
        if self._complement_table is None:
            raise BiolmError(f"the {self.name} alphabet has no complement; reverse complements apply to nucleotides")
        return seq.translate(self._complement_table)[::-1]

    def __repr__(self) -> str:
        return f"Alphabet({self.name}: {', '.join(self.letters)}; unknown {self.unknown})"


DNA = Alphabet(
    "DNA",
    letters="ACGTN",
    unknown="N",
    complement=dict(zip("ACGTURYKMSWBDHVN", "TGCAAYRMKSWVHDBN")),
    aliases={"U": "T"},  # RNA input is read as its DNA equivalent
    accepted="A, C, G, T, N in any case, U read as T",
)
NUCLEOTIDES = DNA.letters
# The ESM amino-acid letters: the 20 standard residues, then X (any) and the rare or ambiguous
# B (D/N), U (selenocysteine), Z (E/Q), O (pyrrolysine), as in fair-esm's and transformers' ESM vocabulary.
PROTEIN = Alphabet(
    "protein",
    letters="ACDEFGHIKLMNPQRSTVWYXBUZO",
    unknown="X",
    accepted="the 20 amino acids and X, B, U, Z, O in any case",
)
ALPHABETS = {alphabet.name: alphabet for alphabet in (DNA, PROTEIN)}


@dataclasses.dataclass(frozen=True)
class SpecialTokens:
    """The special-token string of each role, ``None`` where a tokenizer has none.

    Attributes:
        pad: fills batches to one length.
        unk: stands for input the vocabulary cannot hold (e.g. a k-mer with an N).
        cls: opens every sequence (with ``add_special_tokens``).
        sep: closes every sequence (with ``add_special_tokens``).
        mask: the masked-LM corruption token.
        bos: begin-of-sequence (tokenizers that use it instead of, or besides, ``cls``).
        eos: end-of-sequence.
    """

    pad: str | None = "[PAD]"
    unk: str | None = "[UNK]"
    cls: str | None = "[CLS]"
    sep: str | None = "[SEP]"
    mask: str | None = "[MASK]"
    bos: str | None = None
    eos: str | None = None

    @classmethod
    def coerce(cls, value: SpecialTokens | Mapping[str, str | None] | None, default: SpecialTokens) -> SpecialTokens:
        """``value`` as `SpecialTokens`: ``None`` gives ``default``; a mapping overrides ``default``'s roles.

        Raises:
            BiolmError: a key is not a role, or a token is not a non-empty string.
        """
        if value is None:
            return default
        if isinstance(value, SpecialTokens):
            return value
        unknown = [key for key in value if key not in ROLES]
        if unknown:
            raise BiolmError(f"tokenizer.special_tokens: unknown role(s) {unknown} (accepted: {', '.join(ROLES)})")
        bad = {key: tok for key, tok in value.items() if tok is not None and (not isinstance(tok, str) or not tok)}
        if bad:
            raise BiolmError(f"tokenizer.special_tokens: {bad} (accepted: a non-empty string per role, or null)")
        return dataclasses.replace(default, **dict(value))

    def by_role(self) -> dict[str, str]:
        """Role -> token string for the roles this tokenizer has, in `ROLES` order."""
        return {role: getattr(self, role) for role in ROLES if getattr(self, role) is not None}

    def tokens(self) -> tuple[str, ...]:
        """The distinct special-token strings in `ROLES` order (the id order of biolm's own vocabularies)."""
        return tuple(dict.fromkeys(self.by_role().values()))

    def as_config(self) -> dict[str, str | None]:
        """Every role -> token (or ``None``), as saved in ``biolm_tokenizer.json``."""
        return dataclasses.asdict(self)


BERT_SPECIAL_TOKENS = SpecialTokens()
SPECIAL_TOKENS: tuple[str, ...] = BERT_SPECIAL_TOKENS.tokens()


def reverse_complement(seq: str) -> str:
    """Reverse complement of a nucleotide string (IUPAC codes complemented, case kept).

    Args:
        seq: nucleotides; characters outside the IUPAC alphabet are kept as they are.

    Returns:
        The reverse complement, same length.
    """
    return DNA.reverse_complement(seq)


def normalize_sequences(seqs: Sequence[str], invalid: str = "error") -> list[str]:
    """`Alphabet.normalize` for the `DNA` alphabet: upper-case strings over ``A, C, G, T, N``.

    Args:
        seqs: nucleotide strings; ``A, C, G, T, N`` are accepted in any case.
        invalid: ``"error"`` raises on the first other character; ``"n"`` replaces each one by ``N``.

    Returns:
        The normalised strings, one per input.

    Raises:
        InvalidSequenceError: ``invalid="error"`` and a character is outside the alphabet.
        BiolmError: ``invalid`` is not a known policy, or an item is not a string.
    """
    return DNA.normalize(seqs, invalid)

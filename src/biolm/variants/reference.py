"""Reference genome access for variants: contig aliasing, window FASTAs, REF checks.

In: a FASTA file. Plain (uncompressed) files are read with pyfaidx (random access through a
``.fai`` index written beside the file); gzip/bgzip files, and plain files pyfaidx cannot index
(ragged line lengths), are read into memory with `biolm.data.genome.load_genome` (pyfaidx needs
Biopython for bgzip and cannot read plain gzip).
Out: `Reference.fetch(chrom, start, end)` -> upper-case ``str`` for 0-based half-open genome
coordinates.

Contig names: ``chr17``, ``17`` and ``CHR17`` are one contig (``chrM``/``MT`` too), and
``aliases={"ref_brca1": "17"}`` adds more. A FASTA record named like a region,
``chr17:42425000-43600000`` (1-based inclusive, samtools style), holds that window of the contig:
``fetch("17", p - 1, p)`` reads the base at genome position ``p`` from it.
"""

from __future__ import annotations

import logging
import re
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from biolm.errors import BiolmError

log = logging.getLogger(__name__)

_REGION_NAME = re.compile(r"^(?P<contig>.+):(?P<start>[\d,]+)-(?P<end>[\d,]+)$")
REF_MISMATCH_POLICIES = ("error", "skip")


def canonical_contig(name: str) -> str:
    """One spelling per contig: ``chr17``/``Chr17``/``17`` -> ``17``, ``chrM``/``M`` -> ``MT``."""
    bare = name[3:] if name.lower().startswith("chr") and len(name) > 3 else name
    return "MT" if bare.upper() in ("M", "MT") else bare


def parse_region(text: str, field_name: str = "region") -> tuple[str, int, int]:
    """``chr17:43044295-43125483`` (1-based inclusive) -> (contig, start0, end0) half-open."""
    match = _REGION_NAME.match(str(text).strip())
    if not match:
        raise BiolmError(f"{field_name}: {text!r} is not a region; write CONTIG:START-END, e.g. chr17:43044295-43125483 (1-based, inclusive)")
    start, end = int(match["start"].replace(",", "")), int(match["end"].replace(",", ""))
    if start < 1 or end < start:
        raise BiolmError(f"{field_name}: {text!r} needs 1 <= START <= END")
    return match["contig"], start - 1, end


@dataclass(frozen=True)
class _Piece:
    record: str  # FASTA record name
    offset: int  # genome coordinate (0-based) of the record's first base
    length: int


class Reference:
    """A reference genome, or windows of one, addressed by genome coordinates.

    Args:
        path: FASTA file (plain: pyfaidx; ``.gz``: read into memory).
        aliases: extra contig names, ``{name_in_vcf_or_fasta: canonical_name}``.
    """

    def __init__(self, path: str | Path, aliases: Mapping[str, str] | None = None, field_name: str = "ref"):
        self.path = Path(path)
        self.field_name = field_name
        self.aliases = {str(k): str(v) for k, v in (aliases or {}).items()}
        if not self.path.is_file():
            raise BiolmError(f"{field_name}: reference FASTA not found: {self.path}")
        with open(self.path, "rb") as handle:
            compressed = handle.read(2) == b"\x1f\x8b"
        self._fasta = None if compressed else self._index()
        if self._fasta is None:
            from biolm.data.genome import load_genome

            try:
                self._memory = load_genome([str(self.path)], field_name)  # names the line at fault in a broken file
            except zlib.error as err:  # a corrupt gzip stream (load_genome reports truncation itself)
                raise BiolmError(f"{field_name}: {self.path} is not a valid gzip file ({err})") from None
            lengths = {name: len(seq) for name, seq in self._memory.items()}
        else:
            self._memory = None
            lengths = {name: len(self._fasta[name]) for name in self._fasta.keys()}
        if not lengths:
            raise BiolmError(f"{field_name}: {self.path} holds no FASTA record ('>name' line followed by bases)")
        self._pieces: dict[str, list[_Piece]] = {}
        for name, length in lengths.items():
            match = _REGION_NAME.match(name)
            offset = int(match["start"].replace(",", "")) - 1 if match else -1
            contig, offset = (match["contig"], offset) if offset >= 0 else (name, 0)  # ``chr1:0-5`` is a plain name
            self._pieces.setdefault(self.canonical(contig), []).append(_Piece(name, offset, length))

    def _index(self):
        """A pyfaidx index of a plain FASTA, or None when pyfaidx cannot index it (then it is read into memory)."""
        import pyfaidx

        try:
            return pyfaidx.Fasta(str(self.path), sequence_always_upper=True, as_raw=True)
        except (pyfaidx.FastaIndexingError, pyfaidx.UnsupportedCompressionFormat, ImportError, RuntimeError, ValueError, OSError) as err:
            # Ragged line lengths, a name seen twice, a ``.gz`` name on a plain file: the in-memory reader
            # takes ragged lines and names the line of a real fault.
            log.debug("pyfaidx cannot index %s (%s); reading it into memory", self.path, err)
            return None

    def canonical(self, contig: str) -> str:
        """The contig's canonical name (aliases first, then the chr-prefix rule)."""
        return canonical_contig(self.aliases.get(contig, contig))

    def describe(self) -> str:
        """Contigs and spans held, for messages."""
        return ", ".join(
            f"{key}:{p.offset + 1:,}-{p.offset + p.length:,}" for key, pieces in self._pieces.items() for p in pieces
        )

    def covers(self, contig: str, start: int, end: int) -> bool:
        """Whether ``[start, end)`` of ``contig`` lies inside one FASTA record."""
        return self._piece(contig, start, end) is not None

    def record_bounds(self, contig: str, start: int, end: int) -> tuple[int, int] | None:
        """Genome span ``[first, last)`` of the FASTA record holding ``[start, end)`` of ``contig``, or None."""
        piece = self._piece(contig, start, end)
        return None if piece is None else (piece.offset, piece.offset + piece.length)

    def _piece(self, contig: str, start: int, end: int) -> _Piece | None:
        for piece in self._pieces.get(self.canonical(contig), []):
            if piece.offset <= start and end <= piece.offset + piece.length:
                return piece
        return None

    def fetch(self, contig: str, start: int, end: int) -> str:
        """Upper-case bases of ``[start, end)`` (0-based genome coordinates) of ``contig``.

        Raises:
            BiolmError: the contig is absent or the span is outside every record.
        """
        piece = self._piece(contig, start, end)
        if piece is None:
            if self.canonical(contig) not in self._pieces:
                raise BiolmError(
                    f"{self.field_name}: contig {contig!r} is not in {self.path} (it holds {self.describe()}); "
                    "chrN and N are matched, other names need an alias"
                )
            raise BiolmError(
                f"{self.field_name}: {contig}:{start + 1:,}-{end:,} is outside {self.path} (it holds {self.describe()})"
            )
        lo, hi = start - piece.offset, end - piece.offset
        if self._fasta is not None:
            return str(self._fasta[piece.record][lo:hi])
        return self._memory[piece.record][lo:hi].tobytes().decode("ascii")

    def check_alleles(self, variants: pd.DataFrame, on_mismatch: str = "error", where: str = "variants") -> np.ndarray:
        """Which variants' REF equals the reference (and lies inside it).

        Args:
            variants: ``chrom, pos`` (1-based), ``ref``; an optional ``line`` column names records in errors.
            on_mismatch: ``error`` raises at the first mismatch; ``skip`` returns False for it (counted in the log).

        Returns:
            ``(n,)`` bool mask of usable variants.

        Raises:
            BiolmError: a REF mismatch or a variant outside the reference, with ``on_mismatch="error"``.
        """
        if on_mismatch not in REF_MISMATCH_POLICIES:
            raise BiolmError(f"on_ref_mismatch: {on_mismatch!r} is not accepted (accepted: {', '.join(REF_MISMATCH_POLICIES)})")
        ok = np.ones(len(variants), dtype=bool)
        outside = mismatch = 0
        lines = variants["line"].tolist() if "line" in variants else list(range(1, len(variants) + 1))
        for i, (chrom, pos, ref, line) in enumerate(zip(variants["chrom"], variants["pos"], variants["ref"], lines)):
            start = int(pos) - 1
            if not self.covers(str(chrom), start, start + len(ref)):
                problem = f"{where} record {line}: {chrom}:{pos} is outside the reference {self.path} (it holds {self.describe()})"
                outside += 1
            else:
                found = self.fetch(str(chrom), start, start + len(ref))
                if found == str(ref).upper():
                    continue
                problem = f"{where} record {line}: REF {ref} at {chrom}:{pos} does not match the reference ({found}); wrong build or contig?"
                mismatch += 1
            if on_mismatch == "error":
                raise BiolmError(problem + " (on_ref_mismatch=skip skips such records)")
            ok[i] = False
        if outside or mismatch:
            log.warning("skipped %d variants whose REF does not match the reference and %d outside it", mismatch, outside)
        return ok

"""Sequences with variants applied: per-sample region sequences and centred ref/alt windows.

In: a `Reference`, variants (``chrom, pos`` 1-based, ``ref, alt``) or a VCF with genotypes.
Out: plain ``str`` sequences (upper-case), on the plus strand or reverse-complemented.

- `apply_alleles(seq, start, alleles)`: one haplotype of ``seq`` (genome ``[start, start+len)``)
  with alleles ``(pos, ref, alt)`` applied; overlapping alleles after the first are skipped.
- `sample_sequences`: one sequence per sample (``consensus``: every ALT the sample carries) or
  two per sample (``haplotype``: alleles of GT slot 1 and slot 2).
- `variant_windows`: ``window_bp`` bases of reference and of alternative sequence per variant,
  the variant's first base at offset ``window_bp // 2`` on the plus strand; the alternative
  window reads further right after a deletion (and less after an insertion), so both have
  exactly ``window_bp`` bases. On the minus strand both are reverse-complemented and the offset
  mirrors: the variant's bases sit at ``[window_bp - offset - len, window_bp - offset)``.
  A variant on a contig (FASTA record) shorter than ``window_bp`` (plus a deletion's read-ahead)
  gets windows as long as the contig allows (`window_width`); ``VariantWindows.width`` holds the
  length used per variant.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from biolm.errors import BiolmError
from biolm.tokenizers.alphabet import reverse_complement
from biolm.variants.reference import Reference, parse_region
from biolm.variants.vcf import read_genotypes

log = logging.getLogger(__name__)

STRANDS = ("+", "-")
SEQUENCE_MODES = ("haplotype", "consensus")


def _check_strand(strand: str) -> None:
    if strand not in STRANDS:
        raise BiolmError(f"strand: {strand!r} is not accepted (accepted: + or -)")


def apply_alleles(seq: str, start: int, alleles: Iterable[tuple[int, str, str]]) -> tuple[str, int]:
    """Apply alleles to a reference stretch.

    Args:
        seq: reference bases of genome ``[start, start + len(seq))`` (0-based).
        start: genome coordinate of ``seq[0]``.
        alleles: ``(pos, ref, alt)`` with 1-based ``pos``; applied left to right.

    Returns:
        (sequence, skipped): the edited sequence and how many alleles were skipped because they
        overlap an earlier one or reach outside ``seq``.

    Raises:
        BiolmError: an allele's REF differs from ``seq``.
    """
    pieces, cursor, skipped = [], 0, 0
    for pos, ref, alt in sorted(alleles, key=lambda a: a[0]):
        lo = int(pos) - 1 - start
        hi = lo + len(ref)
        if lo < cursor or hi > len(seq):
            skipped += 1
            continue
        if seq[lo:hi] != ref.upper():
            raise BiolmError(f"allele {pos} {ref}>{alt}: REF does not match the reference ({seq[lo:hi]})")
        pieces += [seq[cursor:lo], alt.upper()]
        cursor = hi
    pieces.append(seq[cursor:])
    return "".join(pieces), skipped


def sample_sequences(
    vcf: str,
    reference: Reference,
    region: str,
    mode: str = "haplotype",
    strand: str = "+",
    samples: list[str] | None = None,
    on_ref_mismatch: str = "error",
) -> pd.DataFrame:
    """One sequence per sample (``consensus``) or per haplotype (``haplotype``) over a region.

    Missing genotypes read as the reference allele. Records outside the region, or reaching out of
    it, are left out.

    Returns:
        ``id`` (``sample`` or ``sample_h1``/``sample_h2``), ``sample``, ``haplotype`` (1, 2 or 0 for
        consensus), ``sequence``.
    """
    if mode not in SEQUENCE_MODES:
        raise BiolmError(f"mode: {mode!r} is not accepted (accepted: {', '.join(SEQUENCE_MODES)})")
    _check_strand(strand)
    contig, start, end = parse_region(region)
    ref_seq = reference.fetch(contig, start, end)
    names, records, genotypes = read_genotypes(vcf, samples)  # raises for a sites-only VCF
    canonical = reference.canonical(contig)
    inside = np.array(
        [reference.canonical(c) == canonical and start < p and p - 1 + len(r) <= end for c, p, r in zip(records.chrom, records.pos, records.ref)],
        dtype=bool,
    )
    records, genotypes = records[inside].reset_index(drop=True), genotypes[inside]
    usable = reference.check_alleles(records, on_ref_mismatch, where=str(vcf))
    records, genotypes = records[usable].reset_index(drop=True), genotypes[usable]
    log.info("%d records of %s inside %s; %d samples", len(records), vcf, region, len(names))
    rows, total_skipped = [], 0
    for j, name in enumerate(names):
        if mode == "haplotype":
            slots = [(1, genotypes[:, j, 0]), (2, genotypes[:, j, 1])]
        else:
            calls = genotypes[:, j]  # (records, 2)
            carried = np.where(calls[:, 0] > 0, calls[:, 0], np.maximum(calls[:, 1], 0))
            slots = [(0, carried)]
        for haplotype, allele_index in slots:
            alleles = [
                (pos, ref, alts[a - 1])
                for pos, ref, alts, a in zip(records.pos, records.ref, records.alts, allele_index)
                if a > 0 and not alts[a - 1].startswith("<") and alts[a - 1] not in ("*", ".")
            ]
            seq, skipped = apply_alleles(ref_seq, start, alleles)
            total_skipped += skipped
            if strand == "-":
                seq = reverse_complement(seq)
            ident = name if haplotype == 0 else f"{name}_h{haplotype}"
            rows.append((ident, name, haplotype, seq))
    if total_skipped:
        log.warning("%d alleles overlapped an earlier allele of the same haplotype and were not applied", total_skipped)
    return pd.DataFrame(rows, columns=["id", "sample", "haplotype", "sequence"])


@dataclass
class VariantWindows:
    """Reference and alternative windows of a batch of variants (each pair ``width[i]`` long).

    Attributes:
        ref: reference windows.
        alt: alternative windows.
        offset: ``(n,)`` 0-based start of the variant's bases in both windows (after any reverse complement).
        ref_len: ``(n,)`` REF lengths; ``alt_len``: ALT lengths.
        width: ``(n,)`` bases per window: ``window_bp``, or less on a contig shorter than that.
    """

    ref: list[str]
    alt: list[str]
    offset: np.ndarray
    ref_len: np.ndarray
    alt_len: np.ndarray
    width: np.ndarray


def window_width(reference: Reference, chrom: str, pos: int, ref: str, alt: str, window_bp: int) -> int:
    """Bases in a variant's windows: ``window_bp``, or what the contig holding it allows; 0 when it cannot hold them.

    The windows need ``width`` bases of context plus, for a deletion, ``len(ref) - len(alt)`` more
    (the alternative window reads further right), all inside one FASTA record. On a shorter record
    the width shrinks to fit; it must still hold the variant's alleles (and be at least 2).

    Raises:
        BiolmError: ``window_bp`` is shorter than the variant's alleles (a window too short everywhere).
    """
    if window_bp < 2:
        raise BiolmError(f"window_bp: {window_bp} bp is too short (at least 2)")
    if len(alt) > window_bp or len(ref) > window_bp:
        raise BiolmError(f"window_bp: {window_bp} bp is shorter than the variant {chrom}:{pos} {ref}>{alt}; raise window_bp=")
    start = int(pos) - 1
    bounds = reference.record_bounds(chrom, start, start + len(ref))
    if bounds is None:
        return 0
    extra = max(len(ref) - len(alt), 0)
    width = min(window_bp, bounds[1] - bounds[0] - extra)
    return width if width >= max(len(ref), len(alt), 2) else 0


def variant_windows(variants: pd.DataFrame, reference: Reference, window_bp: int, strand: str = "+") -> VariantWindows:
    """Centred reference and alternative windows of ``window_bp`` bases (see module docstring).

    Near the ends of a contig the window is shifted inward, so the offset may differ from
    ``window_bp // 2``; on a contig shorter than the window it is the whole contig (`window_width`).

    Raises:
        BiolmError: a variant outside the reference, or on a contig too short to hold its windows.
    """
    _check_strand(strand)
    refs, alts, offsets, widths = [], [], [], []
    for chrom, pos, ref, alt in zip(variants["chrom"], variants["pos"], variants["ref"], variants["alt"]):
        chrom, start, ref, alt = str(chrom), int(pos) - 1, str(ref).upper(), str(alt).upper()
        width = window_width(reference, chrom, start + 1, ref, alt, window_bp)
        if width == 0:
            bounds = reference.record_bounds(chrom, start, start + len(ref))
            if bounds is None:
                reference.fetch(chrom, start, start + len(ref))  # raises: contig absent or variant outside it
            raise BiolmError(
                f"window_bp: {chrom}:{pos} {ref}>{alt}: its contig in {reference.path} holds only {bounds[1] - bounds[0]} bp, "
                "too few for the variant's ref and alt windows"
            )
        first, last = reference.record_bounds(chrom, start, start + len(ref))
        extra = max(len(ref) - len(alt), 0)
        lo = start - width // 2
        hi = lo + width + extra
        shift = max(first - lo, 0) - max(hi - last, 0)  # width + extra <= last - first: one side at most
        lo, hi = lo + shift, hi + shift
        left = start - lo
        context = reference.fetch(chrom, lo, hi)
        ref_window = context[:width]
        alt_window = (context[:left] + alt + context[left + len(ref) :])[:width]  # >= width bases before the cut
        if strand == "-":
            ref_window, alt_window = reverse_complement(ref_window), reverse_complement(alt_window)
        refs.append(ref_window)
        alts.append(alt_window)
        offsets.append(left)
        widths.append(width)
    ref_len = np.array([len(r) for r in variants["ref"]], dtype=np.int64)
    alt_len = np.array([len(a) for a in variants["alt"]], dtype=np.int64)
    offset = np.array(offsets, dtype=np.int64)
    width = np.array(widths, dtype=np.int64)
    if strand == "-":
        # Only equal-length (substitution) offsets are meaningful after the flip; indels keep their ref span.
        offset = width - offset - ref_len
    return VariantWindows(refs, alts, offset, ref_len, alt_len, width)

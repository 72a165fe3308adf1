"""VCF reading, multi-allelic splitting, record/genotype filters and sample QC (cyvcf2).

In: a VCF or BCF file (plain, gzip or bgzip). Out:

- `read_variants` -> DataFrame, one row per (record, ALT allele): ``chrom, pos`` (1-based),
  ``id, ref, alt, allele`` (1-based index of the ALT in its record), ``qual, filter, dp, line``
  (1-based number of the data record, for messages). Symbolic (``<DEL>``), breakend and ``*`` alleles,
  and indels longer than ``max_indel_bp`` are dropped and counted.
- `read_genotypes` -> ``(n_records, n_samples, 2)`` int8 allele indices (-1 = missing) for the
  records of `read_variants`' input, with per-genotype FORMAT/DP when present.
- `filter_vcf` writes the records that pass FILTER/QUAL/INFO-DP/call-rate filters, restricted to
  the samples that pass missingness and heterozygosity QC, and a JSON report of what was dropped
  and why.

htslib (under cyvcf2) crashes the process on some malformed data lines (a non-numeric POS), so
every text VCF is first checked line by line here; that check also gives errors a line number.
"""

from __future__ import annotations

import gzip
import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from biolm.data.io import atomic_path
from biolm.errors import BiolmError

log = logging.getLogger(__name__)

VARIANT_COLUMNS = ["chrom", "pos", "id", "ref", "alt", "allele", "qual", "filter", "dp", "line"]
_BASES = set("ACGTNacgtn")


def _open_text(path: Path):
    with open(path, "rb") as handle:
        magic = handle.read(2)
    if magic == b"\x1f\x8b":
        return gzip.open(path, "rt", errors="replace")
    return open(path, errors="replace")


def check_vcf_text(path: str | Path, field_name: str = "vcf") -> int:
    """Check a text VCF's layout before htslib reads it; return its number of data lines.

    Raises:
        BiolmError: missing file, no ``#CHROM`` header, a data line with fewer than 8 columns,
            a non-integer POS, or an empty REF/ALT, naming the file and line.
    """
    path = Path(path)
    if not path.is_file():
        raise BiolmError(f"{field_name}: file not found: {path}")
    if path.suffix == ".bcf":
        return -1
    seen_header = False
    n_data = 0
    try:
        with _open_text(path) as handle:
            for number, line in enumerate(handle, start=1):
                if line.startswith("##"):
                    continue
                if line.startswith("#CHROM"):
                    seen_header = True
                    continue
                if not line.strip():
                    continue
                where = f"{field_name}: {path} line {number}"
                if not seen_header:
                    raise BiolmError(f"{where}: data before the '#CHROM POS ID REF ALT QUAL FILTER INFO' header line (is this a VCF?)")
                cols = line.rstrip("\n").split("\t")
                if len(cols) < 8:
                    raise BiolmError(f"{where}: {len(cols)} tab-separated columns; a VCF record needs at least 8 (CHROM POS ID REF ALT QUAL FILTER INFO)")
                if not cols[1].isdigit() or int(cols[1]) < 1:
                    raise BiolmError(f"{where}: POS {cols[1]!r} is not a positive integer")
                if not cols[3] or not cols[4]:
                    raise BiolmError(f"{where}: empty REF or ALT")
                n_data += 1
    except (OSError, EOFError, UnicodeDecodeError) as err:
        raise BiolmError(f"{field_name}: cannot read {path}: {err}") from None
    if not seen_header:
        raise BiolmError(f"{field_name}: {path} has no '#CHROM POS ID REF ALT QUAL FILTER INFO' header line (is this a VCF?)")
    return n_data


def open_vcf(path: str | Path, field_name: str = "vcf", samples: list[str] | str | None = None):
    """A checked `cyvcf2.VCF` reader (errors as `BiolmError`)."""
    from cyvcf2 import VCF

    check_vcf_text(path, field_name)
    try:
        return VCF(str(path), samples=samples, strict_gt=False)
    except OSError as err:
        raise BiolmError(f"{field_name}: {path} is not a readable VCF/BCF ({err})") from None


def _records(reader, path, field_name: str):
    """Iterate records, turning htslib parse failures into a `BiolmError` with the record number."""
    index = 0
    iterator = iter(reader)
    while True:
        try:
            record = next(iterator)
        except StopIteration:
            return
        except Exception as err:  # cyvcf2 raises a bare Exception on a bad record
            raise BiolmError(f"{field_name}: {path}: cannot parse data record {index + 1}: {err}") from None
        index += 1
        yield record


def _allele_kind(ref: str, alt: str, max_indel_bp: int) -> str | None:
    """None for a usable SNV/MNV/small indel, else the reason it is skipped."""
    if alt.startswith("<") or "[" in alt or "]" in alt or alt in ("*", "."):
        return "symbolic_or_missing_alt"
    if not set(ref) <= _BASES or not set(alt) <= _BASES:
        return "non_nucleotide_allele"
    if abs(len(ref) - len(alt)) > max_indel_bp or (len(ref) != len(alt) and max(len(ref), len(alt)) > max_indel_bp + 1):
        return "indel_too_long"
    return None


def read_variants(path: str | Path, max_indel_bp: int = 50, field_name: str = "vcf") -> tuple[pd.DataFrame, Counter]:
    """Read a VCF into one row per ALT allele (multi-allelic records split).

    Args:
        path: VCF/BCF file.
        max_indel_bp: longest insertion/deletion kept (longer ones are skipped and counted).
        field_name: config key naming the file, for messages.

    Returns:
        (variants, skipped): the table (see module docstring) and counts of skipped alleles by reason.
    """
    reader = open_vcf(path, field_name, samples="-")  # "-": skip genotypes (faster)
    rows: list[tuple] = []
    skipped: Counter = Counter()
    for number, record in enumerate(_records(reader, path, field_name), start=1):
        depth = record.INFO.get("DP")
        depth = float(depth) if isinstance(depth, (int, float)) else np.nan
        qual = np.nan if record.QUAL is None else float(record.QUAL)
        status = record.FILTER or "PASS"
        for allele, alt in enumerate(record.ALT, start=1):
            reason = _allele_kind(record.REF, alt, max_indel_bp)
            if reason:
                skipped[reason] += 1
                continue
            rows.append((record.CHROM, int(record.POS), record.ID or ".", record.REF.upper(), alt.upper(), allele, qual, status, depth, number))
    reader.close()
    frame = pd.DataFrame(rows, columns=VARIANT_COLUMNS)
    frame.attrs["source"] = str(path)
    return frame, skipped


@dataclass
class FilterReport:
    """What `filter_vcf` kept and dropped, and why."""

    input_records: int = 0
    kept_records: int = 0
    dropped_records: Counter = field(default_factory=Counter)
    input_samples: int = 0
    kept_samples: list[str] = field(default_factory=list)
    dropped_samples: dict[str, str] = field(default_factory=dict)
    settings: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "records": {"input": self.input_records, "kept": self.kept_records, "dropped": dict(self.dropped_records)},
            "samples": {"input": self.input_samples, "kept": self.kept_samples, "dropped": self.dropped_samples},
            "settings": self.settings,
        }


def _record_reason(record, min_qual: float | None, min_dp: float | None, require_pass: bool) -> str | None:
    """Why a record fails the record-level filters (first failing filter), or None."""
    if require_pass and record.FILTER is not None:
        return "filter_not_pass"
    if min_qual is not None:
        if record.QUAL is None:
            return "qual_missing"
        if record.QUAL < min_qual:
            return "qual_below_min"
    if min_dp is not None:
        depth = record.INFO.get("DP")
        if depth is None:
            return "info_dp_missing"
        if depth < min_dp:
            return "info_dp_below_min"
    return None


def _called(record, n_samples: int, min_sample_dp: float | None) -> tuple[np.ndarray, np.ndarray]:
    """Per sample: genotype called (and FORMAT/DP >= min_sample_dp when asked), and heterozygous."""
    if n_samples == 0:
        return np.zeros(0, bool), np.zeros(0, bool)
    types = record.gt_types  # 0 hom-ref, 1 het, 2 unknown, 3 hom-alt
    called = types != 2
    if min_sample_dp is not None:
        depth = record.format("DP")
        if depth is None:
            called = np.zeros(n_samples, bool)
        else:
            depth = depth[:, 0].astype(float)
            called &= (depth >= min_sample_dp) & (depth > -2**31 + 1)
    return called, types == 1


def filter_vcf(
    vcf: str | Path,
    output: str | Path,
    min_qual: float | None = None,
    min_dp: float | None = None,
    require_pass: bool = True,
    min_sample_dp: float | None = None,
    min_call_rate: float = 0.0,
    max_sample_missing: float = 1.0,
    max_het_z: float | None = None,
    report: str | Path | None = None,
) -> FilterReport:
    """Filter a VCF by FILTER/QUAL/INFO-DP/FORMAT-DP and drop samples that fail QC.

    Records: FILTER must be PASS or ``.`` (``require_pass``), QUAL >= ``min_qual``, INFO/DP >=
    ``min_dp`` (a missing value fails a set threshold), and the share of samples with a called
    genotype (FORMAT/DP >= ``min_sample_dp`` when set) >= ``min_call_rate``. Samples (over the
    records that pass): missing-genotype share <= ``max_sample_missing``; heterozygous share within
    ``max_het_z`` standard deviations of the samples' mean (off when None or fewer than 3 samples).

    Args:
        vcf: input VCF/BCF.
        output: output VCF (``.vcf.gz`` is bgzip-compressed), written atomically.
        report: JSON report path (default ``<output>.qc.json``).

    Returns:
        The `FilterReport` (also written as JSON).
    """
    reader = open_vcf(vcf, "in")
    samples = list(reader.samples)
    result = FilterReport(input_samples=len(samples))
    result.settings = {
        "min_qual": min_qual, "min_dp": min_dp, "require_pass": require_pass, "min_sample_dp": min_sample_dp,
        "min_call_rate": min_call_rate, "max_sample_missing": max_sample_missing, "max_het_z": max_het_z,
    }
    keep: list[bool] = []
    called_rows, het_rows = [], []
    for record in _records(reader, vcf, "in"):
        result.input_records += 1
        reason = _record_reason(record, min_qual, min_dp, require_pass)
        called, het = _called(record, len(samples), min_sample_dp)
        if reason is None and samples and called.mean() < min_call_rate:
            reason = "call_rate_below_min"
        if reason:
            result.dropped_records[reason] += 1
        else:
            called_rows.append(called)
            het_rows.append(het & called)
        keep.append(reason is None)
    reader.close()
    kept_samples = _sample_qc(samples, called_rows, het_rows, max_sample_missing, max_het_z, result.dropped_samples)
    result.kept_samples = kept_samples
    result.kept_records = int(sum(keep))
    _write_subset(vcf, output, keep, kept_samples if len(kept_samples) != len(samples) else None)
    report_path = Path(report) if report else Path(f"{output}.qc.json")
    with atomic_path(report_path) as tmp:
        tmp.write_text(json.dumps(result.to_dict(), indent=2) + "\n")
    log.info(
        "%d of %d records kept (dropped: %s); %d of %d samples kept; report %s",
        result.kept_records, result.input_records, dict(result.dropped_records) or "none",
        len(kept_samples), len(samples), report_path,
    )
    return result


def _sample_qc(samples, called_rows, het_rows, max_missing: float, max_het_z: float | None, dropped: dict) -> list[str]:
    """Samples passing missingness then heterozygosity QC; ``dropped`` gets the reasons."""
    if not samples:
        return []
    if not called_rows:
        return list(samples)
    called = np.vstack(called_rows)  # (records, samples)
    het = np.vstack(het_rows)
    missing = 1.0 - called.mean(axis=0)
    for name, share in zip(samples, missing):
        if share > max_missing:
            dropped[name] = f"missing genotypes {share:.3f} > max_sample_missing {max_missing}"
    if max_het_z is not None:
        alive = np.array([name not in dropped for name in samples])
        het_rate = het.sum(axis=0) / np.maximum(called.sum(axis=0), 1)
        if alive.sum() >= 3:
            mean, sd = het_rate[alive].mean(), het_rate[alive].std()
            for name, rate, ok in zip(samples, het_rate, alive):
                z = 0.0 if sd == 0 else (rate - mean) / sd
                if ok and abs(z) > max_het_z:
                    dropped[name] = f"heterozygosity {rate:.3f} is {z:+.2f} SD from the mean {mean:.3f} (max_het_z {max_het_z})"
    return [name for name in samples if name not in dropped]


def _write_subset(vcf, output, keep: list[bool], samples: list[str] | None) -> None:
    """Write the kept records (and samples) with cyvcf2's Writer, atomically."""
    from cyvcf2 import Writer

    reader = open_vcf(vcf, "in", samples=samples)
    name = str(output)
    mode = "wz" if name.endswith(".gz") else "wb" if name.endswith(".bcf") else "w"
    with atomic_path(output) as tmp:
        writer = Writer(str(tmp), reader, mode=mode)
        for record, ok in zip(_records(reader, vcf, "in"), keep):
            if ok:
                writer.write_record(record)
        writer.close()
    reader.close()


def read_genotypes(path: str | Path, samples: list[str] | None = None, field_name: str = "vcf") -> tuple[list[str], pd.DataFrame, np.ndarray]:
    """Records and their genotypes, for applying each sample's alleles.

    Returns:
        (samples, records, genotypes): ``records`` has ``chrom, pos, ref, alts`` (list of ALT
        strings), ``line``; ``genotypes`` is ``(n_records, n_samples, 2)`` int16 allele indices
        into ``[REF, *ALTS]`` (-1 missing; haploid calls repeat their allele).
    """
    reader = open_vcf(path, field_name)
    if samples:
        names = list(reader.samples)
        absent = sorted(set(samples) - set(names))
        if absent:
            raise BiolmError(f"samples: {', '.join(absent)} not in {path} (it has {', '.join(names[:10])}{', ...' if len(names) > 10 else ''})")
        reader.close()
        reader = open_vcf(path, field_name, samples=samples)
    names = list(reader.samples)
    rows, calls = [], []
    for number, record in enumerate(_records(reader, path, field_name), start=1):
        rows.append((record.CHROM, int(record.POS), record.REF.upper(), [a.upper() for a in record.ALT], number))
        gts = np.full((len(names), 2), -1, dtype=np.int16)
        for j, call in enumerate(record.genotypes):
            alleles = [a for a in call[:-1]]
            if len(alleles) == 1:
                alleles = alleles * 2
            gts[j] = [a if a is not None and a >= 0 else -1 for a in alleles[:2]]
        calls.append(gts)
    reader.close()
    records = pd.DataFrame(rows, columns=["chrom", "pos", "ref", "alts", "line"])
    genotypes = np.stack(calls) if calls else np.zeros((0, len(names), 2), dtype=np.int16)
    return names, records, genotypes

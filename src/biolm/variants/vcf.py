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
The same pass notes the contigs, INFO/FORMAT keys and FILTER names that the data lines use but the
header does not declare (VCFs without ``##contig`` lines are common): `open_vcf` declares them in
the reader's header, so every VCF written from it (`filter_vcf`, the annotated VCF) is valid.
"""

from __future__ import annotations

import gzip
import json
import logging
import re
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from biolm.data.io import atomic_path, first_duplicate
from biolm.errors import BiolmError

log = logging.getLogger(__name__)

VARIANT_COLUMNS = ["chrom", "pos", "id", "ref", "alt", "allele", "qual", "filter", "dp", "line"]
_BASES = set("ACGTNacgtn")


_STRUCTURED = re.compile(r"^##(INFO|FORMAT|FILTER|contig|ALT)=<")
_TYPES = ("Integer", "Float", "String", "Flag", "Character")
_DECLARABLE = re.compile(r'^[!#-+\--;?-~]+$')  # printable ASCII except , < = > ": names a header line can declare


def _open_text(path: Path):
    with open(path, "rb") as handle:
        magic = handle.read(2)
    if magic == b"\x1f\x8b":
        return gzip.open(path, "rt", errors="replace")
    return open(path, errors="replace")


def _is_bcf(path: Path) -> bool:
    """BCF by content (``BCF`` magic, after any gzip layer), whatever the file is called."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(3)
        if head[:2] == b"\x1f\x8b":
            with gzip.open(path, "rb") as handle:
                head = handle.read(3)
        return head == b"BCF"
    except (OSError, EOFError, zlib.error):
        return False  # the text check reports the unreadable file


@dataclass
class VcfScan:
    """What the line-by-line check of a text VCF found."""

    n_records: int = 0
    used: dict[str, dict[str, bool]] = field(default_factory=lambda: {"contig": {}, "INFO": {}, "FORMAT": {}, "FILTER": {}})
    # contig, INFO key (value: is a flag), FORMAT key and FILTER names the records use, in first-use order


# Keys the VCF spec reserves keep their spec types when a header leaves them out.
_RESERVED = {
    "INFO": {"DP": "Number=1,Type=Integer", "AN": "Number=1,Type=Integer", "AC": "Number=A,Type=Integer", "AF": "Number=A,Type=Float"},
    "FORMAT": {"GT": "Number=1,Type=String", "DP": "Number=1,Type=Integer", "GQ": "Number=1,Type=Integer", "AD": "Number=R,Type=Integer"},
}


def _check_header_line(line: str, where: str) -> None:
    """A structured header line (``##INFO=<...>`` etc.) must close and start with a valid ID; INFO/FORMAT need a known Type."""
    if not _STRUCTURED.match(line):
        return
    text = line.rstrip("\r\n")
    if not text.endswith(">"):
        raise BiolmError(f"{where}: header line {text[:60]!r} does not end with '>'")
    named = re.match(r"^##\w+=<ID=([^,>]*)[,>]", text)
    if text[2:].startswith(("INFO", "FORMAT", "FILTER", "contig")) and (named is None or not _DECLARABLE.match(named[1])):
        raise BiolmError(f"{where}: header line {text[:60]!r} needs ID=<name> first (printable ASCII without spaces, commas, quotes, '<', '>' or '=')")
    if text.startswith(("##INFO", "##FORMAT")):
        kind = re.search(r"[<,]Type=([^,>]*)", text)
        if kind is None or kind[1] not in _TYPES:
            found = "no Type" if kind is None else f"Type={kind[1]}"
            raise BiolmError(f"{where}: header line {text[:60]!r} has {found} (accepted: {', '.join(_TYPES)})")


def _undeclared_lines(reader, used: dict[str, dict[str, bool]]) -> list[str]:
    """Header lines for the names the records use but the reader's (htslib's) header lacks."""
    declared: dict[str, set] = {"contig": set(reader.seqnames), "INFO": set(), "FORMAT": set(), "FILTER": {"PASS"}}
    for record in reader.header_iter():
        kind = "contig" if record.type == "CONTIG" else record.type
        if kind in declared:
            declared[kind].add(record.info().get("ID"))
    lines = []
    for kind, names in used.items():
        for name, is_flag in names.items():
            if name in declared[kind]:
                continue
            if kind == "contig":
                lines.append(f"##contig=<ID={name}>")
            elif kind == "FILTER":
                lines.append(f'##FILTER=<ID={name},Description="not declared in the input VCF">')
            else:
                spec = "Number=0,Type=Flag" if kind == "INFO" and is_flag else _RESERVED[kind].get(name, "Number=.,Type=String")
                lines.append(f'##{kind}=<ID={name},{spec},Description="not declared in the input VCF">')
    return lines


def _note_names(used: dict[str, dict[str, bool]], cols: list[str], where: str) -> None:
    """Add a record's contig, FILTER names, INFO keys (flag or not) and FORMAT keys to ``used``; refuse unwritable names."""
    names = [("contig", cols[0], True)]
    names += [("FILTER", name, True) for name in cols[6].split(";") if cols[6] != "."]
    for item in cols[7].split(";") if cols[7] != "." else ():
        key, has_value, _ = item.partition("=")
        if item:  # htslib skips the empty items of ``DP=3;;AF=1`` and a trailing ``;``
            names.append(("INFO", key, not has_value))
    names += [("FORMAT", key, True) for key in cols[8].split(":")] if len(cols) > 8 and cols[8] != "." else []
    for kind, name, flag in names:
        if name not in used[kind]:
            if not _DECLARABLE.match(name):
                raise BiolmError(f"{where}: {kind} name {name!r} is not valid (printable ASCII without spaces, commas, quotes, '<', '>' or '=')")
            used[kind][name] = flag


_FIXED_COLUMNS = ["#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO"]


def _check_chrom_line(header: list[str], where: str) -> None:
    """The ``#CHROM`` line: the 8 fixed columns, then FORMAT and unique, non-empty sample names (labels join on them)."""
    if header[:8] != _FIXED_COLUMNS or (len(header) > 8 and header[8] != "FORMAT"):
        raise BiolmError(f"{where}: the header line must start with {' '.join(_FIXED_COLUMNS)} (then FORMAT and sample names), tab-separated")
    names = header[9:]
    repeat = first_duplicate(names)
    if repeat is not None:
        first, again = repeat
        raise BiolmError(
            f"{where}: sample {names[again]!r} is listed twice in the #CHROM line (columns {first + 10} and {again + 10}); sample names must be unique"
        )
    if "" in names:
        raise BiolmError(f"{where}: an empty sample name in the #CHROM line (column {names.index('') + 10})")


def check_vcf_text(path: str | Path, field_name: str = "vcf") -> VcfScan:
    """Check a text VCF's layout before htslib reads it, and collect the names its records use.

    Returns:
        A `VcfScan` (``n_records`` is -1 for a BCF, which is not checked).

    Raises:
        BiolmError: missing file, unreadable or truncated compression, an unclosed structured header
            line or an INFO/FORMAT line without a known Type, no ``#CHROM`` header, a repeated
            sample name, a blank line among the records, a data line with fewer than 8 columns or
            another count than the ``#CHROM`` line, a non-integer POS, or an empty column, naming the
            file and line.
    """
    path = Path(path)
    if not path.is_file():
        raise BiolmError(f"{field_name}: file not found: {path}")
    if _is_bcf(path):
        return VcfScan(n_records=-1)
    seen_header = False
    header: list[str] = []
    scan = VcfScan()
    used = scan.used
    try:
        with _open_text(path) as handle:
            for number, line in enumerate(handle, start=1):
                if "\x00" in line:  # htslib's C strings end there: the rest of the line would vanish
                    raise BiolmError(f"{field_name}: {path} line {number}: a NUL byte; is this a text VCF?")
                if seen_header and line.startswith("#"):  # htslib would read it as a record
                    raise BiolmError(f"{field_name}: {path} line {number}: a header line after the #CHROM line; headers come first")
                if line.startswith("##"):
                    _check_header_line(line, f"{field_name}: {path} line {number}")
                    continue
                if line.startswith("#CHROM"):
                    seen_header = True
                    header = line.rstrip("\r\n").split("\t")
                    _check_chrom_line(header, f"{field_name}: {path} line {number}")
                    continue
                where = f"{field_name}: {path} line {number}"
                if not line.strip():
                    if seen_header:  # htslib would read it as a record with an empty CHROM
                        raise BiolmError(f"{where}: a blank line among the records; remove it")
                    continue
                if not seen_header:
                    raise BiolmError(f"{where}: data before the '#CHROM POS ID REF ALT QUAL FILTER INFO' header line (is this a VCF?)")
                cols = line.rstrip("\r\n").split("\t")
                if len(cols) < 8:
                    raise BiolmError(f"{where}: {len(cols)} tab-separated columns; a VCF record needs at least 8 (CHROM POS ID REF ALT QUAL FILTER INFO)")
                if len(cols) != len(header):
                    raise BiolmError(f"{where}: {len(cols)} tab-separated columns, but the #CHROM line has {len(header)}; one per header column")
                if not cols[1].isascii() or not cols[1].isdigit() or int(cols[1]) < 1:
                    raise BiolmError(f"{where}: POS {cols[1]!r} is not a positive integer")
                if not cols[3] or not cols[4]:
                    raise BiolmError(f"{where}: empty REF or ALT")
                if "" in cols:  # htslib reads an empty FILTER as a filter named '' that no writer accepts
                    raise BiolmError(f"{where}: column {header[cols.index('')]} is empty; write '.' for a missing value")
                _note_names(used, cols, where)
                scan.n_records += 1
    except (OSError, EOFError, UnicodeDecodeError, zlib.error) as err:
        raise BiolmError(f"{field_name}: cannot read {path} (truncated or not a VCF?): {err}") from None
    if not seen_header:
        raise BiolmError(f"{field_name}: {path} has no '#CHROM POS ID REF ALT QUAL FILTER INFO' header line (is this a VCF?)")
    return scan


def open_vcf(path: str | Path, field_name: str = "vcf", samples: list[str] | str | None = None):
    """A checked `cyvcf2.VCF` reader (errors as `BiolmError`) whose header declares every contig and tag used."""
    from cyvcf2 import VCF

    scan = check_vcf_text(path, field_name)
    try:
        reader = VCF(str(path), samples=samples, strict_gt=False)
    except Exception as err:  # cyvcf2 raises OSError, or a bare Exception on a bad header
        raise BiolmError(f"{field_name}: {path} is not a readable VCF/BCF ({err})") from None
    undeclared = _undeclared_lines(reader, scan.used)
    for line in undeclared:
        reader.add_to_header(line)
    if undeclared:
        log.debug("%s: declared %d header lines the file lacks: %s", path, len(undeclared), ", ".join(undeclared[:5]))
    return reader


def _field(get, where: str, what: str):
    """``get()``, with cyvcf2's failures on a malformed field turned into a `BiolmError` naming the record."""
    try:
        return get()
    except Exception as err:  # cyvcf2 raises bare Exception/KeyError when a value or its header line is malformed
        raise BiolmError(f"{where}: cannot parse {what} ({err!s}); check the record and its header line") from None


def _number(value) -> float:
    """An INFO value as a float (first of several; NaN when missing or not numeric)."""
    if isinstance(value, (tuple, list)):
        value = value[0] if value else None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return np.nan
    return number


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
        depth = _number(_field(lambda: record.INFO.get("DP"), f"{field_name}: {path}: data record {number}", "INFO/DP"))  # noqa: B023 (called at once)
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


def _record_reason(record, min_qual: float | None, min_dp: float | None, require_pass: bool, where: str) -> str | None:
    """Why a record fails the record-level filters (first failing filter), or None."""
    if require_pass and record.FILTER is not None:
        return "filter_not_pass"
    if min_qual is not None:
        if record.QUAL is None:
            return "qual_missing"
        if record.QUAL < min_qual:
            return "qual_below_min"
    if min_dp is not None:
        depth = _number(_field(lambda: record.INFO.get("DP"), where, "INFO/DP"))
        if not np.isfinite(depth):
            return "info_dp_missing"
        if depth < min_dp:
            return "info_dp_below_min"
    return None


def genotype_calls(record, n_samples: int, min_sample_dp: float | None, where: str) -> tuple[np.ndarray, np.ndarray]:
    """Per sample: genotype called (and FORMAT/DP >= min_sample_dp when asked), and heterozygous."""
    if n_samples == 0:
        return np.zeros(0, bool), np.zeros(0, bool)
    types = _field(lambda: record.gt_types, where, "the genotypes")  # 0 hom-ref, 1 het, 2 unknown, 3 hom-alt
    called = types != 2
    if min_sample_dp is not None:
        depth = _field(lambda: record.format("DP"), where, "FORMAT/DP")
        try:
            depth = np.zeros(n_samples) if depth is None else np.asarray(depth).reshape(n_samples, -1)[:, 0].astype(float)
        except ValueError:  # FORMAT/DP declared as text, not a number
            depth = np.zeros(n_samples)
        called &= (depth >= min_sample_dp) & (depth > -2**31 + 1)
    return called, types == 1


def _check_sites_only(vcf, samples: list[str], **options) -> None:
    """A sites-only VCF (no samples) accepts the record filters only; sample options set are an error."""
    if samples:
        return
    asked = [f"{name}={value}" for name, value in options.items() if value is not None]
    if asked:
        raise BiolmError(
            f"in: {vcf} has no samples (a sites-only VCF: no genotype columns), so {', '.join(asked)} cannot apply; "
            "leave the sample options unset (require_pass, min_qual and min_dp work on sites-only VCFs)"
        )


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
    _check_sites_only(
        vcf, samples, min_sample_dp=min_sample_dp, min_call_rate=min_call_rate or None,
        max_sample_missing=None if max_sample_missing >= 1 else max_sample_missing, max_het_z=max_het_z,
    )
    result = FilterReport(input_samples=len(samples))
    result.settings = {
        "min_qual": min_qual, "min_dp": min_dp, "require_pass": require_pass, "min_sample_dp": min_sample_dp,
        "min_call_rate": min_call_rate, "max_sample_missing": max_sample_missing, "max_het_z": max_het_z,
    }
    keep: list[bool] = []
    n_called, n_het = np.zeros(len(samples), np.int64), np.zeros(len(samples), np.int64)
    for record in _records(reader, vcf, "in"):
        result.input_records += 1
        where = f"in: {vcf}: data record {result.input_records}"
        reason = _record_reason(record, min_qual, min_dp, require_pass, where)
        called, het = genotype_calls(record, len(samples), min_sample_dp, where)
        if reason is None and samples and called.mean() < min_call_rate:
            reason = "call_rate_below_min"
        if reason:
            result.dropped_records[reason] += 1
        else:
            n_called += called
            n_het += het & called
        keep.append(reason is None)
    reader.close()
    result.dropped_samples.update(sample_qc_reasons(samples, n_called, n_het, sum(keep), max_sample_missing, max_het_z))
    kept_samples = [name for name in samples if name not in result.dropped_samples]
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


def sample_qc_reasons(
    samples: list[str], n_called: np.ndarray, n_het: np.ndarray, n_records: int, max_missing: float | None, max_het_z: float | None,
) -> dict[str, str]:
    """Why samples fail missingness, then heterozygosity QC: ``{sample: reason}`` (passing samples are absent).

    Args:
        samples: sample names.
        n_called: ``(n_samples,)`` called genotypes per sample over ``n_records`` records.
        n_het: ``(n_samples,)`` heterozygous calls per sample.
        max_missing: fail a missing-genotype share above this (None or >= 1: off).
        max_het_z: fail a heterozygous share (of called genotypes) more than this many SD from the
            mean of the samples that passed missingness (None: off; needs >= 3 such samples).
    """
    dropped: dict[str, str] = {}
    if not samples or n_records == 0:
        return dropped
    missing = 1.0 - np.asarray(n_called) / n_records
    if max_missing is not None:
        for name, share in zip(samples, missing):
            if share > max_missing:
                dropped[name] = f"missing genotypes {share:.3f} > max_sample_missing {max_missing}"
    if max_het_z is not None:
        alive = np.array([name not in dropped for name in samples])
        het_rate = np.asarray(n_het) / np.maximum(n_called, 1)
        if alive.sum() >= 3:
            mean, sd = het_rate[alive].mean(), het_rate[alive].std()
            for name, rate, ok in zip(samples, het_rate, alive):
                z = 0.0 if sd == 0 else (rate - mean) / sd
                if ok and abs(z) > max_het_z:
                    dropped[name] = f"heterozygosity {rate:.3f} is {z:+.2f} SD from the mean {mean:.3f} (max_het_z {max_het_z})"
    return dropped


def _write_subset(vcf, output, keep: list[bool], samples: list[str] | None) -> None:
    """Write the kept records (and samples) with cyvcf2's Writer, atomically."""
    from cyvcf2 import Writer

    reader = open_vcf(vcf, "in", samples=samples)
    name = str(output)
    mode = "wz" if name.endswith(".gz") else "wb" if name.endswith(".bcf") else "w"
    with atomic_path(output) as tmp:
        writer = Writer(str(tmp), reader, mode=mode)
        for number, (record, ok) in enumerate(zip(_records(reader, vcf, "in"), keep), start=1):
            if not ok:
                continue
            try:
                writer.write_record(record)
            except Exception as err:  # cyvcf2 raises a bare Exception with htslib's error code
                writer.close()
                raise BiolmError(f"in: {vcf}: data record {number} cannot be written back as VCF ({err}); is its header complete?") from None
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
    if not names:
        reader.close()
        raise BiolmError(
            f"{field_name}: {path} has no samples (a sites-only VCF: no genotype columns), so it cannot make per-sample "
            "sequences; pass a VCF with genotypes (variants score takes sites-only VCFs)"
        )
    rows, calls = [], []
    for number, record in enumerate(_records(reader, path, field_name), start=1):
        alts = [a.upper() for a in record.ALT]
        rows.append((record.CHROM, int(record.POS), record.REF.upper(), alts, number))
        where = f"{field_name}: {path}: data record {number}"
        gts = np.full((len(names), 2), -1, dtype=np.int16)
        for j, call in enumerate(_field(lambda: record.genotypes, where, "the genotypes")):  # noqa: B023 (called at once)
            alleles = [a if a is not None and a >= 0 else -1 for a in call[:-1]][:2]
            if any(a > len(alts) for a in alleles):
                raise BiolmError(f"{where}: sample {names[j]!r} has allele {max(alleles)} in GT, but the record has {len(alts)} ALT allele(s)")
            if alleles:  # haploid calls repeat their allele
                gts[j] = alleles * 2 if len(alleles) == 1 else alleles
        calls.append(gts)
    reader.close()
    records = pd.DataFrame(rows, columns=["chrom", "pos", "ref", "alts", "line"])
    genotypes = np.stack(calls) if calls else np.zeros((0, len(names), 2), dtype=np.int16)
    return names, records, genotypes

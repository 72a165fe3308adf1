"""Genotype and phenotype input for genomic prediction.

In: a genotype file (CSV/TSV/Parquet matrix, lines x markers, first column or `id_column` = line id;
PLINK ``.bed`` with its ``.bim``/``.fam``; or a VCF), and a phenotype table (line id + one column per
trait). Out: a `GenotypeMatrix` — `values` float32 `(n_lines, n_markers)` additive dosages 0/1/2
(count of one allele; NaN = missing) — and the phenotypes joined to it by line id.

Matrix codings (`coding`): ``012`` (dosage; presence/absence 0/1 also fits) or ``-101``
(-1/0/1, shifted to 0/1/2). Missing values: empty cells or NA (CSV), -9 is not read as missing.

Ids must be unique in every file: line ids join genotypes, phenotypes and the pedigree, marker
names join a fitted model to new genotype files. A repeated one is a `BiolmError` naming it and
both of its places; so is any unreadable or malformed file.
"""

from __future__ import annotations

import gzip
import io
import logging
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from biolm.data.io import column_list, first_duplicate, read_text
from biolm.errors import BiolmError

log = logging.getLogger(__name__)

CODINGS = {"012": (0.0, 1.0, 2.0), "-101": (-1.0, 0.0, 1.0)}
TABLE_FORMATS = "CSV/TSV/Parquet matrix (lines x markers), PLINK .bed (+ .bim/.fam) or VCF (.vcf/.vcf.gz/.bcf)"


@dataclass
class GenotypeMatrix:
    """Lines x markers dosages.

    Attributes:
        source: file the genotypes came from.
        ids: line ids (strings), one per row.
        markers: marker names, one per column, in map order.
        values: float32 `(n_lines, n_markers)` allele counts 0/1/2, NaN where missing.
    """

    source: str
    ids: list[str]
    markers: list[str]
    values: np.ndarray

    def subset(self, rows) -> GenotypeMatrix:
        """The lines at positional indices ``rows``."""
        rows = np.asarray(rows)
        return GenotypeMatrix(self.source, [self.ids[i] for i in rows], self.markers, self.values[rows])


def _read_table(path: str, field: str) -> pd.DataFrame:
    """A CSV/TSV/Parquet table (optionally gzipped) as strings, its header exactly as written.

    Repeated header names are refused rather than renamed (pandas would read ``m1, m1`` as
    ``m1, m1.1``), and so are rows with fewer fields than the header.
    """
    name = path.lower().removesuffix(".gz")
    if name.endswith((".parquet", ".pq")):
        frame = _read_parquet(path, field)
        columns = [str(c) for c in frame.columns]
        _check_unique(columns, f"{field}: {path} header", "column", lambda j: f"column {j + 1}")
        frame.columns = columns
        return frame
    sep = "\t" if name.endswith((".tsv", ".txt")) else ","
    try:
        frame = pd.read_csv(io.StringIO(read_text(path)), sep=sep, dtype=str, keep_default_na=False, header=None)
    except pd.errors.EmptyDataError:
        raise BiolmError(f"{field}: {path} is empty; expected a header line and one row per line") from None
    except (pd.errors.ParserError, ValueError) as err:
        raise BiolmError(f"{field}: cannot read {path} as {'TSV' if sep == chr(9) else 'CSV'}: {_one_line(err)}") from None
    header = [str(c) for c in frame.iloc[0].tolist()]
    _check_unique(header, f"{field}: {path} line 1", "column", lambda j: f"column {j + 1}")
    frame = frame.iloc[1:].reset_index(drop=True)
    frame.columns = header
    short = frame.isna().any(axis=1).to_numpy()  # with keep_default_na=False only absent fields are NaN
    if short.any():
        row = int(np.flatnonzero(short)[0])
        fields = int(frame.iloc[row].notna().sum())
        raise BiolmError(f"{field}: {path} line {row + 2} has {fields} fields, the header has {len(header)}; every line needs one per column")
    return frame


def _read_parquet(path: str, field: str) -> pd.DataFrame:
    import pyarrow

    try:
        return pd.read_parquet(path)
    except (OSError, ValueError, NotImplementedError, pyarrow.ArrowException) as err:
        raise BiolmError(f"{field}: cannot read {path} as Parquet: {_one_line(err)}") from None


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__


def _check_unique(names: list[str], where: str, what: str, place) -> None:
    """Refuse a repeated name; ``place(i)`` says where position ``i`` is (``line 5``, ``columns 3``)."""
    repeat = first_duplicate(names)
    if repeat is not None:
        first, again = repeat
        raise BiolmError(
            f"{where}: {what} {names[again]!r} appears twice ({place(first)} and {place(again)}); "
            f"{what}s join files by name, so each must be unique"
        )


def _check_exists(path: str, field: str) -> None:
    if not Path(path).is_file():
        raise BiolmError(f"{field}: file not found: {path}")


def _matrix_from_table(path: str, field: str, coding: str, id_column: str | None) -> GenotypeMatrix:
    frame = _read_table(path, field)
    if frame.shape[1] < 2 or len(frame) == 0:
        raise BiolmError(f"{field}: {path} needs an id column and at least one marker column, with one row per line")
    id_column = id_column or str(frame.columns[0])
    if id_column not in frame.columns:
        raise BiolmError(f"{field}: {path} has no column {id_column!r} (columns: {column_list(list(frame.columns)[:5])}{', ...' if frame.shape[1] > 5 else ''})")
    ids = frame[id_column].astype(str).tolist()
    body = frame.drop(columns=[id_column])
    is_parquet = path.lower().removesuffix(".gz").endswith((".parquet", ".pq"))
    offset = 1 if is_parquet else 2
    word = "row" if is_parquet else "line"
    _check_unique(ids, f"{field}: {path}", "line id", lambda i: f"{word} {i + offset}")
    text = body.astype(str).replace({"": "nan", "NA": "nan", "na": "nan", "NaN": "nan", "None": "nan", ".": "nan"})
    values = text.apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
    bad = np.isnan(values) & (text.to_numpy() != "nan")
    if bad.any():
        row, col = map(int, np.argwhere(bad)[0])
        raise BiolmError(
            f"{field}: {path} {word} {row + offset}, marker {body.columns[col]!r}: non-numeric genotype {text.iat[row, col]!r} "
            f"(accepted: numbers in the declared coding {coding}, or empty/NA for missing)"
        )
    return _from_coded(path, field, ids, [str(c) for c in body.columns], values, coding, line_offset=offset)


def _from_coded(path: str, field: str, ids: list[str], markers: list[str], values: np.ndarray, coding: str, line_offset: int) -> GenotypeMatrix:
    if coding not in CODINGS:
        raise BiolmError(f"data.coding: {coding!r} is not a known coding (accepted: {', '.join(CODINGS)})")
    allowed = np.array(CODINGS[coding])
    observed = ~np.isnan(values)
    invalid = observed & ~np.isin(values, allowed)
    if invalid.any():
        row, col = map(int, np.argwhere(invalid)[0])
        raise BiolmError(
            f"{field}: {path} line {row + line_offset}, marker {markers[col]!r}: value {values[row, col]:g} is not in "
            f"coding {coding} (accepted: {', '.join(f'{v:g}' for v in allowed)}; set data.coding to the file's coding)"
        )
    dosages = values - allowed[0]
    return GenotypeMatrix(path, ids, markers, dosages.astype(np.float32))


def _matrix_from_bed(path: str, field: str) -> GenotypeMatrix:
    from bed_reader import open_bed

    for suffix in (".bim", ".fam"):
        if not Path(path).with_suffix(suffix).is_file():
            raise BiolmError(f"{field}: PLINK {path} needs {Path(path).with_suffix(suffix).name} beside it")
    fam, bim = Path(path).with_suffix(".fam").name, Path(path).with_suffix(".bim").name
    try:
        with open_bed(path) as bed:
            ids, markers = [str(i) for i in bed.iid], [str(s) for s in bed.sid]
            _check_unique(ids, f"{field}: {fam}", "line id", lambda i: f"line {i + 1}")
            _check_unique(markers, f"{field}: {bim}", "marker", lambda j: f"line {j + 1}")
            values = bed.read(dtype="float32")  # allele-1 counts, NaN missing
    except (OSError, ValueError, RuntimeError, IndexError) as err:  # bed_reader reports bad files as these
        raise BiolmError(f"{field}: cannot read PLINK {path} with {bim} and {fam}: {_one_line(err)}") from None
    return GenotypeMatrix(path, ids, markers, values)


def _vcf_sample_names(path: str) -> list[str] | None:
    """Sample names from the ``#CHROM`` line of a text VCF (plain or gzipped); None if not found."""
    try:
        with open(path, "rb") as raw:
            compressed = raw.read(2) == b"\x1f\x8b"
        with (gzip.open(path, "rt", errors="replace") if compressed else open(path, errors="replace")) as handle:
            for line in handle:
                if line.startswith("#CHROM"):
                    return line.rstrip("\r\n").split("\t")[9:]
                if not line.startswith("#"):
                    return None
    except (OSError, EOFError, zlib.error):
        return None
    return None


def _matrix_from_vcf(path: str, field: str) -> GenotypeMatrix:
    from cyvcf2 import VCF

    names = _vcf_sample_names(path)
    if names:
        _check_unique(names, f"{field}: {path} #CHROM line", "sample", lambda j: f"column {j + 10}")
    # cyvcf2 gt_types: 0 hom-ref, 1 het, 2 unknown, 3 hom-alt -> alt-allele dosage
    to_dosage = np.array([0.0, 1.0, np.nan, 2.0], dtype=np.float32)
    columns, markers, records = [], [], []
    try:
        reader = VCF(path, gts012=False)
        samples = [str(s) for s in reader.samples]
        for number, variant in enumerate(reader, start=1):
            if len(variant.ALT) != 1:
                raise BiolmError(f"{field}: {path} {variant.CHROM}:{variant.POS} has {len(variant.ALT)} ALT alleles; only biallelic SNPs are read")
            columns.append(to_dosage[variant.gt_types])
            markers.append(variant.ID or f"{variant.CHROM}:{variant.POS}")
            records.append(f"record {number} ({variant.CHROM}:{variant.POS})")
        reader.close()
    except BiolmError:
        raise
    except Exception as err:  # htslib failures surface as plain Exception/OSError from cyvcf2
        raise BiolmError(f"{field}: cannot read {path} as VCF/BCF: {_one_line(err)}") from None
    if not columns or not samples:
        raise BiolmError(f"{field}: {path} holds no variants or no samples")
    _check_unique(samples, f"{field}: {path}", "line id", lambda j: f"sample {j + 1}")
    _check_unique(
        markers,
        f"{field}: {path}",
        "marker",
        lambda j: records[j] + " (give each record a unique ID, e.g. bcftools annotate --set-id '%CHROM:%POS:%REF:%ALT')",
    )
    return GenotypeMatrix(path, samples, markers, np.stack(columns, axis=1))


def read_genotypes(path: str, field: str = "data.genotypes", coding: str = "012", id_column: str | None = None) -> GenotypeMatrix:
    """Read a genotype file into additive dosages (see the module docstring for formats).

    Line ids and marker names must be unique: line ids join genotypes to phenotypes, marker names
    join a fitted model to new genotype files.

    Args:
        path: the file (``.csv/.tsv/.parquet`` optionally ``.gz``, ``.bed``, ``.vcf/.vcf.gz/.bcf``).
        field: config key named in errors.
        coding: coding of matrix files, ``012`` or ``-101`` (PLINK and VCF carry their own).
        id_column: id column of matrix files (default: the first column).

    Raises:
        BiolmError: an unreadable or malformed file, a repeated line id or marker, a value
            outside the coding, naming the file and line.
    """
    path = str(path)
    _check_exists(path, field)
    name = path.lower()
    if name.endswith(".bed"):
        matrix = _matrix_from_bed(path, field)
    elif name.endswith((".vcf", ".vcf.gz", ".bcf")):
        matrix = _matrix_from_vcf(path, field)
    elif name.removesuffix(".gz").endswith((".csv", ".tsv", ".txt", ".parquet", ".pq")):
        matrix = _matrix_from_table(path, field, coding, id_column)
    else:
        raise BiolmError(f"{field}: cannot tell the format of {path} (accepted: {TABLE_FORMATS})")
    log.info("genotypes: %d lines x %d markers from %s", len(matrix.ids), len(matrix.markers), path)
    return matrix


def check_constant_markers(matrix: GenotypeMatrix, drop: bool) -> GenotypeMatrix:
    """Refuse (or, with ``drop``, remove) markers with a single observed value across all lines."""
    values = matrix.values
    with np.errstate(invalid="ignore"):
        spread = np.nanmax(values, axis=0) - np.nanmin(values, axis=0) if values.size else np.zeros(0)
    constant = ~(spread > 0)  # also all-missing columns (NaN spread)
    if not constant.any():
        return matrix
    names = [matrix.markers[j] for j in np.flatnonzero(constant)]
    if not drop:
        raise BiolmError(
            f"data.genotypes: {matrix.source} has {len(names)} constant marker(s), e.g. {', '.join(names[:3])}: "
            "they carry no information; remove them or set data.drop_constant=true"
        )
    keep = np.flatnonzero(~constant)
    if keep.size == 0:
        raise BiolmError(f"data.genotypes: every marker of {matrix.source} is constant; nothing to predict from")
    log.info("dropped %d constant markers", len(names))
    return GenotypeMatrix(matrix.source, matrix.ids, [matrix.markers[j] for j in keep], matrix.values[:, keep])


def read_phenotypes(path: str, field: str = "data.phenotypes", id_column: str | None = None) -> pd.DataFrame:
    """Read a phenotype table: index = line id (str, unique), one float column per trait (NaN = missing)."""
    path = str(path)
    _check_exists(path, field)
    frame = _read_table(path, field)
    if frame.shape[1] < 2:
        raise BiolmError(f"{field}: {path} needs a line-id column and at least one trait column")
    id_column = id_column or str(frame.columns[0])
    if id_column not in frame.columns:
        raise BiolmError(f"{field}: {path} has no column {id_column!r} (columns: {column_list(frame.columns)})")
    is_parquet = path.lower().removesuffix(".gz").endswith((".parquet", ".pq"))
    word, offset = ("row", 1) if is_parquet else ("line", 2)
    ids = frame[id_column].astype(str).tolist()
    if not ids:
        raise BiolmError(f"{field}: {path} has no rows after the header; expected one row per line")
    _check_unique(ids, f"{field}: {path}", "line id", lambda i: f"{word} {i + offset}")
    frame = frame.set_index(pd.Index(ids, name="id")).drop(columns=[id_column])
    out = frame.replace({"": np.nan, "NA": np.nan}).apply(pd.to_numeric, errors="coerce")
    bad = out.isna() & frame.notna() & ~frame.isin(["", "NA"])
    if bad.to_numpy().any():
        row, col = map(int, np.argwhere(bad.to_numpy())[0])
        raise BiolmError(f"{field}: {path} {word} {row + offset}, column {frame.columns[col]!r}: {frame.iat[row, col]!r} is not a number")
    return out.astype(float)


def join_phenotypes(matrix: GenotypeMatrix, phenotypes: pd.DataFrame, source: str) -> tuple[GenotypeMatrix, pd.DataFrame]:
    """Keep the genotyped lines that have phenotypes, in phenotype order.

    Raises:
        BiolmError: a phenotyped line has no genotypes (ids do not match), naming the first ids.
    """
    known = set(matrix.ids)
    unmatched = [i for i in phenotypes.index if i not in known]
    if unmatched:
        raise BiolmError(
            f"data.phenotypes: {len(unmatched)} of {len(phenotypes)} line ids in {source} have no genotypes in "
            f"{matrix.source}, e.g. {', '.join(map(repr, unmatched[:3]))} (genotype ids look like "
            f"{', '.join(map(repr, matrix.ids[:3]))}); ids must match exactly"
        )
    position = {line: i for i, line in enumerate(matrix.ids)}
    extra = len(matrix.ids) - len(phenotypes)
    if extra:
        log.info("%d genotyped lines have no phenotypes and are left out", extra)
    return matrix.subset([position[i] for i in phenotypes.index]), phenotypes


def read_pedigree(path: str, ids: list[str], field: str = "data.pedigree") -> np.ndarray:
    """The pedigree relationship matrix A `(n, n)` of ``ids`` from a square CSV (ids as index and header)."""
    path = str(path)
    _check_exists(path, field)
    frame = _read_table(path, field)
    if frame.shape[1] < 2:
        raise BiolmError(f"{field}: {path} needs a square matrix with line ids as its first column and header")
    index = frame.iloc[:, 0].astype(str).tolist()
    _check_unique(index, f"{field}: {path}", "line id", lambda i: f"line {i + 2}")
    frame = frame.set_index(pd.Index(index)).iloc[:, 1:]
    missing = [i for i in ids if i not in frame.index or i not in frame.columns]
    if missing:
        raise BiolmError(f"{field}: {path} lacks {len(missing)} line(s), e.g. {missing[0]!r}")
    block = frame.loc[ids, ids]
    values = block.apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
    if np.isnan(values).any():
        row, col = map(int, np.argwhere(np.isnan(values))[0])
        raise BiolmError(f"{field}: {path} row {ids[row]!r}, column {ids[col]!r}: {block.iat[row, col]!r} is not a number")
    return values

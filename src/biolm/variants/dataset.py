"""Per-sample sequence datasets from a VCF: one row per sample (or haplotype) with its label.

In: a VCF with genotypes, a `Reference`, a region ``CONTIG:START-END`` and optionally a labels
table (``sample`` and ``label`` columns, e.g. case/control) and a list of samples to leave out
(``biolm variants qc``'s ``failed_samples.txt``). Out: a table ``id, sample,
haplotype, sequence[, label]`` ready for ``biolm finetune data.train=...``.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pandas as pd

from biolm.data.io import first_duplicate, read_text, write_table
from biolm.errors import BiolmError
from biolm.variants.reference import Reference
from biolm.variants.sequences import sample_sequences
from biolm.variants.vcf import open_vcf

log = logging.getLogger(__name__)


def read_labels_table(path: str | Path, field_name: str = "labels") -> pd.DataFrame:
    """A CSV/TSV (``.tsv``/``.txt``: tab; optionally gzipped) as text columns; errors as `BiolmError`."""
    path = Path(path)
    if not path.is_file():
        raise BiolmError(f"{field_name}: file not found: {path}")
    text = read_text(str(path))
    try:
        return pd.read_csv(io.StringIO(text), sep="\t" if ".tsv" in path.name or ".txt" in path.name else ",", dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise BiolmError(f"{field_name}: {path} is empty; expected a header line and rows") from None
    except (pd.errors.ParserError, ValueError) as err:
        message = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
        raise BiolmError(f"{field_name}: cannot read {path} as a table: {message}") from None


def read_sample_labels(
    path: str | Path, sample_column: str = "sample", label_column: str = "label", field_name: str = "labels",
    label_key: str = "label_column", strip_names: bool = False, noun: str = "labels",
) -> dict[str, str]:
    """``{sample: label}`` from a CSV/TSV table with one row per sample, in file order (row ``i`` is line ``i + 2``).

    Args:
        field_name: the setting that named the file, for messages (``labels``, ``samples``).
        label_key: the setting that names ``label_column``, for messages.
        strip_names: strip spaces around sample names.
        noun: what the values are called in messages (``labels``, ``sexes``).

    Raises:
        BiolmError: missing file or column, or a sample listed twice (even with the same label),
            naming both lines and their labels.
    """
    table = read_labels_table(path, field_name)
    missing = [c for c in (sample_column, label_column) if c not in table.columns]
    if missing:
        raise BiolmError(f"{field_name}: {path} lacks column(s) {', '.join(missing)} (has {', '.join(repr(str(c)) for c in table.columns)}); set sample_column= / {label_key}=")
    samples, labels = table[sample_column].tolist(), table[label_column].tolist()
    if strip_names:
        samples = [name.strip() for name in samples]
    repeat = first_duplicate(samples)
    if repeat is not None:
        first, again = repeat
        raise BiolmError(
            f"{field_name}: {path} line {again + 2}: sample {samples[again]!r} is listed again (first on line {first + 2}; "
            f"{noun} {labels[first]!r} and {labels[again]!r}); each sample needs exactly one row"
        )
    return dict(zip(samples, labels))


def read_sample_list(path: str | Path, field_name: str = "exclude") -> list[str]:
    """Sample names from a list file: one a line, the name before the first tab; blank lines and ``#`` lines skipped."""
    path = Path(path)
    if not path.is_file():
        raise BiolmError(f"{field_name}: file not found: {path}")
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise BiolmError(f"{field_name}: cannot read {path}: {err}") from None
    return [line.split("\t")[0].strip() for line in lines if line.strip() and not line.startswith("#")]


def variant_dataset(
    vcf: str | Path,
    reference: Reference | str | Path,
    region: str,
    labels: str | Path | None = None,
    output: str | None = None,
    mode: str = "haplotype",
    strand: str = "+",
    on_ref_mismatch: str = "error",
    sample_column: str = "sample",
    label_column: str = "label",
    aliases: dict[str, str] | None = None,
    exclude: str | Path | None = None,
) -> pd.DataFrame:
    """One sequence per sample (``consensus``) or per haplotype (``haplotype``) over ``region``.

    Args:
        vcf: VCF with genotypes (filter it first with `filter_vcf`).
        reference: `Reference` or FASTA path.
        region: ``CONTIG:START-END``, 1-based inclusive.
        labels: optional table of ``sample_column`` -> ``label_column``; samples without a label are dropped.
        output: table to write (CSV/TSV/Parquet), atomically.
        mode: ``haplotype`` (two rows per sample, GT slots 1 and 2) or ``consensus`` (every ALT carried).
        strand: ``+`` or ``-`` (reverse complement).
        exclude: a sample list (one a line, the name before the first tab, ``#`` lines skipped:
            ``biolm variants qc``'s ``failed_samples.txt``); these samples are left out.

    Returns:
        ``id, sample, haplotype, sequence`` (+ ``label``).
    """
    table = read_sample_labels(labels, sample_column, label_column) if labels is not None else None  # its mistakes first
    keep = _kept_samples(vcf, exclude) if exclude is not None else None
    reference = reference if isinstance(reference, Reference) else Reference(reference, aliases)
    frame = sample_sequences(str(vcf), reference, region, mode=mode, strand=strand, samples=keep, on_ref_mismatch=on_ref_mismatch)
    if table is not None:
        unlabelled = sorted(set(frame["sample"]) - set(table))
        if len(unlabelled) == frame["sample"].nunique():
            raise BiolmError(f"labels: no sample of {vcf} is in {labels} (VCF samples: {', '.join(sorted(set(frame['sample']))[:5])}, ...)")
        if unlabelled:
            log.warning("%d samples have no label in %s and are left out: %s", len(unlabelled), labels, ", ".join(unlabelled[:10]))
        frame = frame[frame["sample"].isin(table)].reset_index(drop=True)
        frame["label"] = frame["sample"].map(table)
    if output:
        write_table(frame, str(output))
        log.info("%d sequences of %d bp written to %s", len(frame), int(frame["sequence"].str.len().median()), output)
    return frame


def _kept_samples(vcf: str | Path, exclude: str | Path) -> list[str] | None:
    """The VCF's samples less those listed in ``exclude`` (listed samples absent from the VCF: a warning)."""
    listed = set(read_sample_list(exclude))
    reader = open_vcf(vcf, "vcf", samples="-")  # "-" skips the genotypes; the sample names stay
    names = list(reader.samples)
    reader.close()
    if not names:
        return None  # a sites-only VCF: sample_sequences says so
    absent = sorted(listed - set(names))
    if absent:
        log.warning("exclude: %d samples of %s are not in %s: %s", len(absent), exclude, vcf, ", ".join(absent[:10]))
    keep = [name for name in names if name not in listed]
    if not keep:
        raise BiolmError(f"exclude: {exclude} lists every sample of {vcf}; nothing is left")
    log.info("exclude: %d of %d samples dropped (listed in %s)", len(names) - len(keep), len(names), exclude)
    return keep

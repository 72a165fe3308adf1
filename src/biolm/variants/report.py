"""`score_vcf`: the ``biolm variants score`` pipeline from files to files.

In: a run folder (or a loaded run or public checkpoint), a VCF (or a CSV/TSV with ``chrom, pos, ref, alt``), a reference FASTA, optional
labels. Out: the score table (TSV/CSV/Parquet), an annotated VCF (INFO ``BIOLM_SCORE``) when the
input is a VCF, and with labels ``<output stem>.metrics.json`` (AUROC/AUPRC) and
``<output stem>.roc.png``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd

from biolm.data.io import atomic_path, first_duplicate, write_table
from biolm.errors import BiolmError
from biolm.variants.dataset import read_labels_table
from biolm.variants.evaluation import KEY, annotate_vcf, attach_labels, evaluate_scores
from biolm.variants.reference import Reference, canonical_contig, parse_region
from biolm.variants.scoring import score_variants
from biolm.variants.vcf import read_variants

log = logging.getLogger(__name__)

_TABLES = (".csv", ".tsv", ".csv.gz", ".tsv.gz", ".parquet")


def _stem(path: str) -> str:
    for suffix in (".tsv.gz", ".csv.gz", ".tsv", ".csv", ".parquet"):
        if path.endswith(suffix):
            return path[: -len(suffix)]
    return path


def check_variant_labels(path: str | Path, label_column: str = "label") -> None:
    """Refuse a variant labels table that lists a variant twice (``chr17``/``17`` and allele case folded).

    A table without the ``chrom, pos, ref, alt`` columns is left to `attach_labels`, which names them.

    Raises:
        BiolmError: a variant on two rows (even with the same label), naming both lines and their labels.
    """
    table = read_labels_table(path)
    if not {*KEY, label_column} <= set(table.columns):
        return
    keys = list(zip(table["chrom"].map(canonical_contig), table["pos"].str.strip(), table["ref"].str.upper(), table["alt"].str.upper()))
    repeat = first_duplicate(keys)
    if repeat is not None:
        first, again = repeat
        row = table.iloc[again]
        labels = table[label_column]
        raise BiolmError(
            f"labels: {path} line {again + 2}: variant {row.chrom}:{row.pos} {row.ref}>{row.alt} is listed again (first on line {first + 2}; "
            f"labels {labels.iloc[first]!r} and {labels.iloc[again]!r}); each variant needs exactly one row"
        )


def score_vcf(
    run,
    vcf: str,
    reference: str,
    output: str,
    window_bp: int = 512,
    batch_size: int = 32,
    strand: str = "+",
    rc_average: bool = False,
    on_ref_mismatch: str = "error",
    labels: str | None = None,
    label_column: str = "label",
    annotated_vcf: str | None = None,
    region: str | None = None,
    snvs_only: bool = False,
    max_indel_bp: int = 50,
    aliases: dict[str, str] | None = None,
) -> tuple[pd.DataFrame, dict | None]:
    """Score the variants of a file and write the outputs (see module docstring).

    Args:
        run: a run folder or a loaded run (`load_scoring_run`, `biolm.runs.load_pretrained_language_model`).
        region: only variants inside ``CONTIG:START-END``.
        snvs_only: only single-base substitutions.
        annotated_vcf: where to write the annotated VCF (default ``<output stem>.vcf.gz``; ``""``: none).
        labels: table ``chrom, pos, ref, alt, <label_column>``, one row per variant (a repeated variant is an error).

    Returns:
        (scores, metrics): metrics is None without labels.
    """
    if labels:
        check_variant_labels(labels, label_column)  # before the scoring work
    ref = Reference(reference, aliases)
    if vcf.endswith(_TABLES):
        if not Path(vcf).is_file():
            raise BiolmError(f"vcf: file not found: {vcf}")
        table = pd.read_csv(vcf, sep="\t" if ".tsv" in vcf else ",", dtype={"chrom": str}) if not vcf.endswith(".parquet") else pd.read_parquet(vcf)
        is_vcf = False
    else:
        table, skipped = read_variants(vcf, max_indel_bp=max_indel_bp)
        if skipped:
            log.info("alleles not scored (not SNV/small indel): %s", dict(skipped))
        is_vcf = True
    if region:
        contig, start, end = parse_region(region)
        keep = (table["chrom"].astype(str).map(ref.canonical) == ref.canonical(contig)) & (table["pos"] > start) & (table["pos"] <= end)
        table = table[keep]
    if snvs_only:
        table = table[(table["ref"].str.len() == 1) & (table["alt"].str.len() == 1)]
    if table.empty:
        raise BiolmError(f"vcf: no variants left to score in {vcf} (region={region}, snvs_only={snvs_only})")
    scores = score_variants(run, table, ref, window_bp, batch_size, strand, rc_average, on_ref_mismatch)
    metrics = None
    if labels:
        scores = attach_labels(scores, labels, label_column)
    elif label_column in scores:
        scores["label"] = scores[label_column]
    if "label" in scores and scores["label"].notna().any():
        metrics = evaluate_scores(scores, roc_png=f"{_stem(output)}.roc.png")
        metrics.update({"method": str(scores["method"].iloc[0]), "model": str(scores["model"].iloc[0]), "window_bp": int(window_bp)})
        with atomic_path(f"{_stem(output)}.metrics.json") as tmp:
            tmp.write_text(json.dumps(metrics, indent=2) + "\n")
    write_table(scores, output)
    if is_vcf and annotated_vcf != "":
        target = annotated_vcf or f"{_stem(output)}.vcf.gz"
        count = annotate_vcf(vcf, scores, target)
        log.info("annotated VCF (INFO BIOLM_SCORE on %d records) written to %s", count, target)
    return scores, metrics

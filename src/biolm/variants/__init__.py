"""Variants: VCF filtering and QC, per-sample sequence datasets, variant effect scores, mutagenesis.

    filter_vcf(vcf, output, min_qual=30, min_dp=10)                      -> FilterReport (+ VCF, QC JSON)
    sample_qc(vcf, "qc/", samples="sheet.tsv")                           -> SampleQcResult (sex check + call rate; folder)
    check_sex(vcf, {sample: "male", ...}, build="GRCh38")                -> SexCheck (F, inferred sex per sample)
    variant_dataset(vcf, reference, region, labels=...)                  -> DataFrame id, sample, sequence, label
    variant_window_dataset(labels, reference, output="windows/")         -> {train, val, test}: id, ..., sequence, label
    score_variants(run, [(chrom, pos, ref, alt), ...], reference, 512)   -> DataFrame ..., score, method, model
    in_silico_mutagenesis(run, reference, region, output="ism/")         -> DataFrame (3 rows per position)

`run` may be a folder or a run loaded once with `load_scoring_run` (what a service should keep), or a
public LM checkpoint loaded with `biolm.runs.load_pretrained_language_model` (zero-shot, no run).
"""

from biolm.variants.dataset import variant_dataset
from biolm.variants.evaluation import annotate_vcf, attach_labels, evaluate_scores
from biolm.variants.ism import in_silico_mutagenesis
from biolm.variants.reference import Reference, parse_region
from biolm.variants.sample_qc import sample_qc
from biolm.variants.scoring import load_scoring_run, score_variants
from biolm.variants.sex_check import check_sex
from biolm.variants.vcf import filter_vcf, read_variants
from biolm.variants.window_dataset import variant_window_dataset

__all__ = [
    "Reference",
    "annotate_vcf",
    "attach_labels",
    "check_sex",
    "evaluate_scores",
    "filter_vcf",
    "in_silico_mutagenesis",
    "load_scoring_run",
    "parse_region",
    "read_variants",
    "sample_qc",
    "score_variants",
    "variant_dataset",
    "variant_window_dataset",
]

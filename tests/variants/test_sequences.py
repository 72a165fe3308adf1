"""Alleles applied to sequences: indels by hand, per-sample haplotypes, strands, centred windows."""

from __future__ import annotations

import pandas as pd
import pytest

from biolm.data.genome import reverse_complement
from biolm.errors import BiolmError
from biolm.variants import variant_dataset
from biolm.variants.reference import Reference
from biolm.variants.sequences import apply_alleles, sample_sequences, variant_windows

#            genome positions 101..110 (1-based)
SEQ = "ACGTACGTAC"


@pytest.mark.parametrize(
    "alleles, expected",
    [
        ([(101, "A", "G")], "GCGTACGTAC"),  # SNV at the first base
        ([(110, "C", "T")], "ACGTACGTAT"),  # SNV at the last base
        ([(103, "GTA", "G")], "ACGCGTAC"),  # deletion of TA (VCF anchor base G kept)
        ([(103, "G", "GTTT")], "ACGTTTTACGTAC"),  # insertion of TTT after position 103
        ([(102, "CG", "TT")], "ATTTACGTAC"),  # MNV
        ([(102, "C", "T"), (105, "ACG", "A"), (109, "A", "AGG")], "ATGTATAGGC"),  # several, right to left order irrelevant
        ([(109, "A", "AGG"), (102, "C", "T"), (105, "ACG", "A")], "ATGTATAGGC"),
    ],
)
def test_apply_alleles_hand_made_cases(alleles, expected):
    assert apply_alleles(SEQ, 100, alleles) == (expected, 0)


def test_overlapping_or_outside_alleles_are_skipped_and_counted():
    seq, skipped = apply_alleles(SEQ, 100, [(103, "GTA", "G"), (104, "T", "C"), (110, "CA", "C")])
    assert (seq, skipped) == ("ACGCGTAC", 2)
    with pytest.raises(BiolmError, match="REF does not match"):
        apply_alleles(SEQ, 100, [(101, "C", "G")])


@pytest.fixture
def sample_vcf(tmp_path, make_vcf, chr1):
    # pos 11 SNV (s1 het on slot 2, s2 hom), pos 21 deletion of 2 bases (s1 slot 1), pos 31 insertion (s2 het slot 1),
    # pos 41 multi-allelic (s1 allele 2 on slot 1, s2 missing)
    rows = [
        f"chr1\t11\t.\t{chr1[10]}\t{'A' if chr1[10] != 'A' else 'C'}\t50\tPASS\t.\tGT\t0|1\t1|1",
        f"chr1\t21\t.\t{chr1[20:23]}\t{chr1[20]}\t50\tPASS\t.\tGT\t1|0\t0|0",
        f"chr1\t31\t.\t{chr1[30]}\t{chr1[30]}GG\t50\tPASS\t.\tGT\t0|0\t1|0",
        f"chr1\t41\t.\t{chr1[40]}\tN,{'T' if chr1[40] != 'T' else 'G'}\t50\tPASS\t.\tGT\t2|0\t.|.",
        f"chr1\t200\t.\t{chr1[199]}\tN\t50\tPASS\t.\tGT\t1|1\t1|1",  # outside the region
    ]
    return make_vcf(tmp_path / "s.vcf", rows, ["s1", "s2"])


def test_haplotype_and_consensus_sequences(sample_vcf, reference_fasta, chr1):
    ref = Reference(reference_fasta)
    snv = "A" if chr1[10] != "A" else "C"
    alt41 = "T" if chr1[40] != "T" else "G"

    def edit(seq_edits):
        return apply_alleles(chr1[:60], 0, seq_edits)[0]

    haps = sample_sequences(str(sample_vcf), ref, "chr1:1-60", mode="haplotype").set_index("id")["sequence"]
    assert haps["s1_h1"] == edit([(21, chr1[20:23], chr1[20]), (41, chr1[40], alt41)])
    assert haps["s1_h2"] == edit([(11, chr1[10], snv)])
    assert haps["s2_h1"] == edit([(11, chr1[10], snv), (31, chr1[30], chr1[30] + "GG")])
    assert haps["s2_h2"] == edit([(11, chr1[10], snv)])
    consensus = sample_sequences(str(sample_vcf), ref, "chr1:1-60", mode="consensus").set_index("id")["sequence"]
    assert consensus["s1"] == edit([(11, chr1[10], snv), (21, chr1[20:23], chr1[20]), (41, chr1[40], alt41)])
    minus = sample_sequences(str(sample_vcf), ref, "chr1:1-60", mode="consensus", strand="-").set_index("id")["sequence"]
    assert minus["s1"] == reverse_complement(consensus["s1"])


def test_variant_dataset_with_labels(sample_vcf, reference_fasta, tmp_path):
    labels = tmp_path / "clinical.tsv"
    labels.write_text("sample\tlabel\ns1\tcase\n")
    out = tmp_path / "risk.csv"
    frame = variant_dataset(sample_vcf, reference_fasta, "chr1:1-60", labels=labels, output=str(out), mode="consensus")
    assert frame[["id", "label"]].values.tolist() == [["s1", "case"]]
    assert pd.read_csv(out)["sequence"].iloc[0] == frame["sequence"].iloc[0]
    labels.write_text("sample\tlabel\nzz\tcase\n")
    with pytest.raises(BiolmError, match="no sample of"):
        variant_dataset(sample_vcf, reference_fasta, "chr1:1-60", labels=labels)


def test_dataset_ref_mismatch_error_or_skip(tmp_path, make_vcf, reference_fasta, chr1):
    wrong = "A" if chr1[4] != "A" else "C"
    vcf = make_vcf(tmp_path / "m.vcf", [f"chr1\t5\t.\t{wrong}\tG\t50\tPASS\t.\tGT\t1|1"], ["s1"])
    with pytest.raises(BiolmError, match="does not match the reference"):
        variant_dataset(vcf, reference_fasta, "chr1:1-60")
    frame = variant_dataset(vcf, reference_fasta, "chr1:1-60", on_ref_mismatch="skip", mode="consensus")
    assert frame["sequence"].iloc[0] == chr1[:60]


def test_windows_are_centred_and_equal_length(reference_fasta, chr1):
    ref = Reference(reference_fasta)
    variants = pd.DataFrame(
        {"chrom": ["chr1"] * 3, "pos": [201, 201, 201], "ref": [chr1[200], chr1[200:204], chr1[200]], "alt": ["N", chr1[200], chr1[200] + "TT"]}
    )
    w = variant_windows(variants, ref, 20, "+")
    assert all(len(s) == 20 for s in w.ref + w.alt)
    assert w.offset.tolist() == [10, 10, 10]
    assert w.ref[0] == chr1[190:210]
    assert w.alt[0] == chr1[190:200] + "N" + chr1[201:210]
    assert w.alt[1] == chr1[190:201] + chr1[204:213]  # deletion: reads 3 bases further right
    assert w.alt[2] == chr1[190:201] + "TT" + chr1[201:208]  # insertion: 2 bases fewer on the right


def test_minus_strand_windows_are_reverse_complements(reference_fasta, chr1):
    ref = Reference(reference_fasta)
    variants = pd.DataFrame({"chrom": ["chr1"], "pos": [101], "ref": [chr1[100]], "alt": ["N"]})
    plus, minus = variant_windows(variants, ref, 21, "+"), variant_windows(variants, ref, 21, "-")
    assert minus.ref[0] == reverse_complement(plus.ref[0]) and minus.alt[0] == reverse_complement(plus.alt[0])
    assert minus.alt[0][minus.offset[0]] == "N" and plus.alt[0][plus.offset[0]] == "N"
    with pytest.raises(BiolmError, match="strand"):
        variant_windows(variants, ref, 21, "forward")


def test_windows_near_the_edge_shift_inside(reference_fasta, chr1):
    ref = Reference(reference_fasta)
    variants = pd.DataFrame({"chrom": ["chr1"], "pos": [3], "ref": [chr1[2]], "alt": ["N"]})
    w = variant_windows(variants, ref, 50, "+")
    assert w.ref[0] == chr1[:50] and w.offset[0] == 2 and w.alt[0][2] == "N"

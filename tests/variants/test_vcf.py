"""VCF reading, splitting, filters, sample QC and errors on bad files."""

from __future__ import annotations

import gzip
import json

import pytest
from cyvcf2 import VCF

from biolm.errors import BiolmError
from biolm.variants import filter_vcf, read_variants
from biolm.variants.vcf import read_genotypes

SAMPLES = ["s1", "s2", "s3", "s4"]
# pos  why it should be kept or dropped (min_qual=30, min_dp=10, min_sample_dp=5, min_call_rate=0.75)
ROWS = [
    "chr1\t10\tkeep1\tA\tC\t50\tPASS\tDP=20\tGT:DP\t0/1:10\t0/0:10\t0/0:10\t0/0:10",
    "chr1\t20\tlowqual\tA\tG\t20\tPASS\tDP=20\tGT:DP\t0/1:10\t0/0:10\t0/0:10\t0/0:10",
    "chr1\t30\tfailfilter\tC\tT\t60\tLowQual\tDP=20\tGT:DP\t0/1:10\t0/0:10\t0/0:10\t0/0:10",
    "chr1\t40\tlowdp\tG\tA\t60\t.\tDP=9\tGT:DP\t0/1:10\t0/0:10\t0/0:10\t0/0:10",
    "chr1\t50\tnodp\tG\tA\t60\tPASS\t.\tGT:DP\t0/1:10\t0/0:10\t0/0:10\t0/0:10",
    "chr1\t60\tnoqual\tT\tA\t.\tPASS\tDP=30\tGT:DP\t0/1:10\t0/0:10\t0/0:10\t0/0:10",
    "chr1\t70\tlowcallrate\tT\tC\t60\tPASS\tDP=30\tGT:DP\t0/1:10\t0/0:2\t./.:.\t0/0:10",
    "chr1\t80\tkeep2\tAC\tA,ACT\t99\t.\tDP=30\tGT:DP\t1/2:10\t0/1:10\t0/0:10\t0/0:4",
]


def test_filters_keep_exactly_the_expected_records(tmp_path, make_vcf):
    vcf = make_vcf(tmp_path / "calls.vcf", ROWS, SAMPLES)
    out = tmp_path / "pass.vcf.gz"
    report = filter_vcf(vcf, out, min_qual=30, min_dp=10, min_sample_dp=5, min_call_rate=0.75)
    kept = [record.ID for record in VCF(str(out))]
    assert kept == ["keep1", "keep2"]
    assert dict(report.dropped_records) == {
        "qual_below_min": 1, "filter_not_pass": 1, "info_dp_below_min": 1, "info_dp_missing": 1, "qual_missing": 1, "call_rate_below_min": 1,
    }
    assert (report.input_records, report.kept_records) == (8, 2)
    saved = json.loads((tmp_path / "pass.vcf.gz.qc.json").read_text())
    assert saved["records"]["dropped"]["qual_missing"] == 1
    with open(out, "rb") as handle:
        assert handle.read(2) == b"\x1f\x8b"  # bgzip


def test_without_thresholds_only_filter_status_counts(tmp_path, make_vcf):
    vcf = make_vcf(tmp_path / "calls.vcf", ROWS, SAMPLES)
    report = filter_vcf(vcf, tmp_path / "out.vcf")
    assert report.kept_records == 7 and dict(report.dropped_records) == {"filter_not_pass": 1}
    report = filter_vcf(vcf, tmp_path / "out2.vcf", require_pass=False)
    assert report.kept_records == 8


def test_sample_missingness_and_heterozygosity_qc(tmp_path, make_vcf):
    # s4 is missing at 3 of 4 sites; s1 is heterozygous everywhere, s2 and s3 never, s5 once.
    rows = [
        f"chr1\t{p}\t.\tA\tC\t50\tPASS\tDP=20\tGT\t0/1\t0/0\t1/1\t{g}\t{h}"
        for p, g, h in ((10, "./.", "0/1"), (20, "./.", "0/0"), (30, "./.", "0/0"), (40, "0/0", "0/0"))
    ]
    vcf = make_vcf(tmp_path / "calls.vcf", rows, ["s1", "s2", "s3", "s4", "s5"])
    out = tmp_path / "qc.vcf"
    report = filter_vcf(vcf, out, max_sample_missing=0.5, max_het_z=1.5)
    assert set(report.dropped_samples) == {"s4", "s1"}
    assert "missing genotypes 0.750" in report.dropped_samples["s4"]
    assert "heterozygosity 1.000" in report.dropped_samples["s1"]
    assert list(VCF(str(out)).samples) == ["s2", "s3", "s5"]


def test_multiallelic_sites_are_split_and_symbolic_alleles_skipped(tmp_path, make_vcf):
    rows = ["chr1\t5\tm\tA\tC,G,<DEL>\t50\tPASS\tDP=3", "chr1\t9\td\tACGTACGT\tA\t50\tPASS\tDP=3", "chr1\t12\ts\tG\t*\t50\tPASS\t."]
    variants, skipped = read_variants(make_vcf(tmp_path / "v.vcf", rows), max_indel_bp=5)
    assert variants[["pos", "ref", "alt", "allele"]].values.tolist() == [[5, "A", "C", 1], [5, "A", "G", 2]]
    assert dict(skipped) == {"symbolic_or_missing_alt": 2, "indel_too_long": 1}
    assert variants["dp"].tolist() == [3.0, 3.0]


def test_genotypes_of_multiallelic_and_haploid_calls(tmp_path, make_vcf):
    rows = ["chr1\t5\t.\tA\tC,G\t50\tPASS\t.\tGT\t1|2\t./.\t2"]
    names, records, genotypes = read_genotypes(make_vcf(tmp_path / "g.vcf", rows, ["a", "b", "c"]))
    assert names == ["a", "b", "c"]
    assert records["alts"].iloc[0] == ["C", "G"]
    assert genotypes[0].tolist() == [[1, 2], [-1, -1], [2, 2]]


@pytest.mark.parametrize(
    "text, message",
    [
        ("hello\nworld\n", "data before the"),
        ("##fileformat=VCFv4.2\n", "no '#CHROM"),
        ("##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\nchr1\tabc\t.\tA\tC\t.\t.\t.\n", "line 3: POS 'abc' is not a positive integer"),
        ("##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\nchr1\t5\t.\tA\n", "line 3: 4 tab-separated columns"),
        ("##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\nchr1\t5\t.\t\tC\t.\t.\t.\n", "line 3: empty REF or ALT"),
    ],
)
def test_bad_vcfs_give_clear_errors(tmp_path, text, message):
    path = tmp_path / "bad.vcf"
    path.write_text(text)
    with pytest.raises(BiolmError, match=message):
        read_variants(path)
    gz = tmp_path / "bad.vcf.gz"
    gz.write_bytes(gzip.compress(text.encode()))
    with pytest.raises(BiolmError, match=message):
        filter_vcf(gz, tmp_path / "out.vcf")
    assert not (tmp_path / "out.vcf").exists()


def test_missing_file_and_unknown_sample(tmp_path, make_vcf):
    with pytest.raises(BiolmError, match="file not found"):
        read_variants(tmp_path / "nope.vcf")
    vcf = make_vcf(tmp_path / "g.vcf", ["chr1\t5\t.\tA\tC\t50\tPASS\t.\tGT\t0/1"], ["a"])
    with pytest.raises(BiolmError, match="samples: zz not in"):
        read_genotypes(vcf, ["zz"])


def test_bundled_1000g_vcf_reads_whole(tmp_path):
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "data/variants/brca1_1000g_grch37/brca1_1kgPhase3_variants.vcf.gz"
    variants, skipped = read_variants(path)
    assert len(variants) + sum(skipped.values()) >= 2052  # records, some multi-allelic
    report = filter_vcf(path, tmp_path / "pass.vcf.gz", min_qual=30, min_dp=10)
    assert report.kept_records == report.input_records == 2052  # QUAL 100, DP >= 942 everywhere (SOURCES.md)

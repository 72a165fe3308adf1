"""Inputs that used to stop a variants command: short contigs, sites-only VCFs, VCFs without
``##contig`` lines, repeated keys in label tables, ragged FASTA. Each either works or is one
`BiolmError` line (CLI: exit 2)."""

from __future__ import annotations

import json
import random

import numpy as np
import pandas as pd
import pytest
from cyvcf2 import VCF

from biolm.cli import main
from biolm.errors import BiolmError
from biolm.variants import Reference, filter_vcf, in_silico_mutagenesis, read_variants, score_variants, variant_dataset
from biolm.variants.sequences import variant_windows
from biolm.variants.vcf import check_vcf_text

random.seed(11)
SHORT = "".join(random.choice("ACGT") for _ in range(40))  # contig chrS: shorter than the 64 bp window
WINDOW = 64


def _alt(base: str) -> str:
    return "A" if base != "A" else "C"


@pytest.fixture(scope="module")
def genome(tmp_path_factory, chr1):
    """chr1 (400 bp, the suite's reference), chrS (40 bp) and chrU (2 bp)."""
    path = tmp_path_factory.mktemp("short_ref") / "ref.fa"
    path.write_text(f">chr1\n{chr1}\n>chrS\n{SHORT}\n>chrU\nAC\n")
    return path


def _variants(chr1: str) -> list[tuple]:
    return [("chrS", 20, SHORT[19], _alt(SHORT[19])), ("chr1", 200, chr1[199], _alt(chr1[199]))]


# ---- 1. a contig shorter than the window ------------------------------------------------------


@pytest.mark.parametrize("run_name, rc_average", [("clm_run", False), ("mlm_char_run", True)])
def test_short_contig_scored_with_the_whole_contig_and_the_rest_unaffected(request, genome, chr1, run_name, rc_average):
    run = request.getfixturevalue(run_name)
    both = score_variants(run, _variants(chr1), genome, window_bp=WINDOW, rc_average=rc_average)
    assert both["score"].notna().all()
    assert both["window_bp"].tolist() == [40, WINDOW]
    assert both["note"].tolist() == ["contig_shorter_than_window: scored with a 40 bp window", ""]
    alone = score_variants(run, _variants(chr1)[1:], genome, window_bp=WINDOW, rc_average=rc_average)
    assert both["score"].iloc[1] == pytest.approx(alone["score"].iloc[0], abs=1e-6)
    whole_contig = score_variants(run, _variants(chr1)[:1], genome, window_bp=40, rc_average=rc_average)
    assert both["score"].iloc[0] == pytest.approx(whole_contig["score"].iloc[0], abs=1e-6)


def test_short_contig_windows_and_a_contig_too_short_for_the_alleles(genome, clm_run):
    deletion = pd.DataFrame({"chrom": ["chrS"], "pos": [38], "ref": [SHORT[37:39]], "alt": [SHORT[37]]})
    windows = variant_windows(deletion, Reference(genome), WINDOW)
    assert windows.width.tolist() == [39] and windows.ref[0] == SHORT[:39] and len(windows.alt[0]) == 39
    assert windows.alt[0] == SHORT[:38] + SHORT[39:40]
    # chrU holds 2 bp: a 2 bp deletion's windows need 1 more base than it has.
    too_short = ("chrU", 1, "AC", "A")
    scores = score_variants(clm_run, [too_short, ("chrS", 5, SHORT[4], _alt(SHORT[4]))], genome, window_bp=WINDOW)
    assert np.isnan(scores["score"].iloc[0]) and scores["note"].iloc[0].startswith("contig_too_short")
    assert np.isfinite(scores["score"].iloc[1])
    with pytest.raises(BiolmError, match="holds only 2 bp"):
        variant_windows(pd.DataFrame([too_short], columns=["chrom", "pos", "ref", "alt"]), Reference(genome), WINDOW)


def test_cli_score_and_ism_on_a_short_contig(tmp_path, genome, chr1, clm_run, make_vcf):
    rows = [f"{c}\t{p}\t.\t{r}\t{a}\t50\tPASS\tDP=20" for c, p, r, a in _variants(chr1)]
    vcf = make_vcf(tmp_path / "short_contig.vcf", rows)
    out = tmp_path / "s.tsv"
    assert main(["variants", "score", f"run={clm_run}", f"vcf={vcf}", f"ref={genome}", f"window_bp={WINDOW}", f"out={out}"]) == 0
    table = pd.read_csv(out, sep="\t")
    assert table["score"].notna().all() and table["window_bp"].tolist() == [40, WINDOW]
    assert [r.INFO.get("BIOLM_SCORE") is not None for r in VCF(str(tmp_path / "s.vcf.gz"))] == [True, True]
    ism = in_silico_mutagenesis(clm_run, genome, "chrS:1-40", output=tmp_path / "ism", window_bp=WINDOW)
    assert len(ism) == 120 and set(ism["window_bp"]) == {40} and ism["score"].notna().all()
    assert main(["variants", "ism", f"run={clm_run}", f"ref={genome}", "region=chrS:11-15", f"window_bp={WINDOW}", f"out={tmp_path / 'ism2'}"]) == 0
    assert set(pd.read_csv(tmp_path / "ism2" / "ism.tsv", sep="\t")["window_bp"]) == {40}


# ---- 2. a VCF without samples ----------------------------------------------------------------


def _one_line(capsys) -> str:
    """The CLI's error line (log lines may come before it); no traceback."""
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if ": error: " in line]
    assert len(errors) == 1 and "Traceback" not in err, err
    return errors[0]


def test_sites_only_vcf_in_every_command(tmp_path, make_vcf, reference_fasta, chr1, clm_run, capsys):
    rows = [f"chr1\t{p}\t.\t{chr1[p - 1]}\t{_alt(chr1[p - 1])}\t{q}\tPASS\tDP=20" for p, q in ((30, 50), (90, 10), (120, 50))]
    sites = make_vcf(tmp_path / "sites_only.vcf", rows)
    labels = tmp_path / "clinical.csv"
    labels.write_text("sample,label\ns1,case\n")
    assert main(["variants", "dataset", f"vcf={sites}", f"ref={reference_fasta}", "region=chr1:1-150", f"labels={labels}", f"out={tmp_path / 'd.csv'}"]) == 2
    err = _one_line(capsys)
    assert "has no samples" in err and "cannot make per-sample sequences" in err and str(sites) in err
    assert not (tmp_path / "d.csv").exists()

    assert main(["variants", "filter", f"in={sites}", f"out={tmp_path / 'f.vcf.gz'}", "min_qual=30", "min_call_rate=0.9", "max_het_z=3"]) == 2
    err = _one_line(capsys)
    assert "has no samples" in err and "min_call_rate=0.9, max_het_z=3" in err and "min_qual" in err
    assert main(["variants", "filter", f"in={sites}", f"out={tmp_path / 'f.vcf.gz'}", "min_qual=30"]) == 0
    assert [r.POS for r in VCF(str(tmp_path / "f.vcf.gz"))] == [30, 120]

    assert main(["variants", "score", f"run={clm_run}", f"vcf={sites}", f"ref={reference_fasta}", "window_bp=32", f"out={tmp_path / 's.tsv'}"]) == 0
    assert pd.read_csv(tmp_path / "s.tsv", sep="\t")["score"].notna().sum() == 3


# ---- 3. a VCF without ##contig (or other) header lines ---------------------------------------


NO_CONTIG = (
    "##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\ts1\n"
    "17\t41196400\ta\tA\tG\t50\tPASS\tDP=20;SOMATIC\tGT:DP\t0/1:12\n"
    "17\t41196410\tb\tC\tT\t20\tPASS\tDP=5\tGT:DP\t0/0:3\n"
    "X\t100\tc\tG\tA\t60\tPASS\tDP=30\tGT:DP\t1/1:40\n"
    "X\t200\td\tG\tA\t60\tLowGQ\tDP=30\tGT:DP\t1/1:40\n"
)


@pytest.mark.parametrize("suffix", [".vcf", ".vcf.gz"])
def test_filter_declares_the_contigs_and_tags_the_header_lacks(tmp_path, suffix, capsys):
    source = tmp_path / "no_contig_lines.vcf"
    source.write_text(NO_CONTIG)
    out = tmp_path / f"f{suffix}"
    assert main(["variants", "filter", f"in={source}", f"out={out}", "min_qual=30", "min_sample_dp=10"]) == 0
    reader = VCF(str(out))
    assert [(r.CHROM, r.POS, r.ID) for r in reader] == [("17", 41196400, "a"), ("X", 100, "c")]
    assert reader.seqnames == ["17", "X"]
    assert '##INFO=<ID=DP,Number=1,Type=Integer' in reader.raw_header and "##INFO=<ID=SOMATIC,Number=0,Type=Flag" in reader.raw_header
    assert "##FILTER=<ID=LowGQ" in reader.raw_header
    variants, _ = read_variants(out)
    assert variants["dp"].tolist() == [20.0, 30.0]  # an undeclared DP is still a number
    report = json.loads((tmp_path / f"f{suffix}.qc.json").read_text())
    assert report["records"]["dropped"] == {"qual_below_min": 1, "filter_not_pass": 1}


@pytest.mark.parametrize(
    "text, message",
    [
        (NO_CONTIG.replace("##fileformat=VCFv4.2\n", '##fileformat=VCFv4.2\n##INFO=<ID=DP,Number=1,Type=Int,Description="d">\n'),
         r"line 2: header line .* has Type=Int \(accepted: Integer"),
        (NO_CONTIG.replace("##fileformat=VCFv4.2\n", "##fileformat=VCFv4.2\n##INFO=<ID=DP,Number=1\n"), "line 2: header line .* does not end with '>'"),
        (NO_CONTIG + "\n", "line 7: a blank line among the records"),
        (NO_CONTIG.replace("\t0/0:3\n", "\t0/0:3\t0/1\n"), "line 4: 11 tab-separated columns, but the #CHROM line has 10"),
        (NO_CONTIG.replace("FORMAT\ts1", "FORMAT\ts1\ts1").replace(":12\n", ":12\t0/0:1\n"), "sample 's1' is listed twice in the #CHROM line"),
        (NO_CONTIG.replace("#CHROM\tPOS\tID", "#CHROM\tID\tPOS"), "line 2: the header line must start with #CHROM POS ID"),
        (NO_CONTIG.replace("##fileformat=VCFv4.2\n", '##fileformat=VCFv4.2\n##INFO=<ID=>DP,Number=1,Type=Integer,Description="d">\n'),
         "line 2: header line .* needs ID=<name> first"),
        (NO_CONTIG.replace("PASS\tDP=5", "\tDP=5"), "line 4: column FILTER is empty; write '.'"),
        (NO_CONTIG.replace("DP=5", "DP=5; X"), "line 4: INFO name ' X' is not valid"),
        (NO_CONTIG.replace("DP=5", "DP=5\x00"), "line 4: a NUL byte"),
        (NO_CONTIG + "##INFO=<ID=AF,Number=A,Type=Float,Description=\"late\">\n", "line 7: a header line after the #CHROM line"),
    ],
)
def test_malformed_headers_and_records_name_the_line(tmp_path, text, message):
    path = tmp_path / "bad.vcf"
    path.write_text(text)
    with pytest.raises(BiolmError, match=message):
        check_vcf_text(path)
    with pytest.raises(BiolmError, match=message):
        filter_vcf(path, tmp_path / "out.vcf")
    assert not (tmp_path / "out.vcf").exists()


def test_genotype_allele_beyond_the_alts_names_the_record(tmp_path, make_vcf, reference_fasta, chr1):
    vcf = make_vcf(tmp_path / "g.vcf", [f"chr1\t30\t.\t{chr1[29]}\t{_alt(chr1[29])}\t50\tPASS\t.\tGT\t0|1\t0/9"], ["s1", "s2"])
    with pytest.raises(BiolmError, match="data record 1: sample 's2' has allele 9 in GT, but the record has 1 ALT"):
        variant_dataset(vcf, reference_fasta, "chr1:1-60")


# ---- 4. a key listed twice where two inputs are joined ---------------------------------------


@pytest.mark.parametrize("second", ["control", "case"])
def test_sample_labels_listing_a_sample_twice(tmp_path, make_vcf, reference_fasta, chr1, second, capsys):
    vcf = make_vcf(tmp_path / "calls.vcf", [f"chr1\t30\t.\t{chr1[29]}\t{_alt(chr1[29])}\t50\tPASS\t.\tGT\t0|1\t1|1"], ["s1", "s2"])
    labels = tmp_path / "clinical.tsv"
    labels.write_text(f"sample\tlabel\ns1\tcase\ns2\tcontrol\ns1\t{second}\n")
    assert main(["variants", "dataset", f"vcf={vcf}", f"ref={reference_fasta}", "region=chr1:1-60", f"labels={labels}", f"out={tmp_path / 'd.csv'}"]) == 2
    err = _one_line(capsys)
    assert f"{labels} line 4: sample 's1' is listed again (first on line 2; labels 'case' and '{second}')" in err
    labels.write_text("sample\tlabel\ns1\tcase\ns2\tcontrol\n")
    assert len(variant_dataset(vcf, reference_fasta, "chr1:1-60", labels)) == 4


def test_variant_labels_listing_a_variant_twice(tmp_path, make_vcf, reference_fasta, chr1, clm_run, capsys):
    vcf = make_vcf(tmp_path / "v.vcf", [f"chr1\t{p}\t.\t{chr1[p - 1]}\t{_alt(chr1[p - 1])}\t50\tPASS\t." for p in (30, 60)])
    labels = tmp_path / "labels.csv"
    ref, alt = chr1[29], _alt(chr1[29])
    labels.write_text(f"chrom,pos,ref,alt,label\nchr1,30,{ref},{alt},pathogenic\nchr1,60,{chr1[59]},{_alt(chr1[59])},benign\n1,30,{ref.lower()},{alt},benign\n")
    args = ["variants", "score", f"run={clm_run}", f"vcf={vcf}", f"ref={reference_fasta}", "window_bp=32", f"out={tmp_path / 's.tsv'}", f"labels={labels}"]
    assert main(args) == 2
    err = _one_line(capsys)
    assert f"{labels} line 4: variant 1:30 {ref.lower()}>{alt} is listed again (first on line 2; labels 'pathogenic' and 'benign')" in err
    assert not (tmp_path / "s.tsv").exists()


# ---- references pyfaidx cannot index ---------------------------------------------------------


def test_ragged_fasta_is_read_into_memory(tmp_path, chr1):
    path = tmp_path / "ragged.fa"
    path.write_text(">chr1\n" + chr1[:70] + "\n" + chr1[70:100] + "\n" + chr1[100:] + "\n>chrS\n" + SHORT + "\n")
    reference = Reference(path)
    assert reference.fetch("chr1", 60, 110) == chr1[60:110] and reference.fetch("chrS", 0, 40) == SHORT
    (tmp_path / "empty.fa").write_text("")
    with pytest.raises(BiolmError, match="empty"):
        Reference(tmp_path / "empty.fa")

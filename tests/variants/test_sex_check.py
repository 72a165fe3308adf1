"""The sex check (PLINK --check-sex F on X outside PAR, Y counts), `biolm variants qc` and `variants dataset exclude=`."""

from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd
import pytest

from biolm.cli import main
from biolm.errors import BiolmError
from biolm.variants import check_sex, sample_qc, variant_dataset
from biolm.variants.dataset import read_sample_list
from biolm.variants.sample_qc import read_sample_sheet
from biolm.variants.sex_check import cohort_alt_freq, inbreeding_f

GRCH38_X = 156040895
PAR1_POS = 500_000  # inside GRCh38 PAR1 (10001-2781479) and GRCh37 PAR1 (60001-2699520)


def x_vcf(path, rows, samples, x_length: int | None = GRCH38_X, extra_header: str = ""):
    """A VCF with chrX (and chrY, chr1) contigs; ``rows`` are (chrom, pos, gts[, info]) tuples."""
    length = f",length={x_length}" if x_length else ""
    header = (
        "##fileformat=VCFv4.2\n##contig=<ID=chr1,length=248956422>\n"
        f"##contig=<ID=chrX{length}>\n##contig=<ID=chrY,length=57227415>\n"
        '##INFO=<ID=AF,Number=A,Type=Float,Description="ALT frequency">\n'
        '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">\n' + extra_header
    )
    columns = ["#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO"] + (["FORMAT", *samples] if samples else [])
    lines = []
    for row in rows:
        chrom, pos, gts = row[:3]
        info = row[3] if len(row) > 3 else "."
        lines.append("\t".join([chrom, str(pos), ".", "A", "G", ".", "PASS", info] + (["GT", *gts] if samples else [])))
    path.write_text(header + "\t".join(columns) + "\n" + "".join(line + "\n" for line in lines))
    return path


def cohort(path, n_sites: int = 60, seed: int = 3, extra_rows=(), y_sites: int = 5):
    """Deterministic small cohort: f1-f3 female (diploid HWE), m1-m3 male (haploid non-PAR X, called on Y)."""
    rng = np.random.default_rng(seed)
    samples = ["f1", "f2", "f3", "m1", "m2", "m3"]
    rows = []
    for i in range(n_sites):
        p = 0.3 + 0.2 * (i % 2)
        gts = [f"{int(a)}/{int(b)}" for a, b in rng.random((3, 2)) < p] + [str(int(a)) for a in rng.random(3) < p]
        rows.append(("chrX", 5_000_000 + 1000 * i, gts, f"AF={p}"))
    for i in range(y_sites):
        rows.append(("chrY", 3_000_000 + 1000 * i, [".", ".", ".", "0", "1", "0"]))
    rows.extend(extra_rows)
    rows.sort(key=lambda r: (["chr1", "chrX", "chrY"].index(r[0]), r[1]))
    return x_vcf(path, rows, samples), samples


SHEET = "sample\tsex\nf1\tF\nf2\t2\nf3\tfemale\nm1\tM\nm2\t1\nm3\tmale\n"


def test_f_matches_the_formula_by_hand():
    # p = 0.5, 0.2, 0.1, 0.0 (monomorphic: counts for no one); 1 - 2pq = 0.5, 0.68, 0.82
    codes = np.array([
        [1, -1, 0],   # site 1: a het, b missing, c hom-ref
        [0, 1, 0],    # site 2
        [2, 0, 2],    # site 3
        [1, 1, 1],    # site 4 (monomorphic by its given p)
    ], dtype=np.int8)
    f, n, observed, expected = inbreeding_f(codes, np.array([0.5, 0.2, 0.1, 0.0]))
    # a: N=3, O=2, E=0.5+0.68+0.82=2.0 -> F=(2-2)/(3-2)=0
    # b: N=2, O=1, E=0.68+0.82=1.5      -> F=(1-1.5)/(2-1.5)=-1
    # c: N=3, O=3, E=2.0                -> F=(3-2)/(3-2)=1
    assert n.tolist() == [3, 2, 3] and observed.tolist() == [2, 1, 3]
    assert expected == pytest.approx([2.0, 1.5, 2.0])
    assert f == pytest.approx([0.0, -1.0, 1.0])


def test_cohort_frequency_counts_one_allele_per_male():
    # female 0/1 (1 ALT of 2), male haploid 1 (1 of 1), male 1/1 (1 of 1), male 0/1 (left out), female missing
    codes = np.array([[1, 2, 2, 1, -1]], dtype=np.int8)
    haploid = np.array([[False, True, False, False, False]])
    male = np.array([False, True, True, True, False])
    assert cohort_alt_freq(codes, haploid, male) == pytest.approx([3 / 4])
    # counted as diploid (no reported sex): 1 + 1 + 2 + 1 ALT of 2 + 1 + 2 + 2 alleles
    assert cohort_alt_freq(codes, haploid, np.zeros(5, bool)) == pytest.approx([5 / 7])


def test_vcf_f_with_given_frequencies_and_haploid_calls(tmp_path):
    # two samples, three non-PAR X sites with INFO/AF 0.5, 0.2, 0.1: hap is haploid (0, 1, .) -> all homozygous
    rows = [("chrX", 5_000_000, ["0/1", "0"], "AF=0.5"), ("chrX", 5_001_000, ["0/0", "1"], "AF=0.2"), ("chrX", 5_002_000, ["1/1", "."], "AF=0.1")]
    vcf = x_vcf(tmp_path / "x.vcf", rows, ["dip", "hap"])
    table = check_sex(vcf, freq="info", ycount=False).table.set_index("sample")
    # dip: O=2, E=0.5+0.68+0.82=2.0, N=3 -> F=0 (INFO/AF is a float32: compare to 1e-6)
    assert table.loc["dip", "F"] == pytest.approx(0.0, abs=1e-6) and table.loc["dip", "expected_hom"] == pytest.approx(2.0)
    # hap: sites 1-2 called, both homozygous: O=2, E=0.5+0.68=1.18 -> F=1
    assert (table.loc["hap", "n_sites"], table.loc["hap", "observed_hom"]) == (2, 2)
    assert table.loc["hap", "F"] == pytest.approx(1.0)
    freq = tmp_path / "freq.tsv"
    freq.write_text("chrom\tpos\tref\talt\talt_freq\nX\t5000000\tA\tG\t0.5\nX\t5001000\tA\tG\t0.2\nX\t5002000\tA\tG\t0.1\n")
    assert check_sex(vcf, freq=str(freq), ycount=False).table["F"].tolist() == pytest.approx([0.0, 1.0])


def test_given_and_cohort_frequencies_differ_as_computed(tmp_path):
    vcf, samples = cohort(tmp_path / "c.vcf")
    reported = dict(zip(samples, ["female"] * 3 + ["male"] * 3))
    given = check_sex(vcf, reported, freq="info")
    from_cohort = check_sex(vcf, reported, freq="cohort")
    assert given.table["expected_hom"].tolist() != pytest.approx(from_cohort.table["expected_hom"].tolist())
    assert given.table["inferred_sex"].tolist() == from_cohort.table["inferred_sex"].tolist() == ["female"] * 3 + ["male"] * 3


def test_par_sites_are_left_out(tmp_path):
    vcf, samples = cohort(tmp_path / "c.vcf")
    with_par, _ = cohort(tmp_path / "par.vcf", extra_rows=[("chrX", PAR1_POS, ["0/1", "0/1", "0/0", "0/1", "0/1", "0/1"])])
    reported = dict(zip(samples, ["female"] * 3 + ["male"] * 3))
    base, par = check_sex(vcf, reported), check_sex(with_par, reported)
    assert par.skipped["x_in_par"] == 1 and base.skipped["x_in_par"] == 0
    assert par.table["F"].tolist() == pytest.approx(base.table["F"].tolist())
    assert par.table.set_index("sample").loc["m1", "F"] == pytest.approx(1.0)


def test_male_with_heterozygous_x_is_flagged(tmp_path):
    vcf, _ = cohort(tmp_path / "c.vcf")
    sheet = tmp_path / "sheet.tsv"
    sheet.write_text(SHEET.replace("f1\tF", "f1\tM"))  # f1 (diploid, heterozygous X) reported male
    result = sample_qc(vcf, tmp_path / "qc", samples=sheet, ycount=False)
    row = result.table.set_index("sample").loc["f1"]
    assert (row["inferred_sex"], row["status"]) == ("female", "PROBLEM")
    assert row["reason"].startswith("sex: reported male, inferred female (F=")
    assert result.failed["sample"].tolist() == ["f1"]


def test_y_counts_downgrade_calls(tmp_path):
    # f1 has called Y genotypes: with ycount a female call needs <= 0 of them (PLINK's default)
    vcf, samples = cohort(tmp_path / "c.vcf", y_sites=0, extra_rows=[("chrY", 3_000_000, ["0", ".", ".", "0", "1", "0"])])
    with_y = check_sex(vcf, ycount=True).table.set_index("sample")
    assert with_y.loc["f1", "y_calls"] == 1 and with_y.loc["f1", "inferred_sex"] == "ambiguous"
    assert with_y.loc["f2", "inferred_sex"] == "female" and with_y.loc["m1", "inferred_sex"] == "male"
    assert check_sex(vcf).table.set_index("sample").loc["f1", "inferred_sex"] == "female"  # ycount is off by default, as in PLINK
    assert check_sex(vcf, ycount=True, female_max_y_calls=1).table.set_index("sample").loc["f1", "inferred_sex"] == "female"
    strict = check_sex(vcf, ycount=True, male_min_y_calls=2).table.set_index("sample")
    assert strict.loc["m1", "inferred_sex"] == "ambiguous"
    no_y, _ = cohort(tmp_path / "noy.vcf", y_sites=0)
    assert "y_calls" not in check_sex(no_y, ycount=True).table.columns


def test_sample_sheet_codes_and_errors(tmp_path, capsys):
    sheet = tmp_path / "sheet.tsv"
    sheet.write_text("sample\tsex\na\t1\nb\tF\nc\tNA\nd\t\ne\tUnknown\n")
    assert read_sample_sheet(sheet) == {"a": "male", "b": "female", "c": "unknown", "d": "unknown", "e": "unknown"}
    vcf, _ = cohort(tmp_path / "c.vcf")
    sheet.write_text("sample\tsex\nf1\tF\nm1\tyes\n")
    assert main(["variants", "qc", f"vcf={vcf}", f"samples={sheet}", f"out={tmp_path / 'qc'}"]) == 2
    err = capsys.readouterr().err
    assert f"{sheet} line 3: sex 'yes' of sample 'm1' is not accepted (accepted: 1/M/male, 2/F/female" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "qc").exists()
    sheet.write_text("id\tgender\nf1\tF\n")
    assert main(["variants", "qc", f"vcf={vcf}", f"samples={sheet}", f"out={tmp_path / 'qc'}"]) == 2
    assert "lacks column(s) sample, sex" in capsys.readouterr().err
    assert main(["variants", "qc", f"vcf={vcf}", f"samples={sheet}", "sample_column=id", "sex_column=gender", f"out={tmp_path / 'qc'}"]) == 0
    sheet.write_text("sample\tsex\nf1\tF\nf1\tF\n")
    assert main(["variants", "qc", f"vcf={vcf}", f"samples={sheet}", f"out={tmp_path / 'qc'}"]) == 2
    assert "line 3: sample 'f1' is listed again (first on line 2; sexes" in capsys.readouterr().err
    assert main(["variants", "qc", f"vcf={vcf}", f"samples={tmp_path / 'none.tsv'}", f"out={tmp_path / 'qc'}"]) == 2
    assert "samples: file not found" in capsys.readouterr().err


def test_bad_vcfs_and_builds(tmp_path, capsys):
    out = f"out={tmp_path / 'qc'}"
    only_par = x_vcf(tmp_path / "par.vcf", [("chr1", 100, ["0/1"]), ("chrX", PAR1_POS, ["0/1"])], ["a"])
    assert main(["variants", "qc", f"vcf={only_par}", out]) == 2
    err = capsys.readouterr().err
    assert "no biallelic SNV on chromosome X (X, chrX or 23) outside the GRCh38 pseudo-autosomal regions" in err
    assert "records per contig: chr1 (1), chrX (1)" in err and "1 in PAR" in err
    sites_only = x_vcf(tmp_path / "sites.vcf", [("chrX", 5_000_000, [])], [])
    assert main(["variants", "qc", f"vcf={sites_only}", out]) == 2
    assert "has no samples (a sites-only VCF" in capsys.readouterr().err
    no_length = x_vcf(tmp_path / "nolen.vcf", [("chrX", 5_000_000, ["0/1"])], ["a"], x_length=None)
    assert main(["variants", "qc", f"vcf={no_length}", out]) == 2
    assert "cannot tell the genome build" in capsys.readouterr().err
    assert main(["variants", "qc", f"vcf={no_length}", out, "build=hg19"]) == 2
    assert "build=hg19: accepted: auto, GRCh37, GRCh38" in capsys.readouterr().err
    bad_gt = x_vcf(tmp_path / "gt.vcf", [("chrX", 5_000_000, ["0/2"])], ["a"])
    assert main(["variants", "qc", f"vcf={bad_gt}", out]) == 2
    assert "data record 1: cannot parse the genotypes (a GT allele index above the record's 1 ALT allele(s))" in capsys.readouterr().err
    with pytest.raises(BiolmError, match="pseudo-autosomal"):  # PAR1 of GRCh37 also holds the position
        check_sex(only_par, build="GRCh37")


def test_cli_end_to_end_writes_every_output(tmp_path, capsys):
    vcf, _ = cohort(tmp_path / "c.vcf", extra_rows=[("chr1", 1000 + i, ["0/1", "./.", "./.", "0/0", "0/1", "0/0"]) for i in range(4)])
    sheet = tmp_path / "sheet.tsv"
    sheet.write_text(SHEET.replace("m3\tmale", "m3\tfemale") + "ghost\tF\n")
    out = tmp_path / "qc"
    assert main(["variants", "qc", f"vcf={vcf}", f"samples={sheet}", f"out={out}", "max_sample_missing=0.5", "ycount=true"]) == 0
    printed = capsys.readouterr().out
    assert "sex check" in printed and "m3" in printed
    assert sorted(p.name for p in out.iterdir()) == ["f_histogram.png", "failed_samples.txt", "qc.json", "report.md", "sex_check.tsv"]
    table = pd.read_csv(out / "sex_check.tsv", sep="\t", keep_default_na=False)
    assert table.columns.tolist() == ["sample", "reported_sex", "inferred_sex", "F", "n_sites", "observed_hom", "expected_hom", "y_calls", "status", "reason"]
    assert table.set_index("sample")["status"].to_dict() == {"f1": "OK", "f2": "PROBLEM", "f3": "PROBLEM", "m1": "OK", "m2": "OK", "m3": "PROBLEM"}
    assert "missing genotypes 1.000 > max_sample_missing 0.5" in table.set_index("sample").loc["f2", "reason"]
    assert read_sample_list(out / "failed_samples.txt") == ["f2", "f3", "m3"]
    summary = json.loads((out / "qc.json").read_text())
    assert summary["reported_vs_inferred"]["female"] == {"female": 3, "male": 1}
    assert summary["not_in_vcf"] == ["ghost"] and summary["settings"]["build"] == "GRCh38"
    assert (out / "f_histogram.png").read_bytes()[:4] == b"\x89PNG"
    assert "| m3 | female | male |" in (out / "report.md").read_text()


def test_dataset_exclude_drops_listed_samples(tmp_path, make_vcf, reference_fasta, chr1, caplog):
    rows = [f"chr1\t{p}\t.\t{chr1[p - 1]}\t{'A' if chr1[p - 1] != 'A' else 'C'}\t50\tPASS\t.\tGT\t0|1\t1|1\t0|0" for p in (30, 60)]
    vcf = make_vcf(tmp_path / "calls.vcf", rows, ["s1", "s2", "s3"])
    exclude = tmp_path / "failed_samples.txt"
    exclude.write_text("# failing samples\ns2\t# sex: reported male, inferred female\nnot_there\n\n")
    out = tmp_path / "ds.csv"
    with caplog.at_level(logging.INFO):
        variant_dataset(vcf, reference_fasta, "chr1:1-100", output=str(out), exclude=exclude)
    assert pd.read_csv(out)["sample"].unique().tolist() == ["s1", "s3"]
    assert main(["variants", "dataset", f"vcf={vcf}", f"ref={reference_fasta}", "region=chr1:1-100", f"out={out}", f"exclude={exclude}"]) == 0
    assert pd.read_csv(out)["id"].tolist() == ["s1_h1", "s1_h2", "s3_h1", "s3_h2"]
    assert "1 samples of" in caplog.text and "not_there" in caplog.text and "1 of 3 samples dropped" in caplog.text
    exclude.write_text("s1\ns2\ns3\n")
    assert main(["variants", "dataset", f"vcf={vcf}", f"ref={reference_fasta}", "region=chr1:1-100", f"out={out}", f"exclude={exclude}"]) == 2


def test_records_where_every_call_is_haploid(tmp_path):
    # a male-only cohort: cyvcf2 gives such records one allele column (plus the phase flag); each call is homozygous
    rows = [("chrX", 5_000_000 + 1000 * i, ["1" if (i + j) % 3 else "0" for j in range(4)] + ["."], "AF=0.4") for i in range(30)]
    vcf = x_vcf(tmp_path / "males.vcf", rows, ["m1", "m2", "m3", "m4", "m5"])
    table = check_sex(vcf, freq="info").table.set_index("sample")
    assert table.loc[["m1", "m2", "m3", "m4"], "F"].tolist() == pytest.approx([1.0] * 4)
    assert (table.loc[["m1", "m2", "m3", "m4"], "inferred_sex"] == "male").all()
    assert table.loc["m5", "n_sites"] == 0  # '.' everywhere: missing, not a second allele


@pytest.mark.parametrize(("build", "inside", "outside"), [("GRCh38", 2_781_479, 2_781_480), ("GRCh37", 2_699_520, 2_699_521)])
def test_par_boundaries_are_inclusive(tmp_path, build, inside, outside):
    # one heterozygous call at each position: inside PAR1 it is left out, one base further it counts
    rows = [("chrX", 5_000_000 + 1000 * i, ["0/0", "1/1"], "AF=0.5") for i in range(10)]
    base = x_vcf(tmp_path / "base.vcf", sorted(rows, key=lambda r: r[1]), ["a", "b"], x_length=None)
    with_inside = x_vcf(tmp_path / "in.vcf", sorted([*rows, ("chrX", inside, ["0/1", "0/1"], "AF=0.5")], key=lambda r: r[1]), ["a", "b"], x_length=None)
    with_outside = x_vcf(tmp_path / "out.vcf", sorted([*rows, ("chrX", outside, ["0/1", "0/1"], "AF=0.5")], key=lambda r: r[1]), ["a", "b"], x_length=None)
    n = {name: check_sex(path, build=build, freq="info").table["n_sites"].tolist() for name, path in (("base", base), ("in", with_inside), ("out", with_outside))}
    assert n["in"] == n["base"] and n["out"] == [v + 1 for v in n["base"]]

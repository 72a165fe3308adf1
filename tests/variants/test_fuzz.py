"""Fuzz every VCF / reference / labels entry point of `biolm.variants` with hypothesis.

Inputs: random bytes, and near-valid VCF text (mutated header lines, dropped ``#CHROM`` line,
wrong column counts, non-numeric POS/QUAL, bad genotypes, undeclared contigs and tags, truncated
or corrupt gzip), near-valid FASTA (plain, gzipped, damaged gzip) and label tables. A filtered VCF
must read back whole. The only accepted outcomes are a result or a
`BiolmError`; htslib aborting the process (it does on some malformed records, hence the line
check in `biolm.variants.vcf`) would end the test session, so it fails too.
"""

from __future__ import annotations

import gzip
import os
from collections import Counter

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from biolm.errors import BiolmError
from biolm.variants import Reference, annotate_vcf, check_sex, filter_vcf, parse_region, read_variants, variant_dataset
from biolm.variants.dataset import read_sample_labels
from biolm.variants.report import check_variant_labels
from biolm.variants.vcf import check_vcf_text, read_genotypes

FUZZ = settings(
    max_examples=int(os.environ.get("BIOLM_FUZZ_EXAMPLES", "400")), deadline=None, database=None, derandomize=True,
    suppress_health_check=list(HealthCheck),
)
CASES: Counter = Counter()  # entry point -> inputs run, for the summary test
PARSED: Counter = Counter()  # entry point -> inputs that gave a result (the rest: a BiolmError)

HEADER = [
    "##fileformat=VCFv4.2",
    "##contig=<ID=chr1,length=400>",
    '##FILTER=<ID=LowQual,Description="low quality">',
    '##INFO=<ID=DP,Number=1,Type=Integer,Description="Total depth">',
    '##INFO=<ID=AF,Number=A,Type=Float,Description="Allele frequency">',
    '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
    '##FORMAT=<ID=DP,Number=1,Type=Integer,Description="Read depth">',
]
COLUMNS = ["#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO", "FORMAT", "s1", "s2"]
ROWS = [
    ["chr1", "10", "a", "A", "C", "50", "PASS", "DP=20;AF=0.5", "GT:DP", "0/1:10", "1|1:12"],
    ["chr1", "20", "b", "C", "T,G", "20", "LowQual", "DP=5", "GT", "1/2", "./."],
    ["chr1", "30", ".", "GA", "G", ".", ".", ".", "GT:DP", "0|1:3", "0:."],
    ["2", "5", ".", "T", "<DEL>", "99", "PASS", "SVTYPE=DEL", "GT", "0/1", "1/1"],
]
NASTY = st.sampled_from(
    ["", ".", "x", "-1", "0", "1e9", "99999999999", "3.5", "NaN", "inf", "A,", ",", ";", "=", "==", "DP", "DP=x", "DP=1,2", "GT",
     "0/1/2", "1|", "|", "9", "./1", "0/-1", "<DEL>", "*", "N" * 60, "chr1:5", "é", "\x00", " ", "ACGT" * 30]
)
TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)


@st.composite
def vcf_texts(draw) -> str:
    """A valid small VCF with 0-6 mutations of the kinds a broken pipeline produces."""
    header = list(HEADER)
    columns = list(COLUMNS) if draw(st.booleans()) else COLUMNS[:8]  # with samples, or sites-only
    rows = [row[: len(columns)] for row in draw(st.lists(st.sampled_from(ROWS), min_size=0, max_size=5))]
    for _ in range(draw(st.sampled_from([0, 0, 1, 1, 2, 3, 6]))):  # mostly near-valid
        kind = draw(st.sampled_from(["header", "drop_header", "chrom_line", "cell", "columns", "drop_row", "blank", "junk_line"]))
        if kind == "header" and header:
            i = draw(st.integers(0, len(header) - 1))
            line = header[i]
            cut = draw(st.integers(0, len(line)))
            header[i] = line[:cut] + draw(st.one_of(NASTY, TEXT)) + line[cut + draw(st.integers(0, 5)) :]
        elif kind == "drop_header" and header:
            header.pop(draw(st.integers(0, len(header) - 1)))
        elif kind == "chrom_line":
            columns = draw(st.sampled_from([[], COLUMNS[:5], COLUMNS + ["s1"], [*COLUMNS[:9], "", "s2"], COLUMNS[:9], [c.lower() for c in COLUMNS]]))
        elif kind == "cell" and rows:
            row = rows[draw(st.integers(0, len(rows) - 1))]
            row[draw(st.integers(0, len(row) - 1))] = draw(st.one_of(NASTY, TEXT))
        elif kind == "columns" and rows:
            row = rows[draw(st.integers(0, len(rows) - 1))]
            if draw(st.booleans()) and len(row) > 1:
                del row[draw(st.integers(1, len(row) - 1)) :]
            else:
                row += draw(st.lists(NASTY, min_size=1, max_size=3))
        elif kind == "drop_row" and rows:
            rows.pop(draw(st.integers(0, len(rows) - 1)))
        elif kind == "blank":
            rows.insert(draw(st.integers(0, len(rows))), [""])
        elif kind == "junk_line":
            rows.insert(draw(st.integers(0, len(rows))), [draw(TEXT)])
    lines = header + (["\t".join(columns)] if columns else []) + ["\t".join(row) for row in rows]
    return "\n".join(lines) + ("\n" if draw(st.booleans()) else "")


@st.composite
def damaged_gzip(draw, data: bytes) -> bytes:
    """``data`` gzipped, then truncated or with a few bytes overwritten (a corrupt deflate stream or CRC)."""
    packed = bytearray(gzip.compress(data))
    if draw(st.booleans()):
        return bytes(packed[: draw(st.integers(0, len(packed) - 1))])
    for _ in range(draw(st.integers(1, 3))):
        packed[draw(st.integers(10, len(packed) - 1))] = draw(st.integers(0, 255))
    return bytes(packed)


@st.composite
def vcf_files(draw) -> tuple[bytes, str]:
    """(content, suffix): VCF text plain, gzipped, or gzipped and damaged; or random bytes."""
    kind = draw(st.sampled_from(["text", "text", "gzip", "damaged_gzip", "bytes", "gzip_bytes"]))
    if kind == "bytes":
        return draw(st.binary(max_size=300)), ".vcf"
    if kind == "gzip_bytes":
        return gzip.compress(draw(st.binary(max_size=300))), ".vcf.gz"
    data = draw(vcf_texts()).encode("utf-8")
    if kind == "text":
        return data, ".vcf"
    return (draw(damaged_gzip(data)) if kind == "damaged_gzip" else gzip.compress(data)), ".vcf.gz"


def only_biolm_errors(name: str, call, *args, **kwargs):
    """Run one entry point: its result, or None after a `BiolmError`; any other exception fails the test."""
    CASES[name] += 1
    try:
        result = call(*args, **kwargs)
    except BiolmError as err:
        assert str(err).strip() and "\n" not in str(err).strip(), f"{name}: a BiolmError message must be one line: {err!r}"
        return None
    PARSED[name] += 1
    return result


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Reference:
    """chr1 and 2 carrying the REF alleles of `ROWS`, so alleles get applied to sequences."""
    chr1 = list("ACGTTGCA" * 50)
    chr1[9], chr1[19], chr1[29:31] = "A", "C", ["G", "A"]
    path = tmp_path_factory.mktemp("fuzz_ref") / "ref.fa"
    path.write_text(">chr1\n" + "".join(chr1) + "\n>2\n" + "GATTTCA" * 10 + "\n")
    return Reference(path)


@given(case=vcf_files())
@FUZZ
def test_vcf_readers_raise_only_biolm_errors(case, tmp_path_factory, reference):
    data, suffix = case
    folder = tmp_path_factory.mktemp("fuzz")
    path = folder / f"in{suffix}"
    path.write_bytes(data)
    only_biolm_errors("check_vcf_text", check_vcf_text, path)
    variants = only_biolm_errors("read_variants", read_variants, path)
    only_biolm_errors("read_genotypes", read_genotypes, path)
    report = only_biolm_errors("filter_vcf", filter_vcf, path, folder / "out.vcf.gz", min_qual=30, min_dp=10)
    if report is not None:  # what filter writes, the readers take back whole
        assert check_vcf_text(folder / "out.vcf.gz").n_records == report.kept_records
        read_variants(folder / "out.vcf.gz")
    qc = {"min_sample_dp": 5, "min_call_rate": 0.5, "max_sample_missing": 0.5, "max_het_z": 2.0}
    if only_biolm_errors("filter_vcf+sample_qc", filter_vcf, path, folder / "qc.vcf", **qc):
        assert (folder / "qc.vcf").is_file()
    only_biolm_errors("check_sex", check_sex, path, build="GRCh38")  # fuzz contigs are chr1: the loop, then 'no X' at most
    for mode in ("haplotype", "consensus"):
        only_biolm_errors(f"variant_dataset:{mode}", variant_dataset, path, reference, "chr1:1-100", mode=mode, on_ref_mismatch="skip")
    if variants is not None:
        table, _ = variants
        scores = table.assign(score=0.5, method="clm_llr", model="m", window_bp=64)
        if len(scores):
            only_biolm_errors("annotate_vcf", annotate_vcf, path, scores, folder / "annotated.vcf.gz")


@st.composite
def fasta_files(draw) -> tuple[bytes, str]:
    """Near-valid FASTA (odd names, blank and ragged lines, non-ACGT letters) or random bytes, plain or gzipped."""
    if draw(st.booleans()):
        data = draw(st.binary(max_size=200))
    else:
        records = []
        for _ in range(draw(st.integers(0, 4))):
            name = draw(st.one_of(st.sampled_from(["chr1", "chr1", "2", "chr1:11-50", "chr1:50-11", "chr1:0-5", "x y", ""]), TEXT))
            lines = st.text(alphabet="ACGTNacgtn", min_size=1, max_size=30).map(lambda bases: bases + "\n")
            seq = draw(st.one_of(st.lists(lines, max_size=4).map("".join), st.text(alphabet="ACGTNacgtn-*X>\n \r", max_size=80)))
            records.append(f">{name}\n{seq}")
        data = ("\n".join(records) + draw(st.sampled_from(["", "\n", "\n\n"]))).encode("utf-8")
    if draw(st.booleans()):
        return (draw(damaged_gzip(data)) if draw(st.booleans()) else gzip.compress(data)), ".fa.gz"
    return data, ".fa"


@given(case=fasta_files(), region=st.sampled_from(["chr1:1-3", "1:2-2", "2:1-400", "chr1:12-14"]))
@FUZZ
def test_reference_reader_raises_only_biolm_errors(case, region, tmp_path_factory):
    data, suffix = case
    path = tmp_path_factory.mktemp("fuzz_fa") / f"ref{suffix}"
    path.write_bytes(data)
    reference = only_biolm_errors("Reference", Reference, path)
    if reference is not None:
        contig, start, end = parse_region(region)
        only_biolm_errors("Reference.fetch", reference.fetch, contig, start, end)
        probe = pd.DataFrame({"chrom": [contig], "pos": [start + 1], "ref": ["A"]})
        only_biolm_errors("Reference.check_alleles", reference.check_alleles, probe, "skip")


@given(text=st.one_of(st.sampled_from(["chr1:1-10", "chr1:10-1", "chr1:0-5", "chr1:1,000-2,000", ":1-2", "chr1:-5-10", "a:b-c", "x:1-1:2-3"]), TEXT))
@FUZZ
def test_parse_region_raises_only_biolm_errors(text):
    only_biolm_errors("parse_region", parse_region, text)


@st.composite
def label_tables(draw) -> bytes:
    """Label tables with repeated keys, missing cells, ragged rows, odd bytes."""
    if draw(st.integers(0, 4)) == 0:
        return draw(st.binary(max_size=120))
    header = draw(st.sampled_from(["sample,label", "chrom,pos,ref,alt,label", "sample", "", "chrom,pos,ref,alt"]))
    cells = st.one_of(st.sampled_from(["s1", "s2", "chr1", "1", "A", "C", "case", "benign", "", '"', "a,b"]), TEXT)
    rows = draw(st.lists(st.lists(cells, min_size=0, max_size=6), max_size=5))
    return (header + "\n" + "\n".join(",".join(row) for row in rows)).encode("utf-8", "replace")


@given(data=label_tables(), gzipped=st.booleans())
@FUZZ
def test_label_readers_raise_only_biolm_errors(data, gzipped, tmp_path_factory):
    path = tmp_path_factory.mktemp("fuzz_labels") / ("labels.csv.gz" if gzipped else "labels.csv")
    path.write_bytes(gzip.compress(data) if gzipped else data)
    only_biolm_errors("read_sample_labels", read_sample_labels, path)
    only_biolm_errors("check_variant_labels", check_variant_labels, path)


def test_fuzz_covered_every_entry_point():
    """Runs last in this module (pytest keeps file order): every entry point saw inputs."""
    expected = {
        "check_vcf_text", "read_variants", "read_genotypes", "filter_vcf", "filter_vcf+sample_qc", "variant_dataset:haplotype", "variant_dataset:consensus", "annotate_vcf",
        "Reference", "Reference.fetch", "Reference.check_alleles", "parse_region", "read_sample_labels", "check_variant_labels",
    }
    if not CASES:
        pytest.skip("run with the fuzz tests above")
    assert expected <= set(CASES), f"entry points never reached: {expected - set(CASES)}"
    counts = {name: f"{PARSED[name]}/{n}" for name, n in CASES.items()}
    print(f"fuzz cases per entry point (parsed/run): {counts} (total {sum(CASES.values())})")

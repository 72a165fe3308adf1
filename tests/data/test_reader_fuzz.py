"""Fuzzing every reader entry point: random bytes and near-valid files either parse or raise
`BiolmError` with a one-line message; no other exception type may escape.

Entry points: `read_records` (CSV, TSV, FASTA, Parquet, gzip of each, ``-`` for stdin, with and
without ``require_label``), `read_records` with a ``labels_file`` side table, `tokenize_records`
on what was read (char and 6-mer), `load_splits` (reading plus the held-out split), and the
genomic-prediction readers `read_genotypes` (CSV/TSV/Parquet/gzip matrices, PLINK .bed/.bim/.fam,
VCF plain and gzip), `read_phenotypes` and `read_pedigree`. ``EXAMPLES`` per test keeps the whole
file well under 30 s (11 tests, 1,100 cases); raise it locally to search longer.
"""

from __future__ import annotations

import gzip
import io
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf

from biolm.data.datasets import load_splits, tokenize_records
from biolm.data.io import read_records
from biolm.errors import BiolmError
from biolm.genomic_prediction.data import read_genotypes, read_pedigree, read_phenotypes
from biolm.tokenizers import CharTokenizer, KmerTokenizer

EXAMPLES = 100
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
TOKENIZERS = (CharTokenizer(), KmerTokenizer(k=6))

# Pieces of near-valid files: nucleotides in both cases, IUPAC codes, a delimiter or a quote in a
# field, non-ASCII letters, NA spellings and numbers.
CELL_PIECES = ["ACGT", "acgtn", "N", "RYKM", "", " ", ",", "\t", '"', "'", ";", "é", "NA", "nan", "0", "1", "2", "-1", "1.5", "x"]
cells = st.lists(st.sampled_from(CELL_PIECES), max_size=3).map("".join)
newlines = st.sampled_from(["\n", "\r\n", "\r"])


@st.composite
def delimited(draw, columns=("id", "sequence", "label", "other")) -> str:
    """A CSV/TSV-like text: a header from a (possibly wrong) set of columns, rows of random cells."""
    sep = draw(st.sampled_from([",", "\t", ";"]))
    header = draw(st.lists(st.sampled_from(columns), max_size=5))
    rows = draw(st.lists(st.lists(cells, max_size=len(header) + 2), max_size=6))
    end = draw(newlines)
    lines = [sep.join(header)] if draw(st.booleans()) or not rows else []
    lines += [sep.join(row) for row in rows]
    return end.join(lines) + (end if draw(st.booleans()) else "")


@st.composite
def fasta_text(draw) -> str:
    """FASTA-like text: headers with, without or with empty ids and labels, comments, blank lines."""
    lines = []
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(st.sampled_from(["header", "header", "seq", "seq", "blank", "comment", "bare"]))
        if kind == "header":
            lines.append(">" + draw(st.sampled_from(["s0", "s1", "a b", "", " ", "id label=1", "x 0", "x label=", "é"])))
        elif kind == "seq":
            lines.append(draw(cells))
        elif kind == "comment":
            lines.append(";" + draw(cells))
        elif kind == "bare":
            lines.append(">")
    return draw(newlines).join(lines)


@st.composite
def encoded(draw, text: str) -> bytes:
    """Text as the bytes of a file: UTF-8, Latin-1 (not UTF-8 when it has é), a BOM, gzip, truncated or corrupted gzip."""
    how = draw(st.sampled_from(["utf8", "utf8", "latin1", "bom", "gzip", "gzip_cut", "gzip_flip"]))
    if how == "latin1":
        return text.encode("latin-1", errors="replace")
    if how == "bom":
        return b"\xef\xbb\xbf" + text.encode()
    raw = text.encode()
    if how.startswith("gzip"):
        raw = gzip.compress(raw)
        if how == "gzip_cut":
            raw = raw[: draw(st.integers(0, max(len(raw) - 1, 0)))]
        elif how == "gzip_flip":  # a damaged deflate stream after the 10-byte header
            spot = draw(st.integers(10, len(raw) - 1))
            raw = raw[:spot] + bytes([raw[spot] ^ 0xFF]) + raw[spot + 1 :]
    return raw


@pytest.fixture(scope="module")
def workdir():
    with tempfile.TemporaryDirectory() as tmp:
        yield Path(tmp)


def parsed_or_user_error(call):
    """Run ``call``; a `BiolmError` must be one line; any other exception fails the test."""
    try:
        return call()
    except BiolmError as err:
        message = str(err)
        assert message.strip() and "\n" not in message and "\r" not in message, repr(message)
        return None


def _read_and_tokenize(path: str, **options):
    records = read_records(path, **options)
    assert len(records.ids) == len(records.sequences) == len(records.lines)
    for tokenizer in TOKENIZERS:
        parsed_or_user_error(lambda tokenizer=tokenizer: tokenize_records(tokenizer, records, 64))
    return records


@FUZZ
@given(
    suffix=st.sampled_from([".csv", ".tsv", ".fa", ".fasta", ".csv.gz", ".fa.gz", ".parquet", ".txt"]),
    content=st.binary(max_size=400),
    require_label=st.booleans(),
)
def test_read_records_random_bytes(workdir, suffix, content, require_label):
    path = workdir / f"random{suffix}"
    path.write_bytes(content)
    parsed_or_user_error(lambda: _read_and_tokenize(str(path), require_label=require_label))


@FUZZ
@given(data=st.data(), suffix=st.sampled_from([".csv", ".tsv", ".csv.gz", ".tsv.gz"]), require_label=st.booleans())
def test_read_records_near_valid_tables(workdir, data, suffix, require_label):
    text = data.draw(delimited())
    path = workdir / f"table{suffix}"
    path.write_bytes(data.draw(encoded(text)))
    parsed_or_user_error(lambda: _read_and_tokenize(str(path), require_label=require_label, id_column="id"))


@FUZZ
@given(data=st.data(), suffix=st.sampled_from([".fa", ".fna", ".fa.gz"]), require_label=st.booleans())
def test_read_records_near_valid_fasta(workdir, data, suffix, require_label):
    path = workdir / f"seqs{suffix}"
    path.write_bytes(data.draw(encoded(data.draw(fasta_text()))))
    parsed_or_user_error(lambda: _read_and_tokenize(str(path), require_label=require_label))


@FUZZ
@given(data=st.data())
def test_read_records_from_stdin(data, monkeypatch_module):
    text = data.draw(st.one_of(fasta_text(), delimited()))
    monkeypatch_module.setattr(sys, "stdin", io.StringIO(text))
    parsed_or_user_error(lambda: _read_and_tokenize("-", require_label=data.draw(st.booleans())))


@FUZZ
@given(data=st.data())
def test_fasta_with_a_fuzzed_labels_file(workdir, data):
    fasta = workdir / "side.fa"
    fasta.write_bytes(data.draw(encoded(data.draw(fasta_text()))))
    labels = workdir / data.draw(st.sampled_from(["labels.csv", "labels.tsv", "labels.csv.gz", "labels.fa", "labels.parquet"]))
    labels.write_bytes(data.draw(st.one_of(st.binary(max_size=200), delimited(("id", "label", "x")).flatmap(encoded))))
    parsed_or_user_error(lambda: read_records(str(fasta), require_label=True, labels_file=str(labels)))


@FUZZ
@given(data=st.data(), task=st.sampled_from(["binary", "multiclass", "regression", "multilabel"]))
def test_load_splits_on_fuzzed_tables(workdir, data, task):
    path = workdir / "split.csv"
    path.write_bytes(data.draw(encoded(data.draw(delimited(("sequence", "label", "id"))))))
    cfg = OmegaConf.create(
        {
            "train": str(path),
            "sequence_column": "sequence",
            "label_column": "label",
            "id_column": "id",
            "split": {"val": data.draw(st.sampled_from([0.1, 0.3, 0.5, 0.9, 1.0])), "test": data.draw(st.sampled_from([0.1, 0.2, 0.5])), "seed": 0},
        }
    )
    splits = parsed_or_user_error(lambda: load_splits(cfg, stratify=task in ("binary", "multiclass")))
    if splits is not None:
        assert all(len(records) >= 1 for records in splits.values())


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


GENOTYPE_CELLS = ["0", "1", "2", "-1", "", "NA", ".", "3", "0.5", "x", "1e400", "-0", " 1"]


@st.composite
def genotype_table(draw, trait_like: bool = False) -> str:
    sep = draw(st.sampled_from([",", "\t"]))
    n_markers = draw(st.integers(0, 4))
    header = ["line"] + [draw(st.sampled_from(["m1", "m2", "m3", "yield", "line", ""])) for _ in range(n_markers)]
    rows = []
    for _ in range(draw(st.integers(0, 5))):
        width = draw(st.integers(max(len(header) - 2, 0), len(header) + 1))
        line_id = draw(st.sampled_from(["a", "b", "c", "a", "", "é"]))
        rows.append([line_id] + [draw(st.sampled_from(GENOTYPE_CELLS + (["1.25", "tall"] if trait_like else []))) for _ in range(width - 1)])
    end = draw(newlines)
    return end.join(sep.join(r) for r in [header, *rows]) + end


@FUZZ
@given(
    data=st.data(),
    suffix=st.sampled_from([".csv", ".tsv", ".csv.gz", ".parquet", ".bed", ".vcf", ".vcf.gz", ".bcf", ".txt"]),
    coding=st.sampled_from(["012", "-101"]),
)
def test_read_genotypes_random_bytes(workdir, data, suffix, coding):
    path = workdir / f"geno{suffix}"
    path.write_bytes(data.draw(st.binary(max_size=300)))
    if suffix == ".bed":
        path.with_suffix(".bim").write_bytes(data.draw(st.binary(max_size=100)))
        path.with_suffix(".fam").write_bytes(data.draw(st.binary(max_size=100)))
    parsed_or_user_error(lambda: read_genotypes(str(path), coding=coding))


@FUZZ
@given(data=st.data(), suffix=st.sampled_from([".csv", ".tsv", ".csv.gz"]), coding=st.sampled_from(["012", "-101"]))
def test_genotype_phenotype_pedigree_near_valid_tables(workdir, data, suffix, coding):
    genotypes = workdir / f"g{suffix}"
    genotypes.write_bytes(data.draw(encoded(data.draw(genotype_table()))))
    parsed_or_user_error(lambda: read_genotypes(str(genotypes), coding=coding))
    phenotypes = workdir / f"p{suffix}"
    phenotypes.write_bytes(data.draw(encoded(data.draw(genotype_table(trait_like=True)))))
    parsed_or_user_error(lambda: read_phenotypes(str(phenotypes)))
    pedigree = workdir / f"a{suffix}"
    pedigree.write_bytes(data.draw(encoded(data.draw(genotype_table(trait_like=True)))))
    parsed_or_user_error(lambda: read_pedigree(str(pedigree), data.draw(st.lists(st.sampled_from(["a", "b", "m1"]), max_size=3))))


@FUZZ
@given(data=st.data())
def test_parquet_genotypes_cut_or_flipped(workdir, data):
    path = workdir / "g.parquet"
    frame = pd.DataFrame({"line": ["a", "b", "c"], "m1": [0, 1, 2], "m2": [2.0, np.nan, 0.0]})
    buffer = io.BytesIO()
    frame.to_parquet(buffer)
    raw = bytearray(buffer.getvalue())
    for _ in range(data.draw(st.integers(0, 4))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    path.write_bytes(bytes(raw[: data.draw(st.integers(0, len(raw)))]))
    parsed_or_user_error(lambda: read_genotypes(str(path)))
    parsed_or_user_error(lambda: read_phenotypes(str(path)))


@FUZZ
@given(data=st.data())
def test_plink_triplets_cut_or_garbled(workdir, data):
    from bed_reader import to_bed

    values = np.array([[0, 1, 2], [2, np.nan, 0]], dtype=np.float32)
    path = workdir / "p.bed"
    to_bed(path, values, properties={"iid": ["x", "y"], "sid": ["s1", "s2", "s3"]})
    bed = bytearray(path.read_bytes())
    cut = data.draw(st.integers(0, len(bed)))
    path.write_bytes(bytes(bed[:cut]) + data.draw(st.binary(max_size=4)))
    for suffix in (".fam", ".bim"):
        side = path.with_suffix(suffix)
        lines = side.read_text().splitlines()
        choice = data.draw(st.sampled_from(["keep", "drop_line", "extra_line", "fewer_fields", "random"]))
        if choice == "drop_line":
            lines = lines[1:]
        elif choice == "extra_line":
            lines.append(lines[0])
        elif choice == "fewer_fields":
            lines = [" ".join(line.split()[:3]) for line in lines]
        elif choice == "random":
            lines = [data.draw(st.text(max_size=20))]
        side.write_text("\n".join(lines) + "\n")
    parsed_or_user_error(lambda: read_genotypes(str(path)))


@st.composite
def vcf_text(draw) -> str:
    lines = ["##fileformat=VCFv4.2"] if draw(st.booleans()) else []
    if draw(st.booleans()):
        lines += ["##contig=<ID=1>", '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">']
    samples = draw(st.lists(st.sampled_from(["x", "y", "z"]), max_size=3))
    columns = ["#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO", "FORMAT", *samples]
    lines.append("\t".join(columns[: draw(st.integers(1, len(columns)))]))
    for _ in range(draw(st.integers(0, 4))):
        fields = [
            draw(st.sampled_from(["1", "2", "chr1", ""])),
            draw(st.sampled_from(["5", "0", "-1", "x", "7"])),
            draw(st.sampled_from([".", "rs1", "rs1;rs2"])),
            draw(st.sampled_from(["A", "N", "", "AC"])),
            draw(st.sampled_from(["C", ".", "C,G", "<DEL>"])),
            ".",
            ".",
            ".",
            draw(st.sampled_from(["GT", "GT:DP", ""])),
        ] + [draw(st.sampled_from(["0/1", "1|1", "./.", "0", "2/2", "x", ""])) for _ in samples]
        lines.append("\t".join(fields[: draw(st.integers(1, len(fields)))]))
    return "\n".join(lines) + "\n"


@FUZZ
@given(data=st.data(), suffix=st.sampled_from([".vcf", ".vcf.gz"]))
def test_near_valid_vcf_genotypes(workdir, data, suffix):
    text = data.draw(vcf_text())
    path = workdir / f"g{suffix}"
    path.write_bytes(gzip.compress(text.encode()) if suffix.endswith(".gz") else text.encode())
    parsed_or_user_error(lambda: read_genotypes(str(path)))

"""Readers: formats, gzip, FASTA labels, side tables, and the errors users see."""

from __future__ import annotations

import gzip

import pandas as pd
import pytest

from biolm.data.io import read_records, write_table
from biolm.errors import BiolmError


def test_csv_tsv_parquet_and_gzip_read_the_same(tmp_path):
    frame = pd.DataFrame({"id": ["a", "b"], "sequence": ["ACGT", "ggcc"], "label": ["1", "0"]})
    frame.to_csv(tmp_path / "x.csv", index=False)
    frame.to_csv(tmp_path / "x.tsv", sep="\t", index=False)
    frame.to_parquet(tmp_path / "x.parquet", index=False)
    with gzip.open(tmp_path / "x.csv.gz", "wt") as handle:
        frame.to_csv(handle, index=False)
    for name in ("x.csv", "x.tsv", "x.parquet", "x.csv.gz"):
        records = read_records(str(tmp_path / name), require_label=True)
        assert records.ids == ["a", "b"]
        assert records.sequences == ["ACGT", "ggcc"]
        assert records.labels == ["1", "0"]
    assert read_records(str(tmp_path / "x.csv")).where(1) == f"{tmp_path / 'x.csv'} line 3"


def test_fasta_labels_from_header_and_side_table(tmp_path):
    fasta = tmp_path / "x.fa"
    fasta.write_text(">s1 label=1 extra\nACG\nTTT\n\n>s2 0\nGG\n")
    records = read_records(str(fasta), require_label=True)
    assert records.ids == ["s1", "s2"]
    assert records.sequences == ["ACGTTT", "GG"]
    assert records.labels == ["1", "0"]
    assert records.lines == [1, 5]
    side = tmp_path / "labels.csv"
    side.write_text("id,label\ns2,b\ns1,a\n")
    assert read_records(str(fasta), require_label=True, labels_file=str(side)).labels == ["a", "b"]


def test_write_table_is_atomic_and_by_suffix(tmp_path):
    frame = pd.DataFrame({"id": ["a"], "prediction": [0.5]})
    for name in ("p.csv", "p.tsv", "p.parquet"):
        write_table(frame, str(tmp_path / name))
    assert (tmp_path / "p.tsv").read_text().startswith("id\tprediction")
    assert pd.read_parquet(tmp_path / "p.parquet").equals(frame)
    with pytest.raises(BiolmError, match="accepted: .csv, .tsv, .parquet"):
        write_table(frame, str(tmp_path / "p.xlsx"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.csv", "p.parquet", "p.tsv"]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.csv", "", "file is empty"),
        ("noheader.fa", "ACGT\n>x\nAC\n", r"line 1: sequence data before the first FASTA header"),
        ("nolabel.csv", "sequence,y\nACGT,1\n", r"no label column 'label' \(found: sequence, y\)"),
        ("noseq.csv", "seq,label\nACGT,1\n", r"no column 'sequence'"),
        ("nolabel.fa", ">a\nACGT\n", r"nolabel.fa line 1: FASTA header has no label"),
        ("x.xlsx", "whatever", "unknown file format '.xlsx'"),
        ("rows.csv", "sequence,label\n", "no rows after the header"),
    ],
)
def test_bad_files_name_file_and_problem(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(BiolmError, match=message):
        read_records(str(path), require_label=True)


def test_missing_file_names_the_field(tmp_path):
    with pytest.raises(BiolmError, match=r"data.train: file not found: .*nope.csv"):
        read_records(str(tmp_path / "nope.csv"), field_name="data.train")

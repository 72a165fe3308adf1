"""Per-base labels: label strings and BED intervals over FASTA records, every malformed input one line."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from biolm.data.base_labels import encode_bases, read_base_labels, runs_of
from biolm.errors import BiolmError


def test_label_strings_become_runs(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("id,sequence,labels\na,ACGTACGT,iiggggii\nb,ACG,eee\n")
    data = read_base_labels(str(path), field_name="data.train")
    assert data.runs == [[(0, 2, "i"), (2, 6, "g"), (6, 8, "i")], [(0, 3, "e")]]
    assert data.names() == {"e", "g", "i"}
    assert encode_bases(data.runs[0], ["g", "i"], "x").tolist() == [1, 1, 0, 0, 0, 0, 1, 1]
    assert runs_of("aab") == [(0, 2, "a"), (2, 3, "b")]


def test_a_label_string_of_the_wrong_length_is_refused(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("id,sequence,labels\na,ACGTACGT,iigg\n")
    with pytest.raises(BiolmError, match=r"t.csv line 2: the label string has 4 characters for 8 bases"):
        read_base_labels(str(path), field_name="data.train")


def test_bed_intervals_over_fasta_with_background_and_merges(tmp_path):
    fasta = tmp_path / "s.fa"
    fasta.write_text(">r1\n" + "A" * 20 + "\n>r2\n" + "C" * 10 + "\n")
    bed = tmp_path / "s.bed.gz"
    with gzip.open(bed, "wt") as handle:
        handle.write("track name=x\nr1\t2\t6\tgene\nr1\t5\t9\tgene\nr1\t15\t20\texon\n")
    data = read_base_labels(str(fasta), field_name="data.train", bed=str(bed), background="intergenic")
    assert data.runs[0] == [(0, 2, "intergenic"), (2, 9, "gene"), (9, 15, "intergenic"), (15, 20, "exon")]
    assert data.runs[1] == [(0, 10, "intergenic")]
    classes = sorted(data.names())
    per_base = encode_bases(data.runs[0], classes, "r1")
    assert len(per_base) == 20 and per_base[2] == classes.index("gene") and per_base[19] == classes.index("exon")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("r9\t0\t5\tgene", "record 'r9' is not in"),
        ("r1\t5\t25\tgene", "interval 5-25 is outside record 'r1'"),
        ("r1\tx\t5\tgene", "start and end must be integers"),
        ("r1\t0\t5", "expected 'chrom start end name'"),
    ],
)
def test_bad_bed_lines_are_one_line(tmp_path, line, message):
    fasta = tmp_path / "s.fa"
    fasta.write_text(">r1\n" + "A" * 20 + "\n")
    bed = tmp_path / "s.bed"
    bed.write_text(line + "\n")
    with pytest.raises(BiolmError, match=message) as err:
        read_base_labels(str(fasta), field_name="data.train", bed=str(bed))
    assert "s.bed line 1" in str(err.value) and "\n" not in str(err.value)


def test_overlapping_intervals_with_different_labels_are_refused(tmp_path):
    fasta = tmp_path / "s.fa"
    fasta.write_text(">r1\n" + "A" * 20 + "\n")
    bed = tmp_path / "s.bed"
    bed.write_text("r1\t0\t10\tgene\nr1\t8\t12\texon\n")
    with pytest.raises(BiolmError, match=r"s.bed line 2: 'exon' interval 8-12 overlaps 'gene' 0-10"):
        read_base_labels(str(fasta), field_name="data.train", bed=str(bed))


def test_unknown_label_in_evaluation_names_the_record():
    with pytest.raises(BiolmError, match="r7: label 'x' was not seen in training"):
        encode_bases([(0, 3, "x")], ["a", "b"], "r7")
    assert encode_bases([], ["a"], "r").dtype == np.int64

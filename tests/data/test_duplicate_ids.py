"""Ids that join two inputs must be unique on both sides: a repeat is one error naming the id,
the file and both lines. Without a join (a plain table, FASTA with labels in its headers),
repeated ids are allowed and records keep their file order."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from biolm.cli import main
from biolm.data.io import read_records
from biolm.errors import BiolmError
from biolm.genomic_prediction.data import read_genotypes, read_pedigree, read_phenotypes

FASTA = ">s0\nACGTACGTAA\n>s1\nTTGCATGCAA\n>s2\nGGCATTACGA\n"


def _write(path, text):
    path.write_text(text)
    return str(path)


def test_labels_table_listing_an_id_twice_is_an_error(tmp_path):
    fasta = _write(tmp_path / "x.fa", FASTA)
    labels = _write(tmp_path / "labels.csv", "id,label\ns0,0\ns1,0\ns2,1\ns0,1\n")
    with pytest.raises(BiolmError) as err:
        read_records(fasta, require_label=True, labels_file=labels)
    assert str(err.value) == (
        f"{labels} line 5: id 's0' is listed again (first on line 2; labels '0' and '1'); "
        "each id needs exactly one row in data.labels_file"
    )


def test_labels_parquet_names_rows(tmp_path):
    fasta = _write(tmp_path / "x.fa", FASTA)
    pd.DataFrame({"id": ["s0", "s1", "s1", "s2"], "label": ["0", "1", "1", "1"]}).to_parquet(tmp_path / "l.parquet")
    with pytest.raises(BiolmError, match=r"l.parquet row 3: id 's1' is listed again \(first on row 2"):
        read_records(fasta, require_label=True, labels_file=str(tmp_path / "l.parquet"))


def test_fasta_repeating_an_id_cannot_be_joined_to_labels(tmp_path):
    fasta = _write(tmp_path / "x.fa", FASTA + ">s1\nACGTTTTTAA\n")
    labels = _write(tmp_path / "labels.csv", "id,label\ns0,0\ns1,0\ns2,1\n")
    with pytest.raises(BiolmError) as err:
        read_records(fasta, require_label=True, labels_file=labels)
    assert str(err.value) == (
        f"{fasta} line 7: id 's1' appears again (first at line 3); labels are joined by id from {labels}, so every record needs its own id"
    )


def test_repeated_ids_without_a_join_are_kept_in_order(tmp_path):
    table = read_records(_write(tmp_path / "t.csv", "id,sequence,label\na,ACGT,1\na,GGCC,0\n"), require_label=True)
    assert table.ids == ["a", "a"] and table.labels == ["1", "0"]
    fasta = read_records(_write(tmp_path / "h.fa", ">a 1\nACGT\n>a 0\nGGCC\n"), require_label=True)
    assert fasta.ids == ["a", "a"] and fasta.labels == ["1", "0"]


def test_finetune_with_a_duplicated_label_row_exits_2_with_one_line(tmp_path, capsys):
    fasta = _write(tmp_path / "train.fa", "".join(f">s{i}\n{'ACGT' * 5}\n" for i in range(12)))
    labels = _write(tmp_path / "labels.csv", "id,label\n" + "".join(f"s{i},{i % 2}\n" for i in range(12)) + "s0,1\n")
    out = tmp_path / "runs"
    code = main(["finetune", f"data.train={fasta}", f"data.labels_file={labels}", "model=cnn", "tokenizer=char", f"output_dir={out}"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err
    assert f"{labels} line 14: id 's0' is listed again (first on line 2; labels '0' and '1')" in err
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize("name", ["g.csv", "g.tsv"])
def test_genotype_matrix_with_a_repeated_line_id(tmp_path, name):
    sep = "\t" if name.endswith(".tsv") else ","
    path = _write(tmp_path / name, "\n".join(sep.join(row) for row in [["line", "m1", "m2"], ["a", "0", "1"], ["b", "2", "1"], ["a", "1", "1"]]) + "\n")
    with pytest.raises(BiolmError, match=rf"data.genotypes: .*{name}: line id 'a' appears twice \(line 2 and line 4\)"):
        read_genotypes(path)


def test_genotype_header_with_a_repeated_marker_is_not_renamed(tmp_path):
    path = _write(tmp_path / "g.csv", "line,m1,m2,m1\na,0,1,2\nb,2,1,0\n")
    with pytest.raises(BiolmError, match=r"g.csv line 1: column 'm1' appears twice \(column 2 and column 4\)"):
        read_genotypes(path)


def test_phenotypes_with_a_repeated_line_id(tmp_path):
    path = _write(tmp_path / "p.csv", "id,yield\na,1.0\nb,2.0\na,3.0\n")
    with pytest.raises(BiolmError, match=r"data.phenotypes: .*p.csv: line id 'a' appears twice \(line 2 and line 4\)"):
        read_phenotypes(path)


def test_plink_fam_with_a_repeated_line_id(tmp_path):
    from bed_reader import to_bed

    values = np.array([[0, 1], [2, 0], [1, 1]], dtype=np.float32)
    to_bed(tmp_path / "g.bed", values, properties={"iid": ["x", "y", "x"], "sid": ["s1", "s2"]})
    with pytest.raises(BiolmError, match=r"g.fam: line id 'x' appears twice \(line 1 and line 3\)"):
        read_genotypes(str(tmp_path / "g.bed"))
    to_bed(tmp_path / "h.bed", values, properties={"iid": ["x", "y", "z"], "sid": ["s1", "s1"]})
    with pytest.raises(BiolmError, match=r"h.bim: marker 's1' appears twice \(line 1 and line 2\)"):
        read_genotypes(str(tmp_path / "h.bed"))


VCF_HEAD = "##fileformat=VCFv4.2\n##contig=<ID=1>\n##FORMAT=<ID=GT,Number=1,Type=String,Description=\"Genotype\">\n"


def test_vcf_with_a_repeated_sample_or_marker(tmp_path):
    columns = "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT"
    dup_sample = _write(tmp_path / "s.vcf", VCF_HEAD + f"{columns}\tx\ty\tx\n1\t5\trs1\tA\tC\t.\t.\t.\tGT\t0/1\t1/1\t0/0\n")
    with pytest.raises(BiolmError, match=r"s.vcf #CHROM line: sample 'x' appears twice \(column 10 and column 12\)"):
        read_genotypes(dup_sample)
    dup_marker = _write(
        tmp_path / "m.vcf",
        VCF_HEAD + f"{columns}\tx\ty\n1\t5\t.\tA\tC\t.\t.\t.\tGT\t0/1\t1/1\n1\t5\t.\tA\tG\t.\t.\t.\tGT\t0/0\t1/1\n",
    )
    with pytest.raises(BiolmError, match=r"m.vcf: marker '1:5' appears twice \(record 1 \(1:5\).* and record 2 \(1:5\).*--set-id"):
        read_genotypes(dup_marker)


def test_pedigree_with_a_repeated_line_id(tmp_path):
    path = _write(tmp_path / "a.csv", "id,a,b\na,1,0.5\nb,0.5,1\na,1,0\n")
    with pytest.raises(BiolmError, match=r"data.pedigree: .*a.csv: line id 'a' appears twice \(line 2 and line 4\)"):
        read_pedigree(path, ["a", "b"])
    good = _write(tmp_path / "ok.csv", "id,a,b\na,1,0.5\nb,0.5,1\n")
    np.testing.assert_array_equal(read_pedigree(good, ["b", "a"]), [[1, 0.5], [0.5, 1]])

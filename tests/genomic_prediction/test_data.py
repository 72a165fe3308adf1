"""Genotype readers (CSV, Parquet, PLINK, VCF), phenotype joins and the errors for bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from biolm.errors import BiolmError
from biolm.genomic_prediction.data import (
    check_constant_markers,
    join_phenotypes,
    read_genotypes,
    read_phenotypes,
)


def _write(path, text):
    path.write_text(text)
    return str(path)


def test_csv_and_parquet_matrices_give_dosages_with_missing_values(tmp_path):
    csv = _write(tmp_path / "g.csv", "line,m1,m2,m3\na,0,1,2\nb,2,,1\nc,1,NA,0\n")
    matrix = read_genotypes(csv)
    assert matrix.ids == ["a", "b", "c"] and matrix.markers == ["m1", "m2", "m3"]
    np.testing.assert_array_equal(matrix.values, [[0, 1, 2], [2, np.nan, 1], [1, np.nan, 0]])
    frame = pd.DataFrame({"line": ["a", "b"], "m1": [-1, 1], "m2": [0, 1]})
    frame.to_parquet(tmp_path / "g.parquet")
    shifted = read_genotypes(str(tmp_path / "g.parquet"), coding="-101")
    np.testing.assert_array_equal(shifted.values, [[0, 1], [2, 2]])


def test_non_numeric_genotype_names_line_and_marker(tmp_path):
    csv = _write(tmp_path / "g.csv", "line,m1,m2\na,0,1\nb,2,AB\n")
    with pytest.raises(BiolmError, match=r"g.csv line 3, marker 'm2': non-numeric genotype 'AB'"):
        read_genotypes(csv)


def test_value_outside_the_declared_coding_is_refused(tmp_path):
    csv = _write(tmp_path / "g.csv", "line,m1\na,-1\nb,1\n")
    with pytest.raises(BiolmError, match="not in coding 012"):
        read_genotypes(csv)


def test_unmatched_phenotype_ids_are_an_error(tmp_path):
    matrix = read_genotypes(_write(tmp_path / "g.csv", "line,m1,m2\na,0,1\nb,2,1\nc,1,0\n"))
    phenotypes = read_phenotypes(_write(tmp_path / "p.csv", "id,yield\na,1.0\nB,2.0\n"))
    with pytest.raises(BiolmError, match=r"1 of 2 line ids in p.csv have no genotypes.*'B'"):
        join_phenotypes(matrix, phenotypes, "p.csv")
    joined, pheno = join_phenotypes(matrix, read_phenotypes(_write(tmp_path / "q.csv", "id,yield\nc,1\na,\n")), "q.csv")
    assert joined.ids == ["c", "a"] and np.isnan(pheno["yield"].iloc[1])
    np.testing.assert_array_equal(joined.values, [[1, 0], [0, 1]])


def test_non_numeric_phenotype_is_an_error(tmp_path):
    with pytest.raises(BiolmError, match=r"line 3, column 'yield': 'tall' is not a number"):
        read_phenotypes(_write(tmp_path / "p.csv", "id,yield\na,1.0\nb,tall\n"))


def test_constant_markers_are_an_error_unless_dropped(tmp_path):
    matrix = read_genotypes(_write(tmp_path / "g.csv", "line,m1,m2,m3\na,0,1,2\nb,0,2,\nc,0,1,\n"))
    with pytest.raises(BiolmError, match=r"2 constant marker\(s\), e.g. m1, m3"):
        check_constant_markers(matrix, drop=False)
    assert check_constant_markers(matrix, drop=True).markers == ["m2"]


def test_plink_bed_through_bed_reader(tmp_path):
    from bed_reader import to_bed

    values = np.array([[0, 1, 2], [2, np.nan, 0]], dtype=np.float32)
    to_bed(tmp_path / "g.bed", values, properties={"iid": ["x", "y"], "sid": ["s1", "s2", "s3"]})
    matrix = read_genotypes(str(tmp_path / "g.bed"))
    assert matrix.ids == ["x", "y"] and matrix.markers == ["s1", "s2", "s3"]
    np.testing.assert_array_equal(matrix.values, values)


def test_vcf_genotypes_become_alt_dosages(tmp_path):
    vcf = _write(
        tmp_path / "g.vcf",
        "##fileformat=VCFv4.2\n##contig=<ID=1>\n##FORMAT=<ID=GT,Number=1,Type=String,Description=\"Genotype\">\n"
        "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tL1\tL2\tL3\n"
        "1\t100\trs1\tA\tG\t.\tPASS\t.\tGT\t0/0\t0/1\t1/1\n"
        "1\t200\t.\tC\tT\t.\tPASS\t.\tGT\t1|1\t./.\t0|1\n",
    )
    matrix = read_genotypes(vcf)
    assert matrix.ids == ["L1", "L2", "L3"] and matrix.markers == ["rs1", "1:200"]
    np.testing.assert_array_equal(matrix.values, [[0, 2], [1, np.nan], [2, 1]])


def test_unknown_format_and_missing_file(tmp_path):
    with pytest.raises(BiolmError, match="file not found"):
        read_genotypes(str(tmp_path / "none.csv"))
    with pytest.raises(BiolmError, match="cannot tell the format"):
        read_genotypes(_write(tmp_path / "g.xlsx", "x"))

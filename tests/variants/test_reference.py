"""Reference access: pyfaidx and in-memory paths agree, contig aliasing, window records, REF checks."""

from __future__ import annotations

import gzip

import pandas as pd
import pytest

from biolm.errors import BiolmError
from biolm.variants.reference import Reference, canonical_contig, parse_region


def test_plain_and_gzip_references_read_the_same_bases(reference_fasta, tmp_path, chr1):
    gz = tmp_path / "ref.fa.gz"
    gz.write_bytes(gzip.compress(reference_fasta.read_bytes()))
    plain, packed = Reference(reference_fasta), Reference(gz)
    assert plain._fasta is not None and packed._fasta is None  # pyfaidx vs in-memory
    for start, end in ((0, 10), (55, 125), (390, 400)):
        assert plain.fetch("chr1", start, end) == packed.fetch("chr1", start, end) == chr1[start:end]


@pytest.mark.parametrize("name", ["chr1", "1", "CHR1", "Chr1"])
def test_contig_aliasing(reference_fasta, chr1, name):
    assert Reference(reference_fasta).fetch(name, 3, 9) == chr1[3:9]


def test_explicit_alias_and_mitochondria():
    assert canonical_contig("chrM") == canonical_contig("MT") == canonical_contig("M") == "MT"
    assert canonical_contig("chr17") == "17" and canonical_contig("scaffold_3") == "scaffold_3"


def test_region_named_record_is_a_window_of_the_contig(tmp_path, chr1):
    path = tmp_path / "win.fa"
    path.write_text(">chr17:1001-1400 window\n" + chr1 + "\n")
    ref = Reference(path, aliases={"ref_brca1": "17"})
    assert ref.fetch("17", 1000, 1010) == chr1[:10]  # genome position 1001 is the first base
    assert ref.fetch("ref_brca1", 1390, 1400) == chr1[390:]
    with pytest.raises(BiolmError, match="outside"):
        ref.fetch("chr17", 990, 1005)
    with pytest.raises(BiolmError, match="contig 'chr2' is not in"):
        ref.fetch("chr2", 0, 1)


def test_ref_mismatch_is_an_error_or_a_counted_skip(reference_fasta, chr1):
    ref = Reference(reference_fasta)
    wrong = "A" if chr1[19] != "A" else "C"
    variants = pd.DataFrame(
        {"chrom": ["chr1", "chr1", "chr1"], "pos": [10, 20, 399], "ref": [chr1[9], wrong, chr1[398:400] + "A"], "alt": ["T", "T", "T"]}
    )
    with pytest.raises(BiolmError, match=r"record 2: REF .* at chr1:20 does not match the reference"):
        ref.check_alleles(variants, "error")
    assert ref.check_alleles(variants, "skip").tolist() == [True, False, False]  # the last one runs off the end
    with pytest.raises(BiolmError, match="on_ref_mismatch"):
        ref.check_alleles(variants, "ignore")


def test_parse_region():
    assert parse_region("chr17:43,044,295-43125483") == ("chr17", 43044294, 43125483)
    for bad in ("chr17", "chr17:10-5", "chr17:0-5"):
        with pytest.raises(BiolmError, match="region"):
            parse_region(bad)


def test_missing_or_bad_fasta(tmp_path):
    with pytest.raises(BiolmError, match="not found"):
        Reference(tmp_path / "none.fa")


def test_bundled_grch38_window_matches_clinvar_refs():
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "data/variants/clinvar_brca_grch38"
    ref = Reference(root / "chr17_42425000-43600000.GRCh38.fa.gz")
    labels = pd.read_csv(root / "clinvar_20200803_BRCA1_BRCA2_labels.csv.gz", dtype={"chrom": str})
    brca1 = labels[labels["chrom"] == "17"].head(300)
    assert ref.check_alleles(brca1, "error").all()  # SOURCES.md: every REF matches the window

"""biolm variants windows: a labels table without the variant columns is one clear error, not a traceback."""

from __future__ import annotations

import pytest

from biolm.errors import BiolmError
from biolm.variants.window_dataset import position_split, variant_window_dataset


def test_missing_columns_are_named(tmp_path):
    labels = tmp_path / "labels.csv"
    labels.write_text("chrom,position,ref,alt,label\n17,43045712,G,A,pathogenic\n")
    with pytest.raises(BiolmError, match=r"labels\.csv has no column 'pos' \(has chrom, position, ref, alt, label\)"):
        variant_window_dataset(labels, tmp_path / "unused.fa")


def test_positions_of_one_block_share_a_split_and_contigs_do_not_share_blocks():
    import numpy as np

    # contigs are coded 1e12 apart on one line: 6 blocks of 2 kb here (100 and 150 share one per contig)
    where = np.array([10**12 * c + p for c in (0, 1) for p in (100, 150, 5000, 9000)])
    assert len(np.unique(where // 2000)) == 6
    splits = position_split(where, 0.25, 0.25, 2000, seed=0)
    assert splits[0] == splits[1] and splits[4] == splits[5]

"""Genome loading, holdout splits, random and tiled windows, the length warm-up."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from biolm.data.genome import (
    GenomeRegion,
    GenomeWindowDataset,
    length_warmup_schedule,
    load_genome,
    reverse_complement,
    split_genome,
)
from biolm.errors import BiolmError

ECOLI = Path(__file__).resolve().parents[2] / "data" / "genomes" / "ecoli_k12_mg1655.fa.gz"


def as_genome(**contigs: str) -> dict[str, np.ndarray]:
    return {name: np.frombuffer(seq.encode(), dtype=np.uint8) for name, seq in contigs.items()}


def random_dna(n: int, seed: int = 0, alphabet: bytes = b"ACGT") -> str:
    codes = np.random.default_rng(seed).integers(0, len(alphabet), n)
    return np.frombuffer(alphabet, dtype=np.uint8)[codes].tobytes().decode()


def text(seq: np.ndarray) -> str:
    return seq.tobytes().decode()


def test_load_plain_and_gzip_fasta(tmp_path):
    content = ">chr1 first contig\nACGTacgt\nNNRY\n\n>chr2\nggcc\n"
    (tmp_path / "a.fa").write_text(content)
    with gzip.open(tmp_path / "a.fna.gz", "wt") as handle:
        handle.write(content.replace("chr", "gz"))
    genome = load_genome([str(tmp_path / "a.fa"), tmp_path / "a.fna.gz"])
    assert list(genome) == ["chr1", "chr2", "gz1", "gz2"]
    assert text(genome["chr1"]) == "ACGTACGTNNNN"  # upper-cased, IUPAC codes read as N
    assert text(genome["gz2"]) == "GGCC"
    assert genome["chr1"].dtype == np.uint8
    assert list(load_genome(str(tmp_path / "a.fa"))) == ["chr1", "chr2"]  # one path alone


def test_bundled_ecoli_genome_matches_its_sources_md():
    genome = load_genome([ECOLI])
    assert list(genome) == ["NC_000913.3"]
    seq = genome["NC_000913.3"]
    counts = {base: int(np.count_nonzero(seq == ord(base))) for base in "ACGTN"}
    assert len(seq) == 4_641_652
    assert counts == {"A": 1_142_742, "C": 1_180_091, "G": 1_177_437, "T": 1_141_382, "N": 0}


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.fa", "", "empty"),
        ("table.fa", "id,sequence\nx,ACGT\n", "line 1: not FASTA"),
        ("late.fa", "\n\nACGT\n>x\nACGT\n", "line 3: not FASTA"),
        ("digits.fa", ">x\nACGT\nAC1T\n", "line 3: not FASTA sequence: '1'"),
        ("nameless.fa", ">\nACGT\n", "line 1: FASTA header has no name"),
        ("hollow.fa", ">x\nACGT\n>y\n", "line 3: FASTA record 'y' has no sequence"),
        ("twice.fa", ">x\nACGT\n>x\nAC\n", "line 3: contig name 'x' appears twice"),
        ("reads.txt", ">x\nACGT\n", "not a FASTA file name"),
    ],
)
def test_load_errors_name_file_and_line(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(BiolmError, match=message) as err:
        load_genome([path])
    assert name in str(err.value)


def test_load_errors_missing_file_and_duplicate_across_files(tmp_path):
    with pytest.raises(BiolmError, match="data.fasta: file not found: .*nope.fa"):
        load_genome([tmp_path / "nope.fa"])
    with pytest.raises(BiolmError, match="no genome given"):
        load_genome([])
    (tmp_path / "a.fa").write_text(">x\nACGT\n")
    (tmp_path / "b.fa").write_text(">x\nACGT\n")
    with pytest.raises(BiolmError, match="contig 'x' is also in .*a.fa"):
        load_genome([tmp_path / "a.fa", tmp_path / "b.fa"])


def test_split_tail_is_disjoint_and_covers_each_contig():
    genome = as_genome(a="A" * 1000, b="C" * 35, c="G" * 4)
    train, val = split_genome(genome, "tail:0.1")
    assert train == [GenomeRegion("a", 0, 900), GenomeRegion("b", 0, 31), GenomeRegion("c", 0, 4)]
    assert val == [GenomeRegion("a", 900, 1000), GenomeRegion("b", 31, 35)]  # c's tail rounds to 0 bp
    for name, seq in genome.items():
        covered = np.zeros(len(seq), dtype=int)
        for region in train + val:
            if region.contig == name:
                covered[region.start : region.end] += 1
        assert (covered == 1).all()


def test_split_contigs_and_none():
    genome = as_genome(a="A" * 10, b="C" * 10, c="G" * 10)
    train, val = split_genome(genome, "contigs:c, a")
    assert [r.contig for r in train] == ["b"] and [r.contig for r in val] == ["a", "c"]
    assert len(val[0]) == 10
    train, val = split_genome(genome, "none")
    assert len(train) == 3 and val == []


@pytest.mark.parametrize(
    ("holdout", "message"),
    [
        ("tail:1.5", "between 0 and 1"),
        ("tail:x", "between 0 and 1"),
        ("head:0.1", "is not a holdout"),
        ("0.1", "is not a holdout"),
        ("contigs:", "no contig names"),
        ("contigs:a,zz", r"unknown contigs \['zz'\]"),
        ("contigs:a,b", "leaves no training sequence"),
    ],
)
def test_split_errors_name_the_field_and_forms(holdout, message):
    with pytest.raises(BiolmError, match=message) as err:
        split_genome(as_genome(a="A" * 10, b="C" * 10), holdout)
    assert "data.holdout" in str(err.value)


def test_training_windows_never_reach_the_held_out_tail():
    # A/T before the cut, C/G after: both sets are closed under reverse complement.
    genome = as_genome(x=random_dna(9000, 1, b"AT") + random_dna(1000, 2, b"CG"), y=random_dna(3000, 3, b"AT") + "CG" * 167)
    train, _ = split_genome(genome, "tail:0.1")
    data = GenomeWindowDataset(genome, train, window_bp=200, windows_per_epoch=400, seed=5)
    for epoch in range(3):
        data.set_epoch(epoch)
        windows = [data[i] for i in range(len(data))]
        assert all(len(w) == 200 and set(w) <= {"A", "T"} for w in windows)
    contigs = {data.locate(i)[0].contig for i in range(len(data))}
    assert contigs == {"x", "y"}


def test_windows_are_a_function_of_seed_epoch_and_index():
    genome = as_genome(x=random_dna(5000))
    regions = [GenomeRegion("x", 0, 5000)]
    first = GenomeWindowDataset(genome, regions, 100, 64, seed=7)
    again = GenomeWindowDataset(genome, regions, 100, 64, seed=7)
    epoch0 = [first[i] for i in range(64)]
    assert [again[i] for i in reversed(range(64))] == epoch0[::-1]  # order of access does not matter
    first.set_epoch(1)
    assert sum(first[i] == epoch0[i] for i in range(64)) < 3
    first.set_epoch(0)
    assert [first[i] for i in range(64)] == epoch0
    other_seed = GenomeWindowDataset(genome, regions, 100, 64, seed=8)
    assert sum(other_seed[i] == epoch0[i] for i in range(64)) < 3
    with pytest.raises(IndexError):
        first[64]


def test_starts_are_uniform_over_valid_starts_across_regions():
    genome = as_genome(x=random_dna(1000, 1), y=random_dna(3000, 2), z=random_dna(50, 3))
    regions = [GenomeRegion(name, 0, len(seq)) for name, seq in genome.items()]
    data = GenomeWindowDataset(genome, regions, 100, 4000, rc_prob=0.0)
    located = [data.locate(i)[0] for i in range(len(data))]
    share_x = np.mean([r.contig == "x" for r in located])
    assert share_x == pytest.approx(901 / (901 + 2901), abs=0.025)
    assert not any(r.contig == "z" for r in located)  # shorter than a window: skipped
    assert max(r.end for r in located if r.contig == "y") <= 3000


def test_n_rich_windows_are_redrawn_and_all_n_regions_fail():
    genome = as_genome(gap="N" * 5000, x=random_dna(400), mixed="ACGTNNNNNN" * 10)
    regions = [GenomeRegion(name, 0, len(seq)) for name, seq in genome.items()]
    data = GenomeWindowDataset(genome, regions, 100, 200, max_n_fraction=0.1)
    assert all(data.locate(i)[0].contig == "x" for i in range(len(data)))
    assert all(w.count("N") == 0 for w in (data[i] for i in range(len(data))))
    lenient = GenomeWindowDataset(genome, [regions[2]], 100, 5, max_n_fraction=0.6, rc_prob=0.0)
    assert lenient[0] == text(genome["mixed"])
    only_gap = GenomeWindowDataset(genome, regions[:1], 100, 5)
    with pytest.raises(BiolmError, match="mostly N"):
        only_gap[0]


def test_reverse_complement_rate_and_involution():
    genome = as_genome(x=random_dna(3000))
    data = GenomeWindowDataset(genome, [GenomeRegion("x", 0, 3000)], 50, 2000, rc_prob=0.3)
    flipped = 0
    for i in range(len(data)):
        region, rc = data.locate(i)
        forward = text(genome["x"][region.start : region.end])
        assert data[i] == (reverse_complement(forward) if rc else forward)
        flipped += rc
    assert flipped / len(data) == pytest.approx(0.3, abs=0.04)
    seq = random_dna(500, 4, b"ACGTN")
    assert reverse_complement(reverse_complement(seq)) == seq
    assert reverse_complement("AACGTNryk") == "mryNACGTT"
    never = GenomeWindowDataset(genome, [GenomeRegion("x", 0, 3000)], 50, 100, rc_prob=0.0)
    assert not any(never.locate(i)[1] for i in range(100))


def test_validation_tiles_are_fixed_ordered_and_skip_n():
    genome = as_genome(x=random_dna(1050, 1), y="N" * 100 + random_dna(230, 2))
    regions = [GenomeRegion("x", 0, 1050), GenomeRegion("y", 0, 330)]
    val = GenomeWindowDataset(genome, regions, 100, 0, deterministic_positions=True)
    tiles = [val.locate(i) for i in range(len(val))]
    assert [(r.contig, r.start) for r, _ in tiles] == [("x", s) for s in range(0, 1000, 100)] + [("y", 100), ("y", 200)]
    assert not any(rc for _, rc in tiles)
    windows = [val[i] for i in range(len(val))]
    val.set_epoch(3)
    assert [val[i] for i in range(len(val))] == windows
    assert windows[0] == text(genome["x"][:100])
    capped = GenomeWindowDataset(genome, regions, 100, 4, deterministic_positions=True)
    assert [capped.locate(i)[0].start for i in range(len(capped))] == [0, 400, 700, 200]  # evenly spaced over all 12


def test_set_window_bp_and_validation_of_arguments():
    genome = as_genome(x=random_dna(500))
    regions = [GenomeRegion("x", 0, 500)]
    data = GenomeWindowDataset(genome, regions, 64, 10)
    assert {len(data[i]) for i in range(10)} == {64}
    data.set_window_bp(256)
    assert {len(data[i]) for i in range(10)} == {256}
    with pytest.raises(BiolmError, match="data.window_bp=600: no region is that long"):
        data.set_window_bp(600)
    with pytest.raises(BiolmError, match="data.windows_per_epoch"):
        GenomeWindowDataset(genome, regions, 64, 0)
    with pytest.raises(BiolmError, match="data.rc_prob"):
        GenomeWindowDataset(genome, regions, 64, 10, rc_prob=2.0)
    with pytest.raises(BiolmError, match="not inside the genome"):
        GenomeWindowDataset(genome, [GenomeRegion("chrZ", 0, 10)], 64, 10)


def test_length_warmup_doubles_then_holds():
    schedule = length_warmup_schedule(1024, 64, 8)
    assert [schedule(e) for e in range(10)] == [64, 64, 128, 128, 256, 256, 512, 512, 1024, 1024]
    assert [length_warmup_schedule(1000, 100, 4)(e) for e in range(5)] == [100, 200, 400, 800, 1000]
    assert length_warmup_schedule(1024, 64, 0)(0) == 1024
    assert length_warmup_schedule(64, 64, 5)(0) == 64
    with pytest.raises(BiolmError, match="data.length_warmup"):
        length_warmup_schedule(64, 128, 3)

"""Motifs from attributions: seqlets at the implanted sites, one cluster per motif on either strand, Tomtom
matches, and the files of `biolm motifs`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from biolm.errors import BiolmError
from biolm.interpret.attributions import Attributions
from biolm.interpret.motifs import call_seqlets, find_motifs, match_known, motif_table

pytest.importorskip("memelite")

KNOWN = Path(__file__).parent / "data" / "known_motifs.meme"  # NFKB GGGACTTTCC, TATA TATAAAAG, EBOX CACGTG (hand-written)


def reverse_complement(seq: str) -> str:
    return seq[::-1].translate(str.maketrans("ACGT", "TGCA"))


def implanted(n: int = 40, length: int = 60, seed: int = 0) -> tuple[Attributions, list[int]]:
    """Random sequences, each with NF-kB (either strand) or TATA at a random place; the site's bases score 1, the
    rest Gaussian noise (sd 0.05). Returns the attributions and each site's start."""
    rng = np.random.default_rng(seed)
    sequences, scores, starts = [], [], []
    for i in range(n):
        seq = "".join(rng.choice(list("ACGT"), size=length))
        site = "GGGACTTTCC" if i % 2 == 0 else "TATAAAAG"
        if i % 4 == 2:
            site = reverse_complement(site)
        start = int(rng.integers(5, length - len(site) - 5))
        seq = seq[:start] + site + seq[start + len(site) :]
        score = rng.normal(0, 0.05, length)
        score[start : start + len(site)] += 1.0
        sequences.append(seq)
        scores.append(score.astype(np.float32))
        starts.append(start)
    attributions = Attributions([f"s{i}" for i in range(n)], sequences, scores, np.ones(n, np.float32), ["1"] * n, "saliency", None)
    return attributions, starts


def test_seqlets_sit_on_the_implanted_sites():
    attributions, starts = implanted()
    seqlets, threshold = call_seqlets(attributions, seqlet_bp=8, flank_bp=2, max_per_sequence=1)
    assert threshold > 0
    assert len(seqlets) >= 35  # a few sites too close to an end to take flanks
    for s in seqlets:
        core = (s.start + 2, s.end - 2)
        assert core[0] < starts[s.index] + 8 and core[1] > starts[s.index]  # overlaps the site


def test_two_motifs_on_either_strand_and_their_known_matches():
    attributions, _ = implanted()
    motifs = find_motifs(attributions, seqlet_bp=8, flank_bp=2, min_seqlets=5)
    match_known(motifs, KNOWN)
    table = motif_table(motifs)
    assert len(table) == 2, table
    best = set(table.best_match.str.split().str[0])
    assert best == {"NFKB", "TATA"}
    assert (table.match_p_value < 1e-3).all()
    nfkb = motifs.motifs[list(table.best_match.str.startswith("NFKB")).index(True)]
    assert {strand for _, strand in nfkb.seqlets} == {1, -1}  # sites on both strands joined one motif
    assert nfkb.consensus in ("GGGACTTTCC", reverse_complement("GGGACTTTCC")) or "GGGACTTT" in nfkb.consensus.upper() + reverse_complement(nfkb.consensus.upper())


def test_noise_alone_gives_no_motif():
    rng = np.random.default_rng(1)
    sequences = ["".join(rng.choice(list("ACGT"), size=60)) for _ in range(30)]
    scores = [rng.normal(0, 0.05, 60).astype(np.float32) for _ in range(30)]
    attributions = Attributions([f"s{i}" for i in range(30)], sequences, scores, np.ones(30, np.float32), ["1"] * 30, "saliency", None)
    assert find_motifs(attributions, min_seqlets=5).motifs == []


def test_bad_inputs_are_one_line_errors(tmp_path):
    attributions, _ = implanted(8)
    with pytest.raises(BiolmError, match="0 < fdr < 1"):
        find_motifs(attributions, fdr=2)
    bad = tmp_path / "bad.meme"
    bad.write_text("not a meme file\n")
    motifs = find_motifs(attributions, min_seqlets=2)
    with pytest.raises(BiolmError, match="bad.meme"):
        match_known(motifs, bad)
    protein = Attributions(["p"], ["MKV"], [np.ones(3, np.float32)], np.ones(1, np.float32), ["1"], "ism", None, letters="ACDE")
    with pytest.raises(BiolmError, match="DNA"):
        find_motifs(protein)


def test_cli_writes_the_motif_folder(tmp_path, capsys):
    from biolm.cli import main

    attributions, _ = implanted()
    attributions.save(tmp_path / "attr")
    code = main(["motifs", f"attributions={tmp_path / 'attr'}", f"output={tmp_path / 'motifs'}", f"motif_db={KNOWN}", "seqlet_bp=8", "flank_bp=2"])
    assert code == 0
    out = tmp_path / "motifs"
    table = pd.read_csv(out / "motifs.csv")
    assert len(table) == 2 and set(table.best_match.str.split().str[0]) == {"NFKB", "TATA"}
    assert (out / "motifs.meme").read_text().count("MOTIF motif_") == 2
    assert len(list((out / "logos").glob("*.png"))) == 4
    seqlets = pd.read_csv(out / "seqlets.csv")
    assert set(seqlets.motif.dropna()) == {"motif_1", "motif_2"}
    assert "Tomtom against 3 motifs" in (out / "report.md").read_text()
    code = main(["motifs", f"attributions={tmp_path / 'nowhere'}", f"output={tmp_path / 'm2'}"])
    assert code == 2 and "not a folder written by biolm interpret" in capsys.readouterr().err

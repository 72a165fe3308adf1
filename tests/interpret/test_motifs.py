"""Motifs from attributions: seqlets at the implanted sites, one cluster per motif on either strand, motifs
per explained target, the CWM of ISM attributions, Tomtom matches, and the files of `biolm motifs`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from biolm.errors import BiolmError
from biolm.interpret.motifs import call_seqlets, find_motifs, match_known, motif_table
from biolm.interpret.outputs import Attributions
from biolm.tokenizers.alphabet import reverse_complement

pytest.importorskip("memelite")

KNOWN = Path(__file__).parent / "data" / "known_motifs.meme"  # NFKB GGGACTTTCC, TATA TATAAAAG, EBOX CACGTG (hand-written)


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
    assert nfkb.consensus in ("GGGACTTTCC", reverse_complement("GGGACTTTCC"))


def test_noise_alone_gives_no_motif():
    rng = np.random.default_rng(1)
    sequences = ["".join(rng.choice(list("ACGT"), size=60)) for _ in range(30)]
    scores = [rng.normal(0, 0.05, 60).astype(np.float32) for _ in range(30)]
    attributions = Attributions([f"s{i}" for i in range(30)], sequences, scores, np.ones(30, np.float32), ["1"] * 30, "saliency", None)
    assert find_motifs(attributions, min_seqlets=5).motifs == []


def test_bad_inputs_are_one_line_errors(tmp_path):
    attributions, _ = implanted(8)
    with pytest.raises(BiolmError, match="null_quantile=2 .0 < null_quantile < 1."):
        find_motifs(attributions, null_quantile=2)
    for setting, words in [({"trim": 1.5}, "trim=1.5"), ({"trim": -0.1}, "trim=-0.1"), ({"flank_bp": -1}, "flank_bp=-1"),
                           ({"max_per_sequence": 0}, "max_per_sequence=0"), ({"seqlet_bp": 1, "max_shift_bp": 0}, "seqlet_bp=1"),
                           ({"min_seqlets": 1}, "min_seqlets=1"), ({"max_seqlets": 3}, "max_seqlets=3")]:
        with pytest.raises(BiolmError, match=words) as err:
            find_motifs(attributions, **setting)
        assert "\n" not in str(err.value)
    bad = tmp_path / "bad.meme"
    bad.write_text("not a meme file\n")
    motifs = find_motifs(attributions, min_seqlets=2)
    with pytest.raises(BiolmError, match="bad.meme"):
        match_known(motifs, bad)
    truncated = tmp_path / "truncated.meme"  # a MOTIF line without a matrix, and a matrix line without numbers
    truncated.write_text(KNOWN.read_text().split("letter-probability")[0] + "letter-probability matrix: alength= 4 w= 2\nA C\n")
    with pytest.raises(BiolmError, match="truncated.meme: not a readable MEME"):
        match_known(motifs, truncated)
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


def test_a_site_at_the_end_blocks_no_other_window():
    # window sums: start 0 (20) > 1 (19) > 2 (18) > 3 (17); starts 0-2 cannot take 3 bp flanks, so they are
    # skipped and must not block start 3, which overlaps them
    scores = np.zeros(40, np.float32)
    scores[0:8] = 2.0
    scores[4:12] += 1.0
    attributions = Attributions(["s"], ["A" * 40], [scores], np.ones(1, np.float32), ["1"], "saliency", None)
    seqlets, threshold = call_seqlets(attributions, seqlet_bp=8, flank_bp=3, max_per_sequence=1)
    assert threshold < 17
    assert [(s.start, s.end, s.score) for s in seqlets] == [(0, 14, 17.0)]


def test_motifs_are_found_per_explained_target():
    nfkb, _ = implanted(40, seed=0)
    tata, _ = implanted(40, seed=1)
    # class a explains NF-kB sites, class b TATA sites: keep only those of each
    keep_a = [i for i in range(40) if i % 2 == 0]
    keep_b = [i for i in range(40) if i % 2 == 1]
    ids = [f"a{i}" for i in keep_a] + [f"b{i}" for i in keep_b]
    attributions = Attributions(ids, [nfkb.sequences[i] for i in keep_a] + [tata.sequences[i] for i in keep_b],
                                [nfkb.scores[i] for i in keep_a] + [tata.scores[i] for i in keep_b], np.ones(40, np.float32),
                                ["a"] * 20 + ["b"] * 20, "saliency", None)
    motifs = find_motifs(attributions, seqlet_bp=8, flank_bp=2, min_seqlets=5)
    match_known(motifs, KNOWN)
    table = motif_table(motifs)
    assert list(table.motif) == ["motif_a_1", "motif_b_1"] and list(table.target) == ["a", "b"]
    assert list(table.best_match.str.split().str[0]) == ["NFKB", "TATA"]
    for m in motifs.motifs:  # no motif mixes seqlets explained for different classes
        assert {attributions.target[s.index] for s, _ in m.seqlets} == {m.target}
    assert set(motifs.thresholds) == {"a", "b"}


def test_the_cwm_of_ism_attributions_is_the_mean_of_one_hot_times_hypothetical():
    base, _ = implanted(40)
    # hypothetical scores: the observed letter carries the score, every other letter an unrelated -0.3
    hypothetical = []
    for sequence, scores in zip(base.sequences, base.scores):
        hyp = np.full((len(sequence), 4), -0.3, np.float32)
        hyp[np.arange(len(sequence)), ["ACGT".index(b) for b in sequence]] = scores
        hypothetical.append(hyp)
    ism = Attributions(base.ids, base.sequences, base.scores, base.output, base.target, "ism", None, "ACGT", hypothetical)
    motifs = find_motifs(ism, seqlet_bp=8, flank_bp=2, min_seqlets=5, trim=0.5)
    assert motifs.motifs
    for m in motifs.motifs:
        assert (m.cwm >= -1e-9).all()  # the unobserved letters' -0.3 never enters the CWM
        observed = m.cwm.sum(axis=1)
        assert observed.max() > 0.5 and m.cwm.shape == m.pfm.shape


def test_cli_run_key_and_a_fresh_output_folder(tmp_path, capsys):
    import json

    from biolm.cli import main

    attributions, _ = implanted()
    attributions.settings["run"] = str(tmp_path / "runs" / "mine")
    attributions.save(tmp_path / "attr")
    assert json.loads((tmp_path / "attr" / "attributions.json").read_text())["settings"]["run"].endswith("mine")
    out = tmp_path / "motifs"
    assert main(["motifs", f"attributions={tmp_path / 'attr'}", f"output={out}", f"run={tmp_path / 'runs' / 'mine'}", "seqlet_bp=8", "flank_bp=2"]) == 0
    assert len(list((out / "logos").glob("*.png"))) == 4
    (out / "logos" / "motif_9.pfm.png").write_bytes(b"stale")
    assert main(["motifs", f"attributions={tmp_path / 'attr'}", f"output={out}", "seqlet_bp=8", "flank_bp=2", "min_seqlets=1000"]) == 0
    assert not (out / "logos").exists() and (out / "motifs.csv").is_file()  # the earlier run's logos are gone
    capsys.readouterr()
    code = main(["motifs", f"attributions={tmp_path / 'attr'}", f"output={tmp_path / 'm2'}", f"run={tmp_path / 'runs' / 'other'}"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "explain another run" in err[0] and not (tmp_path / "m2").exists()
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    code = main(["motifs", f"attributions={tmp_path / 'attr'}", f"output={tmp_path / 'mine'}"])
    assert code == 2 and "not a folder written by biolm motifs" in capsys.readouterr().err
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep"

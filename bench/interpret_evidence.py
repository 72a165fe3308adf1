"""Attribution evidence: a known answer (an implanted motif) and the real case (TATA boxes in GUE prom_300_tata).

1. Synthetic: random 80 bp backgrounds, half carrying the NF-kB site GGGACTTTCC at a random place; a
   one-hot CNN (``model=cnn``, 32 channels, 5 epochs) is trained through ``biolm finetune``. For each
   attribution method: the share of positive test sequences whose top 10 bp window overlaps the site,
   and the motif ``biolm motifs`` finds with its Tomtom match in a three-motif file; the ratio of that
   share to the share expected if the top window sat at a random place is printed last.
2. TATA (``--run``, a prom_300_tata run such as ``make demo``'s runs/demo_prom300_bert): positives of
   the bundled test split. A TATA-like match is the TBP consensus TATAWAW, exact or with one
   mismatch; for each method: the share of positives with a match whose top window overlaps one,
   against the share expected if the top window sat at a random place, the offset of the attribution
   peak from the nearest match, the share of positive attribution mass within +-10 bp of a match, and
   the median positions of attribution peaks and of matches (the TSS is near position 250); the
   hit/chance ratio is printed last on each line.

Usage: python bench/interpret_evidence.py [--run runs/demo_prom300_bert] [--methods ism,integrated_gradients,...] [--out runs/interpret_evidence]
       [--skip-synthetic] [--reuse]
"""

from __future__ import annotations

import argparse
import csv
import logging
import re
import time
from pathlib import Path

import numpy as np

from biolm.api import attribute, find_motifs, load_attributions, load_run, match_known, motif_table, write_attributions, write_motifs
from biolm.cli import main as biolm
from biolm.data.io import read_records
from biolm.resources import bundled_path

MOTIF = "GGGACTTTCC"
KNOWN = Path(__file__).resolve().parents[1] / "tests" / "interpret" / "data" / "known_motifs.meme"
TATA = re.compile(r"(?=TATA[AT]A[AT])")
TATA_CONSENSUS = "TATAWAW"  # W = A or T


def synthetic(folder: Path, rng: np.random.Generator, n: int, length: int = 80) -> list[int]:
    """Write ``folder``'s CSV; return each row's site start (-1: none)."""
    starts = []
    with open(folder, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "sequence", "label"])
        for i in range(n):
            seq = "".join(rng.choice(list("ACGT"), size=length))
            start = int(rng.integers(0, length - len(MOTIF))) if i % 2 else -1
            if start >= 0:
                seq = seq[:start] + MOTIF + seq[start + len(MOTIF) :]
            writer.writerow([f"r{i}", seq, int(start >= 0)])
            starts.append(start)
    return starts


def run_synthetic(out: Path, methods: list[str]) -> None:
    rng = np.random.default_rng(7)
    paths = {s: out / f"synthetic_{s}.csv" for s in ("train", "dev", "test")}
    synthetic(paths["train"], rng, 800)
    synthetic(paths["dev"], rng, 100)
    starts = np.array(synthetic(paths["test"], rng, 200))
    t0 = time.perf_counter()
    assert biolm(["finetune", f"data.train={paths['train']}", f"data.val={paths['dev']}", f"data.test={paths['test']}", "model=cnn", "task=binary",
                  "model.trunk.channels=32", "trainer.max_epochs=5", "optim.lr=3e-3", "schedule.min_steps=0", "progress_bar=false",
                  f"output_dir={out}", "run_name=synthetic_cnn", "overwrite=true"]) == 0
    print(f"synthetic: trained in {time.perf_counter() - t0:.0f} s")
    run = load_run(out / "synthetic_cnn")
    positives = np.flatnonzero(starts >= 0)
    records = read_records(str(paths["test"]), field_name="input", sequence_column="sequence", label_column=None, id_column="id").subset(positives)
    for method in methods:
        t0 = time.perf_counter()
        found = attribute(run, records, method=method, n_baselines=8, steps=32, batch_size=256)
        top = found.top_windows(10)
        site = starts[positives]
        hit = ((top[:, 0] < site + len(MOTIF)) & (top[:, 1] > site)).mean()
        # chance: the share of 10 bp window starts whose window would overlap the site
        n_starts = np.array([len(s) - 10 + 1 for s in found.sequences])
        chance = np.mean([len(set(range(max(0, a - 9), min(n, a + len(MOTIF))))) / n for a, n in zip(site, n_starts)])
        motifs = find_motifs(found)
        match_known(motifs, KNOWN)
        table = motif_table(motifs)
        best = f"{table.consensus[0]} ~ {table.best_match[0]} (p {table.match_p_value[0]:.1e}, {table.n_seqlets[0]} seqlets)" if len(table) else "none"
        print(f"synthetic {method:22s} {time.perf_counter() - t0:.0f} s | motif 1: {best} | top window on the site: {hit:.1%} of {len(positives)} positives, "
              f"chance {chance:.1%} | hit/chance {hit / chance:.2f}x")


def tata_sites(seq: str, mismatches: int) -> list[int]:
    """Starts of TATAWAW matches with at most ``mismatches`` mismatches."""
    allowed = [{"T"}, {"A"}, {"T"}, {"A"}, {"A", "T"}, {"A"}, {"A", "T"}]
    if mismatches == 0:
        return [m.start() for m in TATA.finditer(seq)]
    return [i for i in range(len(seq) - 6) if sum(seq[i + j] not in allowed[j] for j in range(7)) <= mismatches]


def tata_profile(found, window_bp: int = 10, mismatches: int = 0) -> dict:
    top = found.top_windows(window_bp)
    with_match = hits = expected = near_mass = total_mass = 0
    offsets, site_positions = [], []
    for seq, scores, (a, b) in zip(found.sequences, found.scores, top):
        sites = tata_sites(seq, mismatches)
        positive = np.clip(scores, 0, None)
        total_mass += positive.sum()
        if not sites:
            continue
        with_match += 1
        site_positions += sites
        covered = np.zeros(len(seq), dtype=bool)
        for s in sites:
            covered[max(0, s - 10) : s + 7 + 10] = True
        near_mass += positive[covered].sum()
        hits += any(s < b and s + 7 > a for s in sites)
        # chance: the share of window starts whose window would overlap a match
        n_starts = len(seq) - window_bp + 1
        expected += np.mean([any(s < w + window_bp and s + 7 > w for s in sites) for w in range(n_starts)])
        peak = int(np.argmax(scores))
        offsets.append(min((peak - s for s in sites), key=abs))
    return {"n": len(found), "with_match": with_match, "hit": hits / max(with_match, 1), "chance": expected / max(with_match, 1),
            "median_offset": float(np.median(offsets)) if offsets else float("nan"), "near_mass": near_mass / max(total_mass, 1e-12),
            "median_peak": float(np.median([np.argmax(s) for s in found.scores])),
            "median_site": float(np.median(site_positions)) if site_positions else float("nan")}


def run_tata(run_dir: Path, out: Path, methods: list[str], reuse: bool) -> None:
    run = load_run(run_dir)
    test = bundled_path("gue/prom_300_tata/test.csv.gz")
    records = read_records(test, field_name="input", sequence_column="sequence", label_column="label", id_column="id")
    positives = [i for i, label in enumerate(records.labels) if str(label) == "1"]
    records = records.subset(positives)
    for method in methods:
        t0 = time.perf_counter()
        saved = out / f"tata_{method}"
        if reuse and (saved / "attributions.npz").is_file():
            found = load_attributions(saved)
        else:
            found = attribute(run, records, method=method, n_baselines=8, steps=32, batch_size=256)
            write_attributions(found, saved, top_k=4, title=run_dir.name)
        motifs = find_motifs(found)
        write_motifs(motifs, found, out / f"tata_{method}_motifs")
        consensus = ", ".join(f"{r.consensus} ({r.n_seqlets})" for r in motif_table(motifs).head(3).itertuples())
        print(f"tata {method:22s} {time.perf_counter() - t0:.0f} s | motifs (seqlets): {consensus or 'none'}")
        for mismatches in (0, 1):
            p = tata_profile(found, mismatches=mismatches)
            ratio = p["hit"] / p["chance"] if p["chance"] > 0 else float("nan")
            print(f"tata {method:22s} {TATA_CONSENSUS} (<= {mismatches} mismatch): {p['with_match']}/{p['n']} positives; peak - nearest match median "
                  f"{p['median_offset']:+.0f} bp; positive mass within 10 bp {p['near_mass']:.1%}; median peak position {p['median_peak']:.0f}, "
                  f"median match position {p['median_site']:.0f}; top 10 bp window on one: {p['hit']:.1%}, chance {p['chance']:.1%} | hit/chance {ratio:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default="runs/demo_prom300_bert")
    parser.add_argument("--methods", default="ism,saliency,integrated_gradients,deeplift_shap")
    parser.add_argument("--out", default="runs/interpret_evidence")
    parser.add_argument("--skip-synthetic", action="store_true")
    parser.add_argument("--reuse", action="store_true", help="read the TATA attributions an earlier run saved in --out")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    methods = args.methods.split(",")
    if not args.skip_synthetic:
        run_synthetic(out, methods)
    if Path(args.run).is_dir():
        run_tata(Path(args.run), out, methods, args.reuse)
    else:
        print(f"tata: {args.run} not found (make demo writes it); skipped")


if __name__ == "__main__":
    main()

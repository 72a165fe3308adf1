"""Bulk prediction: `biolm predict` vs transformers' ``pipeline("text-classification")`` on the same weights, side by side.

In: ``--n`` sequences drawn (seeded, with replacement) from the bundled GUE prom_300_tata splits, 300 bp
as they are (``--lengths as-is``) or each cut to a random 60..300 bp prefix (``--lengths mixed``).
Ours: ``biolm predict run=<run> input=<fasta> output=<csv>`` (in process: the CLI's own code path, timed
end to end: loading the run, reading the FASTA in chunks, tokenising, predicting, writing the CSV; a
64-sequence call first pays the imports, as the pipeline's batch-size trials do on its side).
Reference: the same run exported with `biolm.export.export_run` (a transformers
``BertForSequenceClassification`` folder) through ``pipeline("text-classification", model=<export>,
tokenizer=<export>)`` over the same sequences written as space-separated k-mers (built before its
clock starts), at the best of ``--ref-batch-sizes`` (tried on the first 1,024 sequences).
Both sides' probabilities are checked equal on the first 512 sequences (to 1e-4).
Then peak RSS (``os.wait4``'s ``ru_maxrss``) of ``biolm predict`` in a subprocess on 10k and
``--rss-n`` (default 1M) sequences, both with a tiny stand-in model (non-overlapping 6-mers, hidden 32,
one layer, trained for a few steps) so that 1M sequences run in minutes: memory should not grow with the file.
The sequences/s ratio (ours / pipeline) is printed last.

    python bench/predict_bulk.py [--run runs/demo_prom300_bert] [--n 20000] [--lengths as-is|mixed]
                                 [--ours batch_tokens=8192 ...] [--bf16] [--rss-n 1000000] [--skip-rss]

Without the run folder (``make demo`` writes it) a stand-in run of the demo's architecture is trained
for a few steps: throughput does not depend on how well it was trained.
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

REPO = Path(__file__).resolve().parents[1]
GUE = REPO / "data" / "gue" / "prom_300_tata"


def draw_sequences(n: int, lengths: str, seed: int = 0) -> list[str]:
    """``n`` GUE prom_300_tata sequences drawn with replacement; ``mixed`` cuts each to a random 60..300 bp prefix."""
    pool = pd.concat([pd.read_csv(GUE / f"{split}.csv.gz") for split in ("train", "dev", "test")])["sequence"].tolist()
    rng = np.random.default_rng(seed)
    picked = [pool[i] for i in rng.integers(0, len(pool), n)]
    if lengths == "mixed":
        picked = [s[: int(cut)] for s, cut in zip(picked, rng.integers(60, 301, n), strict=True)]
    return picked


def write_fasta(sequences: list[str], path: Path) -> Path:
    with open(path, "w") as handle:
        for start in range(0, len(sequences), 100_000):
            handle.write("".join(f">s{i}\n{seq}\n" for i, seq in enumerate(sequences[start : start + 100_000], start)))
    return path


def stand_in_run(folder: Path, tiny: bool = False) -> Path:
    """The demo's architecture (or a tiny one, for the 1M-sequence memory run) trained for a few steps."""
    from biolm import api
    from biolm.cli import compose

    shape = ["model.trunk.hidden_size=32", "model.trunk.num_layers=1", "model.trunk.num_heads=2", "model.trunk.intermediate_size=64"]
    cfg = compose(
        "finetune",
        [
            "experiment=demo_prom300",
            "trainer.max_epochs=1",
            "+trainer.limit_train_batches=4",
            "+trainer.limit_val_batches=1",
            "+trainer.limit_test_batches=1",
            "trainer.accelerator=cpu",
            "progress_bar=false",
            f"output_dir={folder}",
            f"run_name={'tiny' if tiny else 'demo_size'}",
            *([*shape, "tokenizer=kmer6_stride6"] if tiny else []),
        ],
    )
    return Path(api.finetune(cfg))


def ours(run: Path, fasta: Path, out: Path, extra: list[str]) -> float:
    """Seconds for ``biolm predict`` end to end (in process)."""
    from biolm.cli import main

    start = time.perf_counter()
    if main(["predict", f"run={run}", f"input={fasta}", f"output={out}", *extra]) != 0:
        raise SystemExit("biolm predict failed")
    return time.perf_counter() - start


def kmer_text(sequences: list[str], k: int, stride: int) -> list[str]:
    """The export's documented input: upper-case k-mers every ``stride`` bases, separated by spaces."""
    return [" ".join(s[i : i + k] for i in range(0, len(s) - k + 1, stride)) for s in sequences]


def reference(export: Path, texts: list[str], batch_sizes: list[int]) -> tuple[float, int, np.ndarray]:
    """(seconds, batch size, positive-class probabilities) of the transformers pipeline at its best batch size."""
    from transformers import pipeline

    pipe = pipeline("text-classification", model=str(export), tokenizer=str(export), device=-1)
    positive = pipe.model.config.id2label[1]
    tune = texts[:1024]
    speeds = {}
    for size in batch_sizes:
        start = time.perf_counter()
        pipe(tune, batch_size=size, top_k=None)
        speeds[size] = len(tune) / (time.perf_counter() - start)
    best = max(speeds, key=speeds.get)
    print("pipeline batch sizes tried (seq/s on 1,024): " + ", ".join(f"{s}: {v:,.0f}" for s, v in speeds.items()), file=sys.stderr)
    start = time.perf_counter()
    scored = pipe(texts, batch_size=best, top_k=None)
    seconds = time.perf_counter() - start
    probs = np.array([next(d["score"] for d in row if d["label"] == positive) for row in scored])
    return seconds, best, probs


def peak_rss_mb(run: Path, fasta: Path, out: Path, extra: list[str]) -> tuple[float, float]:
    """(peak RSS in MB, seconds) of ``biolm predict`` in a fresh process."""
    exe = Path(sys.executable).parent / "biolm"
    start = time.perf_counter()
    process = subprocess.Popen([str(exe), "predict", f"run={run}", f"input={fasta}", f"output={out}", *extra], stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"biolm predict on {fasta} exited {process.returncode}")
    return usage.ru_maxrss / 1024, time.perf_counter() - start  # Linux: ru_maxrss is in KiB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", default=str(REPO / "runs" / "demo_prom300_bert"))
    parser.add_argument("--n", type=int, default=20_000, help="sequences for the throughput comparison")
    parser.add_argument("--lengths", choices=("as-is", "mixed"), default="as-is")
    parser.add_argument("--ref-batch-sizes", default="16,64,256,1024", help="pipeline batch sizes to try; the fastest is used")
    parser.add_argument("--ours", nargs="*", default=[], help="extra biolm predict overrides (e.g. batch_tokens=8192)")
    parser.add_argument("--bf16", action="store_true", help="also time ours with precision=bf16 (probabilities move by ~1e-3)")
    parser.add_argument("--rss-n", type=int, default=1_000_000, help="sequences for the large memory run")
    parser.add_argument("--skip-rss", action="store_true")
    args = parser.parse_args()
    logging.getLogger("transformers").setLevel(logging.ERROR)

    from biolm.export import export_run
    from biolm.runs import load_run

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        run_dir = Path(args.run)
        if not (run_dir / "model.safetensors").exists():
            print(f"{run_dir} not found (make demo writes it); training a stand-in of the same architecture", file=sys.stderr)
            run_dir = stand_in_run(tmp / "runs")
        run = load_run(run_dir)
        export = export_run(run, tmp / "export")
        sequences = draw_sequences(args.n, args.lengths)
        fasta = write_fasta(sequences, tmp / "input.fa")
        texts = kmer_text(sequences, run.tokenizer.k, run.tokenizer.stride)

        ours(run_dir, write_fasta(sequences[:64], tmp / "warm.fa"), tmp / "warm.csv", args.ours)  # imports and first-call costs
        ours_s = ours(run_dir, fasta, tmp / "ours.csv", args.ours)
        if args.bf16:
            bf16_s = ours(run_dir, fasta, tmp / "bf16.csv", [*args.ours, "precision=bf16"])
        ref_s, ref_batch, ref_probs = reference(export, texts, [int(s) for s in args.ref_batch_sizes.split(",")])
        ours_probs = pd.read_csv(tmp / "ours.csv")["prob_1"].to_numpy()
        gap = float(np.abs(ours_probs[:512] - ref_probs[:512]).max())
        if gap > 1e-4:
            raise SystemExit(f"probabilities differ by {gap:.2e} on the first 512 sequences")
        if args.bf16:
            bf16_gap = float(np.abs(pd.read_csv(tmp / "bf16.csv")["prob_1"].to_numpy() - ours_probs).max())

        rss = {}
        if not args.skip_rss:
            tiny = stand_in_run(tmp / "runs", tiny=True)
            pool = draw_sequences(10_000, args.lengths, seed=1)
            for n in (10_000, args.rss_n):
                big = write_fasta([pool[i % len(pool)] for i in range(n)], tmp / f"rss_{n}.fa")
                rss[n] = peak_rss_mb(tiny, big, tmp / f"rss_{n}.csv", args.ours)
                big.unlink()

    n_tokens = np.mean([len(t.split()) + 2 for t in texts])
    print(f"\n{args.n:,} sequences ({args.lengths}, {n_tokens:.0f} tokens on average), run {run_dir.name} "
          f"({sum(p.numel() for p in run.model.parameters()):,} parameters), torch threads {torch.get_num_threads()}, "
          f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs; probabilities agree to {gap:.1e}")
    for n, (mb, seconds) in rss.items():
        print(f"peak RSS of biolm predict (tiny stand-in model) on {n:>9,} sequences: {mb:,.0f} MB ({seconds:,.0f} s)")
    ours_rate, ref_rate = args.n / ours_s, args.n / ref_s
    if args.bf16:
        print(f"ours  with precision=bf16: {args.n / bf16_s:,.0f} sequences/s ({bf16_s:.1f} s; {args.n / bf16_s / ref_rate:.2f}x the pipeline; "
              f"probabilities within {bf16_gap:.1e} of fp32)")
    print(f"ours  biolm predict (FASTA in, CSV out{', ' + ' '.join(args.ours) if args.ours else ''}): {ours_rate:,.0f} sequences/s ({ours_s:.1f} s)")
    print(f"ref   transformers pipeline (batch_size={ref_batch}): {ref_rate:,.0f} sequences/s ({ref_s:.1f} s)")
    print(f"ratio ours / pipeline: {ours_rate / ref_rate:.2f}x")


if __name__ == "__main__":
    main()

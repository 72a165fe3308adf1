"""Tokenizer throughput: biolm's vectorised KmerTokenizer vs the DNABERT reference path, side by side.

In: real promoter sequences (GUE prom_300_tata train split, 300 bp each).
Out: Mbp/s for ours (all sequences), the DNABERT path (the first ``--n`` sequences: Python
``" ".join`` of overlapping k-mers, then transformers' pure-Python WordPiece ``BertTokenizer`` on the
same vocab.txt), and the DNABERT-2 BPE (Hugging Face ``tokenizers``, Rust, its default threads);
ids are checked equal on the common subset; the ratio is printed last.

Usage: python bench/tokenizer_speed.py [--k 6] [--n 2000]
"""

from __future__ import annotations

import argparse
import csv
import gzip
import logging
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import transformers

from biolm.tokenizers import BpeTokenizer, KmerTokenizer

ROOT = Path(__file__).resolve().parents[1]
DATA = Path("data/gue/prom_300_tata/train.csv.gz")
SHARED_DATA = Path("/work/shared") / DATA
DNABERT2 = ROOT / "data/tokenizers/dnabert2_117m/tokenizer.json"


def read_sequences() -> tuple[Path, list[str]]:
    """The ``sequence`` column of the GUE prom_300_tata train split (repo copy, else the shared one)."""
    path = ROOT / DATA if (ROOT / DATA).is_file() else SHARED_DATA
    with gzip.open(path, "rt", newline="") as handle:
        return path, [row["sequence"] for row in csv.DictReader(handle)]


def best_time_s(fn: Callable[[], object], repeats: int) -> tuple[float, object]:
    """Fastest of ``repeats`` calls, and the last result."""
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def reference_tokenizer(vocab_file: Path):
    """transformers' pure-Python BERT WordPiece (``BertTokenizerLegacy`` in transformers >= 5)."""
    cls = getattr(transformers, "BertTokenizerLegacy", transformers.BertTokenizer)
    return cls(str(vocab_file), do_lower_case=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, default=6, help="k-mer length (3..6)")
    parser.add_argument("--n", type=int, default=2000, help="sequences for the slow reference path")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of the fast paths (best is kept)")
    args = parser.parse_args()
    logging.getLogger("transformers").setLevel(logging.ERROR)

    path, seqs = read_sequences()
    subset = seqs[: args.n]
    total_bp, subset_bp = sum(map(len, seqs)), sum(map(len, subset))
    k = args.k
    ours = KmerTokenizer(k=k, stride=1)

    with tempfile.TemporaryDirectory() as tmp:
        ours.save(tmp)
        bert = reference_tokenizer(Path(tmp) / "vocab.txt")

    def dnabert_path() -> list[list[int]]:
        kmer_strings = [" ".join(s[i : i + k] for i in range(len(s) + 1 - k)) for s in subset]
        return bert(kmer_strings)["input_ids"]

    ours_s, ours_ids = best_time_s(lambda: ours.encode_batch(seqs), args.repeats)
    ref_s, ref_ids = best_time_s(dnabert_path, 1)
    if [ids.tolist() for ids in ours_ids[: len(subset)]] != ref_ids:
        raise SystemExit("MISMATCH: ours and the DNABERT reference give different ids")

    bpe = BpeTokenizer.from_file(DNABERT2)
    bpe_s, _ = best_time_s(lambda: bpe.encode_batch(seqs), args.repeats)

    ours_mbps = total_bp / ours_s / 1e6
    ref_mbps = subset_bp / ref_s / 1e6
    print(f"input: {path} ({len(seqs)} sequences, {total_bp / 1e6:.2f} Mbp)")
    print(f"ids equal on the first {len(subset)} sequences ({subset_bp / 1e6:.2f} Mbp): yes")
    print(f"ours       KmerTokenizer(k={k}, stride=1), numpy, 1 thread: {ours_mbps:8.2f} Mbp/s ({len(seqs)} seqs)")
    print(f"reference  k-mer join + {type(bert).__name__} (Python WordPiece): {ref_mbps:8.2f} Mbp/s ({len(subset)} seqs)")
    print(f"extra      BpeTokenizer DNABERT-2 (HF tokenizers, Rust, default threads): {total_bp / bpe_s / 1e6:8.2f} Mbp/s")
    print(f"ratio (ours / reference): {ours_mbps / ref_mbps:.1f}x")


if __name__ == "__main__":
    main()

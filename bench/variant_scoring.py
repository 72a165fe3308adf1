"""Variant scoring throughput: batched forward passes vs one variant at a time, same run, same variants.

In: ClinVar BRCA1 SNVs and the GRCh38 window bundled in data/variants/clinvar_brca_grch38, a
language-model run (``--run``; default runs/brca1_hyena_clm when it exists, else a random
hyena_tiny built here, whose speed is the same). Out: variants scored per second with
``batch_size=--batch`` and with ``batch_size=1`` (both via `biolm.api.score_variants`, the
scores checked equal), and the ratio, printed last.

Usage: python bench/variant_scoring.py [--n 128] [--window 512] [--batch 32] [--run runs/<lm run>]
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from omegaconf import OmegaConf
from safetensors.torch import save_file

from biolm.api import score_variants
from biolm.models import build_language_model
from biolm.tokenizers import CharTokenizer
from biolm.variants import Reference

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data/variants/clinvar_brca_grch38"


def random_run(folder: Path) -> Path:
    """A hyena_tiny CLM run folder with random weights (same shapes as configs/model/hyena_tiny.yaml)."""
    cfg = OmegaConf.create({"model": OmegaConf.load(ROOT / "configs/model/hyena_tiny.yaml"), "objective": {"name": "clm"}})
    tokenizer = CharTokenizer()
    folder.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, folder / "config.yaml")
    tokenizer.save(folder / "tokenizer")
    model = build_language_model(cfg.model, tokenizer.vocab_size, tokenizer.pad_id)
    save_file({k: v.contiguous().clone() for k, v in model.state_dict().items()}, str(folder / "model.safetensors"))
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=128, help="variants")
    parser.add_argument("--window", type=int, default=512)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--run", default=None)
    args = parser.parse_args()
    logging.disable(logging.INFO)
    torch.manual_seed(0)

    labels = pd.read_csv(DATA / "clinvar_20200803_BRCA1_BRCA2_labels.csv.gz", dtype={"chrom": str})
    snvs = labels[(labels["chrom"] == "17") & (labels["ref"].str.len() == 1) & (labels["alt"].str.len() == 1)]
    variants = snvs[["chrom", "pos", "ref", "alt"]].head(args.n).reset_index(drop=True)
    reference = Reference(DATA / "chr17_42425000-43600000.GRCh38.fa.gz")
    with tempfile.TemporaryDirectory() as tmp:
        run = args.run or (str(ROOT / "runs/brca1_hyena_clm") if (ROOT / "runs/brca1_hyena_clm/model.safetensors").exists() else str(random_run(Path(tmp) / "run")))
        from biolm.variants.scoring import load_scoring_run

        loaded = load_scoring_run(run)
        score_variants(loaded, variants.head(4), reference, args.window, batch_size=4)  # warm-up
        timings = {}
        results = {}
        for name, batch in (("batched", args.batch), ("one_at_a_time", 1)):
            start = time.perf_counter()
            results[name] = score_variants(loaded, variants, reference, args.window, batch_size=batch)["score"].to_numpy()
            timings[name] = time.perf_counter() - start
    np.testing.assert_allclose(results["batched"], results["one_at_a_time"], rtol=1e-4, atol=1e-3)
    print(f"run: {run} ({loaded.objective if hasattr(loaded, 'objective') else 'supervised'}), {len(variants)} ClinVar BRCA1 SNVs, window {args.window} bp, torch threads {torch.get_num_threads()}")
    for name, seconds in timings.items():
        print(f"{name:>14}: {len(variants) / seconds:8.1f} variants/s ({seconds:.1f} s)")
    print(f"batched (batch {args.batch}) / one-at-a-time: {timings['one_at_a_time'] / timings['batched']:.2f}x")


if __name__ == "__main__":
    main()

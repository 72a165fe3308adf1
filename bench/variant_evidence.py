"""Evidence for the README: zero-shot and supervised AUROC on ClinVar BRCA1 SNVs (bundled data).

In: data/variants/clinvar_brca_grch38 (ClinVar 2020-08-03 BRCA1 labels + the GRCh38 window) and a
pretrained language-model run (``--lm``, default runs/brca1_hyena_clm).

- zero-shot: `score_variants` with the LM run on every BRCA1 SNV of the window, AUROC/AUPRC
  (lower log-likelihood ratio = pathogenic).
- supervised: SNVs are split by position, 2 kb blocks shuffled into train/val/test (60/15/25%);
  test variants whose window overlaps a train/val variant's window are dropped (no shared bases).
  A binary classifier (``biolm finetune``; ``--model hyena_tiny`` starts from the LM run's trunk,
  ``--model cnn`` from scratch, char tokens) learns
  pathogenic vs benign from the variant-centred windows with the alternative allele; the test
  variants are then scored with ``supervised_diff`` (p(alt window) - p(ref window), averaged over
  both strands) and with p(alt window) alone.

Usage: python bench/variant_evidence.py [--window 256] [--max-time 00:00:06:00] [--skip-zero-shot]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from biolm.api import predict, score_variants
from biolm.variants import Reference, evaluate_scores
from biolm.variants.sequences import variant_windows

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data/variants/clinvar_brca_grch38"
BLOCK_BP = 2000


def brca1_snvs() -> pd.DataFrame:
    labels = pd.read_csv(DATA / "clinvar_20200803_BRCA1_BRCA2_labels.csv.gz", dtype={"chrom": str})
    keep = (labels["chrom"] == "17") & (labels["ref"].str.len() == 1) & (labels["alt"].str.len() == 1) & (labels["in_reference_window"] == 1)
    return labels[keep][["chrom", "pos", "ref", "alt", "label"]].reset_index(drop=True)


def position_split(snvs: pd.DataFrame, window_bp: int, seed: int = 0) -> dict[str, pd.DataFrame]:
    """Train/val/test by shuffled 2 kb blocks; test variants within window_bp of a train/val one are dropped."""
    blocks = np.sort(snvs["pos"].floordiv(BLOCK_BP).unique())
    np.random.default_rng(seed).shuffle(blocks)
    cut1, cut2 = int(0.60 * len(blocks)), int(0.75 * len(blocks))
    part = {b: ("train" if i < cut1 else "val" if i < cut2 else "test") for i, b in enumerate(blocks)}
    snvs = snvs.assign(split=snvs["pos"].floordiv(BLOCK_BP).map(part))
    seen = np.sort(snvs.loc[snvs["split"] != "test", "pos"].to_numpy())
    test = snvs[snvs["split"] == "test"]
    nearest = np.abs(test["pos"].to_numpy()[:, None] - seen[None, :]).min(axis=1)
    dropped = int((nearest < window_bp).sum())
    snvs = snvs.drop(test.index[nearest < window_bp])
    print(f"split by {BLOCK_BP} bp blocks: " + ", ".join(f"{k} {int((snvs['split'] == k).sum())}" for k in ("train", "val", "test"))
          + f"; {dropped} test variants within {window_bp} bp of a training variant dropped")
    return {k: snvs[snvs["split"] == k].reset_index(drop=True) for k in ("train", "val", "test")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lm", default=str(ROOT / "runs/brca1_hyena_clm"))
    parser.add_argument("--window", type=int, default=256)
    parser.add_argument("--max-time", default="00:00:06:00")
    parser.add_argument("--run-name", default="brca1_clinvar_supervised")
    parser.add_argument("--model", default="hyena_tiny", help="hyena_tiny starts from the LM run's trunk; other models (cnn) from scratch")
    parser.add_argument("--skip-zero-shot", action="store_true")
    parser.add_argument("--work", default="/tmp/biolm_variant_evidence")
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    reference = Reference(DATA / "chr17_42425000-43600000.GRCh38.fa.gz")
    snvs = brca1_snvs()
    results = {}
    if not args.skip_zero_shot:
        scores = score_variants(args.lm, snvs, reference, window_bp=512)
        results["zero_shot"] = evaluate_scores(scores)
        print("zero-shot", json.dumps(results["zero_shot"]))

    splits = position_split(snvs, args.window)
    for name, frame in splits.items():
        windows = variant_windows(frame, reference, args.window, "+")
        pd.DataFrame({"sequence": windows.alt, "label": frame["label"]}).to_csv(work / f"{name}.csv", index=False)
    command = [
        sys.executable, "-m", "biolm.cli", "finetune", f"data.train={work / 'train.csv'}", f"data.val={work / 'val.csv'}",
        f"data.test={work / 'test.csv'}", f"model={args.model}", "task=binary", f"run_name={args.run_name}",
        "overwrite=true", "trainer.max_epochs=20", f"trainer.max_time={args.max_time}", "progress_bar=false", "data.batch_size=32",
    ]
    command += [f"init_from={args.lm}"] if args.model.startswith("hyena") else ["tokenizer=char"]
    subprocess.run(command, check=True, cwd=ROOT)
    run = ROOT / "runs" / args.run_name
    test = splits["test"]
    for rc_average in (False, True):
        scored = score_variants(run, test, reference, window_bp=args.window, rc_average=rc_average)
        results[f"supervised_diff{'_rc' if rc_average else ''}"] = evaluate_scores(scored)
    windows = variant_windows(test, reference, args.window, "+")
    p_alt = predict(run, windows.alt)["prob_1"].to_numpy()
    results["classifier_p_alt"] = evaluate_scores(test.assign(score=p_alt, method="supervised_diff", model=str(run)))
    for name, metrics in results.items():
        print(f"{name:>22}: AUROC {metrics['auroc']:.3f}  AUPRC {metrics['auprc']:.3f}  n={metrics['n']} ({metrics['n_pathogenic']} pathogenic)")
    (work / "results.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

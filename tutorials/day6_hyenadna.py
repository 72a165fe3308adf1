"""Day 6, HyenaDNA: character tokens, causal-LM pretraining on a genome, long-input fine-tuning, the cost of long
context against attention, and zero-shot variant scores, all on the bundled data.

    python tutorials/day6_hyenadna.py            # the full run (about 20 minutes on 2 shared CPU cores)
    python tutorials/day6_hyenadna.py --fast     # a tiny budget (under a minute): every step, meaningless numbers

Training and scoring are `biolm` command lines, run here through `biolm.cli.main` (the function behind the `biolm`
executable); the speed comparison reuses the functions of bench/long_context.py. Outputs go under --out: runs/,
brca1_snvs.csv, zero_shot.* and summary.json.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1] / "bench")]  # _common, long_context
from _common import REPO, arguments, biolm, check, read_json, write_summary  # noqa: E402

args = arguments(__doc__.splitlines()[0], "day6_hyenadna")
OUT = args.out
RUNS = OUT / "runs"
CLINVAR = REPO / "data" / "variants" / "clinvar_brca_grch38"






# Budgets. The full run is sized for a few minutes on 2 shared CPU cores; --fast only checks that every step works.
if args.fast:
    PRETRAIN = ["trainer.max_epochs=1", "+trainer.limit_train_batches=2", "+trainer.limit_val_batches=1",
                "data.holdout=tail:0.01"]  # 1% of the genome held out: 46 windows to score instead of 464
    FINETUNE = ["trainer.max_epochs=1", "+trainer.limit_train_batches=2", "+trainer.limit_val_batches=1", "schedule.min_steps=0"]
    LENGTHS, N_SNVS = [256, 512], 16
else:
    PRETRAIN = ["trainer.max_epochs=3"]  # 3 epochs x 64 steps of 8 windows of 1,022 bp
    FINETUNE = ["trainer.max_epochs=1", "schedule.min_steps=0"]  # one pass over the 4,904 training promoters
    LENGTHS, N_SNVS = [1024, 2048, 4096, 8192], 200
QUIET = ["progress_bar=false", "overwrite=true", f"output_dir={RUNS}"]

# --8<-- [start:tokens]
# 1. Character tokens: one token per base, so the model sees every nucleotide and a single-base change is a
# single-token change (with BPE or k-mers one SNV rewrites one or several multi-base tokens). The price is length:
# 1 kb is 1,000 tokens, which is why HyenaDNA replaces attention (cost ~ L^2) with long convolutions (~ L log L).
from biolm.tokenizers import CharTokenizer  # noqa: E402

chars = CharTokenizer()
print("vocabulary:", chars.vocab)
print("ACGTN ->", chars.encode("ACGTN").tolist(), " ([CLS]=2 ... [SEP]=3 around the bases)")
# --8<-- [end:tokens]
check(chars.encode("ACGTN").tolist() == [2, 5, 6, 7, 8, 9, 3], "char ids are [CLS] A C G T N [SEP]")

# --8<-- [start:pretrain]
# 2. Causal-LM pretraining (objective=clm): predict every next base from the bases before it, on random 1,022-bp
# windows of E. coli (both strands: reverse-complement augmentation), the last 10% of the genome held out. The
# run reports bits per base on every held-out window (2.000 = guessing uniformly among A C G T) and, on the same
# bases, an order-6 Markov chain: P(base | the 6 before it), counted on the training bases. Beating that baseline
# means the model uses more than the last few bases.
biolm("pretrain", "experiment=ecoli_hyena_clm", "run_name=ecoli_hyena_clm", *PRETRAIN, *QUIET)
lm = read_json(RUNS / "ecoli_hyena_clm" / "pretrain_metrics.json")
print(f"held-out: {lm['heldout/bits_per_base']:.3f} bits per base after {lm['global_step']} steps "
      f"(order-6 Markov chain: {lm['heldout/markov6_bits_per_base']:.3f})")
# --8<-- [end:pretrain]
check(0.5 < lm["heldout/bits_per_base"] < 3.0 and lm["heldout/windows"] > 0, "held-out bits per base out of range")

# --8<-- [start:finetune]
# 3. Fine-tuning from the pretrained trunk on GUE prom_300_tata (pooling=last: in a causal model only the last
# token has seen the whole sequence). Twice: whole 300-bp sequences, and as long inputs are handled, cut into
# windows (data.window_bp=150: 2 per sequence, so both runs read the same bases). Each window trains with its sequence's
# label; at test time a sequence's prediction is the mean over its windows (predict.aggregate=mean). hyena_tiny
# takes 1,024 tokens; the hyenadna_* configs take up to 1M, so a window there can be a whole gene.
GUE_DATA = ["data=gue_prom_300_tata", "task=binary", "model=hyena_tiny", f"init_from={RUNS / 'ecoli_hyena_clm'}"]
biolm("finetune", *GUE_DATA, "run_name=prom300_whole", *FINETUNE, *QUIET)
biolm("finetune", *GUE_DATA, "data.window_bp=150", "predict.aggregate=mean",
      "run_name=prom300_windows", *FINETUNE, *QUIET)
whole = read_json(RUNS / "prom300_whole" / "test_metrics.json")
windows = read_json(RUNS / "prom300_windows" / "test_metrics.json")
for name, metrics in (("whole sequences", whole), ("150-bp windows", windows)):
    print(f"prom_300_tata test, {name}: MCC {metrics['mcc']:.3f}  AUROC {metrics['auroc']:.3f}  (n={metrics['n_test']})")
# --8<-- [end:finetune]
check(whole["n_test"] == windows["n_test"] == 613, "both runs score the 613 whole test sequences")

# --8<-- [start:speed]
# 4. What long context costs: one training step (forward + backward, batch 1) of a 2-layer, 128-wide Hyena trunk
# against an attention encoder of the same width (ALiBi, so no length limit), at growing lengths L, each case in a
# fresh process (bench/long_context.py; `python bench/long_context.py` runs the full 1k..32k version).
import long_context  # noqa: E402

bench = argparse.Namespace(d_model=128, layers=2, heads=4, repeats=2, max_seconds=10.0, threads=1, seed=0)
times: dict[str, dict[int, dict]] = {"hyena": {}, "attention": {}}
for length in LENGTHS:
    for model in ("hyena", "attention"):
        result = long_context.run_case(bench, model, length)
        check(result is not None, f"{model} at L={length} failed")
        times[model][length] = result
    h, a = times["hyena"][length]["seconds"], times["attention"][length]["seconds"]
    print(f"L={length:>6}: hyena {h:.3f} s, attention {a:.3f} s per step, attention/hyena {a / h:.1f}x")
growth = {model: long_context.growth_exponent(points) for model, points in times.items()}
print(f"time ~ L^k: hyena k={growth['hyena']:.2f}, attention k={growth['attention']:.2f}")
# --8<-- [end:speed]
speed_ratio = times["attention"][LENGTHS[-1]]["seconds"] / times["hyena"][LENGTHS[-1]]["seconds"]

# --8<-- [start:zeroshot]
# 5. Zero-shot variant effects: no labels are used to train. For each ClinVar BRCA1 SNV the causal LM scores the
# 512-bp window around it with the reference allele and with the alternative one; the score is
# log P(alt window) - log P(ref window) (clm_llr): negative when the change makes the DNA less "genome-like".
# A stratified subset of the SNVs keeps this quick; labels= makes it write AUROC/AUPRC against the ClinVar labels.
labels = pd.read_csv(CLINVAR / "clinvar_20200803_BRCA1_BRCA2_labels.csv.gz", dtype={"chrom": str})
snvs = labels[(labels["chrom"] == "17") & (labels["in_reference_window"] == 1)
              & (labels["ref"].str.len() == 1) & (labels["alt"].str.len() == 1)]
subset = pd.concat([group.sample(N_SNVS // 2, random_state=0) for _, group in snvs.groupby("label")])  # half pathogenic
subset[["chrom", "pos", "ref", "alt", "label"]].sort_values("pos").to_csv(OUT / "brca1_snvs.csv", index=False)
biolm("variants", "score", f"run={RUNS / 'ecoli_hyena_clm'}", f"vcf={OUT / 'brca1_snvs.csv'}",
      f"ref={CLINVAR / 'chr17_42425000-43600000.GRCh38.fa.gz'}", "window_bp=512", f"labels={OUT / 'brca1_snvs.csv'}",
      f"out={OUT / 'zero_shot.tsv'}")
scores = pd.read_csv(OUT / "zero_shot.tsv", sep="\t")
zero_shot = read_json(OUT / "zero_shot.metrics.json")
print(scores.head().to_string(index=False))
print(f"zero-shot clm_llr on {len(scores)} SNVs: AUROC {zero_shot['auroc']:.3f}, AUPRC {zero_shot['auprc']:.3f}")
# --8<-- [end:zeroshot]
check(len(scores) == N_SNVS and scores["score"].notna().all(), "every SNV gets a score")

write_summary(args, "day6_hyenadna", {
    "clm_heldout_bits_per_base": round(lm["heldout/bits_per_base"], 4),
    "markov6_heldout_bits_per_base": round(lm["heldout/markov6_bits_per_base"], 4),
    "clm_steps": lm["global_step"],
    "prom300_mcc_whole": round(whole["mcc"], 4),
    "prom300_auroc_whole": round(whole["auroc"], 4),
    "prom300_mcc_windows": round(windows["mcc"], 4),
    "prom300_auroc_windows": round(windows["auroc"], 4),
    "growth_exponent_hyena": round(growth["hyena"], 2),
    "growth_exponent_attention": round(growth["attention"], 2),
    f"attention_over_hyena_at_{LENGTHS[-1]}": round(speed_ratio, 2),
    "zero_shot_n": len(scores),
    "zero_shot_auroc": round(zero_shot["auroc"], 4),
    "zero_shot_auprc": round(zero_shot["auprc"], 4),
})

"""Day 5, DNABERT-2: a BPE tokenizer trained on a genome, masked-LM pretraining, fine-tuning, LoRA, a DNABERT-2
checkpoint folder, and the BRCA1 risk workflow, all with `biolm` commands on the bundled data.

    python tutorials/day5_dnabert2.py            # the full run (about 11 minutes on 2 shared CPU cores)
    python tutorials/day5_dnabert2.py --fast     # a tiny budget (under a minute): every step, meaningless numbers

Every step is one `biolm` command line, run here through `biolm.cli.main` (the function behind the `biolm`
executable), so what this script does is exactly what the same lines do in a terminal. Outputs go under --out:
tokenizer/, runs/ (one run folder per training), brca1_windows/, dnabert2_tiny/ and summary.json.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]  # _common, tests.checkpoints
from _common import REPO, arguments, biolm, check, read_json, write_summary  # noqa: E402

args = arguments(__doc__.splitlines()[0], "day5_dnabert2")
OUT = args.out
RUNS = OUT / "runs"
GENOME = REPO / "data" / "genomes" / "ecoli_k12_mg1655.fa.gz"
GUE = REPO / "data" / "gue" / "prom_300_tata"
CLINVAR = REPO / "data" / "variants" / "clinvar_brca_grch38"






# Budgets. The full run is sized for a few minutes on 2 shared CPU cores; --fast only checks that every step works.
if args.fast:
    TOKENIZER = ["max_bp=200000"]
    PRETRAIN = ["trainer.max_epochs=1", "+trainer.limit_train_batches=2", "+trainer.limit_val_batches=1",
                "data.holdout=tail:0.01"]  # 1% of the genome held out: 46 windows to score instead of 464
    FINETUNE = ["trainer.max_epochs=1", "+trainer.limit_train_batches=2", "+trainer.limit_val_batches=1", "schedule.min_steps=0"]
else:
    TOKENIZER = ["max_bp=2000000"]  # 2 of the 4.6 Mbp: the merges are settled by then, and it takes ~1 minute
    PRETRAIN = ["trainer.max_epochs=10"]  # 10 epochs x 32 steps of 16 windows of 1 kb
    FINETUNE = ["trainer.max_epochs=1", "schedule.min_steps=0"]  # one pass over 4,904 promoters: 154 steps
QUIET = ["progress_bar=false", "overwrite=true", f"output_dir={RUNS}"]

# --8<-- [start:tokenizer]
# 1. A DNABERT-2-style tokenizer: byte-pair encoding (BPE) learned from the genome itself. BPE starts from the
# letters A C G T and repeatedly merges the most frequent adjacent pair into a new token, so frequent stretches
# (codons, motifs, repeats) become single tokens of 2-12 bases and a 300-bp sequence becomes ~70 tokens instead of
# 300. DNABERT-2 used a 4,096-token vocabulary learned on 135 genomes; a 1,024-token one suits one bacterial genome
# and a tiny model (a 4,096 x 128 embedding table would hold most of its parameters).
biolm("tokenizer", "train", f"fasta={GENOME}", "vocab_size=1024", f"output={OUT / 'tokenizer'}", *TOKENIZER)

from biolm.tokenizers.base import load_tokenizer  # noqa: E402

tokenizer = load_tokenizer(OUT / "tokenizer")
promoter = pd.read_csv(GUE / "test.csv.gz")["sequence"].iloc[0]
spans = tokenizer.token_spans(promoter[:60])  # (n_tokens, 2) [start, end) bases; specials are (-1, -1)
pieces = [promoter[s:e] for s, e in spans if s >= 0]
print("first 60 bp of a promoter as BPE tokens:", " ".join(pieces))
lengths = [len(ids) - 2 for ids in tokenizer.encode_batch(pd.read_csv(GUE / "test.csv.gz")["sequence"].tolist())]
bases_per_token = 300 / float(np.mean(lengths))  # every prom_300_tata sequence is 300 bp
print(f"prom_300_tata test sequences: {np.mean(lengths):.1f} tokens on average, {bases_per_token:.2f} bases per token")
# --8<-- [end:tokenizer]
check(tokenizer.vocab_size == 1024 and "".join(pieces) == promoter[:60], "the BPE tokens do not tile the sequence")
check(bases_per_token > 2.5, f"BPE tokens should span several bases, got {bases_per_token:.2f}")

# --8<-- [start:pretrain]
# 2. Masked-LM pretraining (objective=mlm), as BERT and DNABERT-2 were trained: 15% of the tokens of each 1-kb
# window of E. coli are hidden (80% [MASK], 10% a random token, 10% kept) and the model predicts them from both
# sides. The last 10% of the genome is held out; at the end the run scores every held-out window and, beside it,
# an order-6 Markov chain fitted on the training bases (heldout/markov6_bits_per_base).
biolm("pretrain", "objective=mlm", "model=bert_tiny", "tokenizer=bpe_dnabert2", f"tokenizer.path={OUT / 'tokenizer' / 'tokenizer.json'}",
      "data=genome_ecoli", "data.window_bp=1000", "data.batch_size=16", "data.windows_per_epoch=512", "data.val_windows=64",
      "optim.lr=2e-3", "optim.warmup_ratio=0.02", "run_name=ecoli_bpe_mlm", *PRETRAIN, *QUIET)
lm = read_json(RUNS / "ecoli_bpe_mlm" / "pretrain_metrics.json")
print(f"held-out masked tokens: {lm['heldout/bits_per_base']:.3f} bits per base "
      f"(order-6 Markov chain: {lm['heldout/markov6_bits_per_base']:.3f}; uniform: 2.000)")
# --8<-- [end:pretrain]
check(np.isfinite(lm["heldout/bits_per_base"]) and lm["heldout/windows"] > 0, "the pretraining run has no held-out score")

# --8<-- [start:finetune]
# 3. Fine-tuning on a GUE task (prom_300_tata: is this 300-bp human sequence a TATA promoter?), twice with the same
# tokenizer, model shape and budget: from random weights, and from the pretrained trunk (init_from= takes the
# run's trunk weights, its tokenizer and its trunk config; the classification head is new).
GUE_DATA = ["data=gue_prom_300_tata", "task=binary"]
biolm("finetune", *GUE_DATA, "model=bert_tiny", "tokenizer=bpe_dnabert2", f"tokenizer.path={OUT / 'tokenizer' / 'tokenizer.json'}",
      "run_name=prom300_scratch", *FINETUNE, *QUIET)
biolm("finetune", *GUE_DATA, "model=bert_tiny", f"init_from={RUNS / 'ecoli_bpe_mlm'}", "run_name=prom300_pretrained", *FINETUNE, *QUIET)
scratch = read_json(RUNS / "prom300_scratch" / "test_metrics.json")
pretrained = read_json(RUNS / "prom300_pretrained" / "test_metrics.json")
# --8<-- [end:finetune]

# --8<-- [start:lora]
# 4. LoRA (adapter=lora, through peft): the pretrained weights stay frozen; each attention qkv projection W gets a
# trainable low-rank update B @ A (rank r=8), and only those matrices and the classification head train. The run
# saves adapter/ (a few hundred KB) instead of a full model; predict and evaluate re-load base + adapter.
biolm("finetune", *GUE_DATA, "model=bert_tiny", f"init_from={RUNS / 'ecoli_bpe_mlm'}", "adapter=lora", "optim.lr=2e-3",
      "run_name=prom300_lora", *FINETUNE, *QUIET)
lora = read_json(RUNS / "prom300_lora" / "test_metrics.json")
print(f"LoRA trains {lora['trainable_params']:,} of {lora['total_params']:,} parameters "
      f"({100 * lora['trainable_params'] / lora['total_params']:.1f}%)")
# --8<-- [end:lora]
check((RUNS / "prom300_lora" / "adapter").is_dir() and not (RUNS / "prom300_lora" / "model.safetensors").exists(),
      "a LoRA run saves adapter/ only")
check(lora["trainable_params"] < lora["total_params"] / 2, "LoRA should train a small share of the parameters")
for name, metrics in (("scratch", scratch), ("pretrained", pretrained), ("LoRA", lora)):
    print(f"prom_300_tata test, {name:>10}: MCC {metrics['mcc']:.3f}  AUROC {metrics['auroc']:.3f}  accuracy {metrics['accuracy']:.3f}")

# --8<-- [start:dnabert2]
# 5. The real DNABERT-2. The published checkpoint is a folder (config.json, pytorch_model.bin, tokenizer.json);
# `model.pretrained=<folder>` reads the architecture from its config.json (ALiBi positions, GEGLU MLP, fused qkv),
# the weights strictly (any missing or unexpected tensor is an error) and the tokenizer from its tokenizer.json.
# This course never downloads, so here we write a folder in exactly that layout with a tiny shape (2 layers,
# 32 wide, random weights) and the real 4,096-token DNABERT-2 tokenizer, as the tests do; with the downloaded
# 117M folder the commands below are the same.
from tests.checkpoints import write_tiny_dnabert2  # noqa: E402

DNABERT2 = OUT / "dnabert2_tiny"
if not (DNABERT2 / "config.json").is_file():
    write_tiny_dnabert2(DNABERT2)
print("a DNABERT-2 folder:", sorted(p.name for p in DNABERT2.iterdir()))
# --8<-- [end:dnabert2]

# --8<-- [start:brca1]
# 6. BRCA1 risk. (a) Labelled ClinVar variants -> 256-bp windows of GRCh38 centred on each variant and carrying
# its alternative allele, split by position so that no test window shares a base with a training one.
biolm("variants", "windows", f"labels={CLINVAR / 'clinvar_20200803_BRCA1_BRCA2_labels.csv.gz'}",
      f"ref={CLINVAR / 'chr17_42425000-43600000.GRCh38.fa.gz'}", "region=17:42425000-43600000", f"out={OUT / 'brca1_windows'}")
# (b) Fine-tune DNABERT-2 with LoRA on them. The experiment sets task.monitor=auroc (keep the weights that rank
# best), task.threshold=youden (after training, pick the threshold with the best sensitivity + specificity on the
# validation windows) and risk bands (task.bands: below the threshold "low risk", at or above it "high risk").
WINDOWS = [f"data.{split}={OUT / 'brca1_windows' / (split + '.csv')}" for split in ("train", "val", "test")]
biolm("finetune", "experiment=brca1_risk_dnabert2_lora", f"model.pretrained={DNABERT2}", *WINDOWS, *FINETUNE, *QUIET)
# (c) Predict: one row per window with prob_0, prob_1, prediction (at the stored threshold) and call (the band).
biolm("predict", f"run={RUNS / 'brca1_risk_dnabert2_lora'}", f"input={OUT / 'brca1_windows' / 'test.csv'}",
      f"output={OUT / 'brca1_predictions.csv'}")
decision = read_json(RUNS / "brca1_risk_dnabert2_lora" / "decision.json")
risk = read_json(RUNS / "brca1_risk_dnabert2_lora" / "test_metrics.json")
calls = pd.read_csv(OUT / "brca1_predictions.csv")
print(f"threshold {decision['threshold']:.3f} ({decision['rule']}); test AUROC {risk['auroc']:.3f}, "
      f"sensitivity {risk['sensitivity']:.3f}, specificity {risk['specificity']:.3f}")
print(calls[["id", "prob_1", "prediction", "call"]].head().to_string(index=False))
print(calls["call"].value_counts().to_string())
# --8<-- [end:brca1]
check(set(calls["call"]) <= {"low risk", "high risk"} and len(calls) == risk["n_test"], "every test window gets a risk band")
check(((calls["prob_1"] >= decision["threshold"]) == (calls["call"] == "high risk")).all(), "the bands follow the threshold")

write_summary(args, "day5_dnabert2", {
    "bpe_bases_per_token": round(bases_per_token, 3),
    "mlm_heldout_bits_per_base": round(lm["heldout/bits_per_base"], 4),
    "markov6_heldout_bits_per_base": round(lm["heldout/markov6_bits_per_base"], 4),
    "mlm_steps": lm["global_step"],
    "prom300_mcc_scratch": round(scratch["mcc"], 4),
    "prom300_mcc_pretrained": round(pretrained["mcc"], 4),
    "prom300_mcc_lora": round(lora["mcc"], 4),
    "prom300_auroc_scratch": round(scratch["auroc"], 4),
    "prom300_auroc_pretrained": round(pretrained["auroc"], 4),
    "prom300_auroc_lora": round(lora["auroc"], 4),
    "lora_trainable_share": round(lora["trainable_params"] / lora["total_params"], 4),
    "brca1_threshold": round(decision["threshold"], 4),
    "brca1_test_auroc": round(risk["auroc"], 4),
})

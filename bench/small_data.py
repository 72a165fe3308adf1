"""Small labelled data sets, side by side: a plain one-hot CNN (the reference) and biolm's recipes.

The bundled GUE tasks' training splits are subsampled (seeded, class shares kept) to 1k, 2k, 5k
rows and the full set; the official dev and test splits stay as they are. Each (task, size, seed)
trains

- ``plain``: the reference, written here in plain PyTorch as a newcomer would (one-hot input; three
  Conv1d-BatchNorm-ReLU-MaxPool blocks of 128 channels, kernels 15/11/7; global max pool; dropout;
  a linear layer; Adam 1e-3, batch 64, 8 epochs, the weights of the best dev MCC epoch);
- biolm recipes through ``biolm finetune`` (``--recipes``: names from `RECIPES`, each a list of
  overrides; the run's test MCC is read from ``test_metrics.json``).

It prints one table: test MCC mean and sd over seeds per row and recipe, and CPU minutes.

    python bench/small_data.py                                   # every task, size, seed and recipe (hours on 2 cores)
    python bench/small_data.py --tasks tf_human_0 --sizes 2000 --seeds 0 --recipes plain cnn bert_tiny
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import matthews_corrcoef
from torch import nn

REPO = Path(__file__).resolve().parents[1]
TASKS = {"tf_human_0": "data/gue/tf_human_0", "prom_core_all": "data/gue/prom_core_all", "prom_300_tata": "data/gue/prom_300_tata"}
BASE = ["trainer.accelerator=cpu", "progress_bar=false"]
RECIPES = {  # biolm finetune overrides per recipe (the default recipe of each model, as the README gives it)
    "cnn": ["model=cnn"],
    "cnn_rc": ["model=cnn", "data.augment.rc_prob=0.5"],  # reverse-complement augmentation (strand-symmetric tasks)
    "bert_tiny": ["model=bert_tiny", "tokenizer=kmer3_stride3"],
    "hyena_tiny": ["model=hyena_tiny", "tokenizer=char"],
    "hyena_tiny_ecoli": ["init_from=runs/ecoli_hyena_clm", "model=hyena_tiny"],
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=["tf_human_0", "prom_core_all"], choices=sorted(TASKS))
    parser.add_argument("--sizes", nargs="+", type=int, default=[1000, 2000, 5000, 0], help="training rows; 0: the whole split")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--recipes", nargs="+", default=["plain", *RECIPES], help=f"plain and/or {', '.join(RECIPES)}")
    parser.add_argument("--epochs", type=int, default=8, help="the plain CNN's epochs")
    parser.add_argument("--out", default=None, help="also write the per-run results as CSV")
    return parser.parse_args()


def subsample(frame: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    """``n`` rows (all when ``n`` is 0 or larger than the table), each label keeping its share."""
    if not n or n >= len(frame):
        return frame
    share = n / len(frame)
    parts = [group.sample(n=max(1, round(len(group) * share)), random_state=seed) for _, group in frame.groupby("label")]
    return pd.concat(parts).sample(frac=1.0, random_state=seed).reset_index(drop=True)


def one_hot(sequences: list[str]) -> torch.Tensor:
    """``(N, 4, L)`` float one-hot of equal-length sequences (N and other letters: all zero)."""
    table = np.zeros((256, 4), dtype=np.float32)
    for i, base in enumerate("ACGT"):
        table[ord(base)] = table[ord(base.lower())] = np.eye(4, dtype=np.float32)[i]
    codes = np.frombuffer("".join(sequences).encode("ascii"), dtype=np.uint8).reshape(len(sequences), -1)
    return torch.from_numpy(table[codes]).permute(0, 2, 1).contiguous()


class PlainCnn(nn.Module):
    """Three conv blocks (Conv1d, BatchNorm, ReLU, MaxPool 3), global max pool, dropout, linear."""

    def __init__(self, n_classes: int, width: int = 128):
        super().__init__()
        layers, channels = [], 4
        for kernel in (15, 11, 7):
            layers += [nn.Conv1d(channels, width, kernel, padding=kernel // 2), nn.BatchNorm1d(width), nn.ReLU(), nn.MaxPool1d(3, ceil_mode=True)]
            channels = width
        self.body = nn.Sequential(*layers)
        self.out = nn.Sequential(nn.Dropout(0.3), nn.Linear(width, n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.body(x).amax(dim=-1))


def run_plain(splits: dict[str, pd.DataFrame], seed: int, epochs: int) -> float:
    """Test MCC of the plain one-hot CNN at its best dev-MCC epoch."""
    torch.manual_seed(seed)
    x = {name: one_hot(frame["sequence"].tolist()) for name, frame in splits.items()}
    y = {name: torch.as_tensor(frame["label"].to_numpy().copy(), dtype=torch.long) for name, frame in splits.items()}
    model = PlainCnn(int(y["train"].max()) + 1)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    best, best_state = -2.0, None
    for _ in range(epochs):
        model.train()
        for batch in torch.randperm(len(y["train"])).split(64):
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(x["train"][batch]), y["train"][batch]).backward()
            optimizer.step()
        dev = mcc(model, x["dev"], y["dev"])
        if dev > best:
            best, best_state = dev, {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(best_state)
    return mcc(model, x["test"], y["test"])


@torch.no_grad()
def mcc(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    predicted = torch.cat([model(chunk).argmax(-1) for chunk in x.split(512)])
    return float(matthews_corrcoef(y.numpy(), predicted.numpy()))


def run_biolm(recipe: str, files: dict[str, Path], seed: int, workdir: Path) -> float:
    """Test MCC of ``biolm finetune`` with the recipe's overrides."""
    name = f"{recipe}-{seed}"
    args = [str(Path(sys.executable).parent / "biolm"), "finetune", *RECIPES[recipe], *BASE, f"seed={seed}", f"data.train={files['train']}",
            f"data.val={files['dev']}", f"data.test={files['test']}", f"output_dir={workdir}", f"run_name={name}", "overwrite=true"]
    done = subprocess.run(args, cwd=REPO, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{recipe}: biolm finetune failed\n{done.stderr[-2000:]}")
    return float(json.loads((workdir / name / "test_metrics.json").read_text())["mcc"])


def main() -> None:
    args = parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        for task in args.tasks:
            folder = REPO / TASKS[task]
            full = {split: pd.read_csv(folder / f"{split}.csv.gz") for split in ("train", "dev", "test")}
            for size in args.sizes:
                for seed in args.seeds:
                    splits = {**full, "train": subsample(full["train"], size, seed)}
                    files = {}
                    for split, frame in splits.items():
                        files[split] = workdir / f"{task}-{size}-{seed}-{split}.csv"
                        frame.to_csv(files[split], index=False)
                    for recipe in args.recipes:
                        start = time.time()
                        score = run_plain(splits, seed, args.epochs) if recipe == "plain" else run_biolm(recipe, files, seed, workdir)
                        minutes = (time.time() - start) / 60
                        rows.append({"task": task, "train_rows": len(splits["train"]), "seed": seed, "recipe": recipe, "test_mcc": score, "minutes": minutes})
                        print(f"{task:14s} n={len(splits['train']):6d} seed={seed} {recipe:18s} MCC {score:.3f}  {minutes:.1f} min", flush=True)
    table = pd.DataFrame(rows)
    if args.out:
        table.to_csv(args.out, index=False)
    summary = table.groupby(["task", "train_rows", "recipe"]).agg(
        mcc=("test_mcc", "mean"), sd=("test_mcc", lambda v: statistics.stdev(v) if len(v) > 1 else float("nan")), minutes=("minutes", "mean")
    )
    print("\ntest MCC, mean (sd) over seeds; wall minutes per run (biolm's include its process start)")
    print(summary.unstack("recipe").round(3).to_string())
    if "plain" in set(table["recipe"]):
        means = summary["mcc"].unstack("recipe")
        ratios = {recipe: (means[recipe] / means["plain"]) for recipe in means.columns if recipe != "plain"}
        print("\nMCC / plain CNN's MCC, per row: " + "; ".join(
            f"{recipe} {values.min():.2f}-{values.max():.2f}" for recipe, values in ratios.items()))


if __name__ == "__main__":
    main()

"""Day 1: a DNA classifier trained with a plain PyTorch loop, every step written by hand.

Task: GUE prom_300_tata (human TATA promoters vs non-promoters, 300 bp, official splits; data/gue/SOURCES.md).
Steps: read the CSVs -> one-hot `Dataset` -> `DataLoader` -> a small CNN -> BCE loss -> AdamW -> a training loop
with validation every epoch, keeping the best epoch's weights -> test metrics (MCC, AUROC, AUPRC, F1, accuracy)
with scikit-learn, checked equal to biolm's own metric collection (`biolm.tasks.metrics.build_metrics`).

    python tutorials/day1_plain_loop.py            # the full run: 8 epochs on the 4,904 training sequences
    python tutorials/day1_plain_loop.py --fast     # 1 epoch on 256 of them (seconds; what CI runs)

Day 2 (tutorials/day2_lightning.py) imports `read_split`, `OneHotDataset` and `PromoterCNN` from this file.
"""

from __future__ import annotations

import copy
import os
import time

import numpy as np
import pandas as pd
import torch
from _common import REPO, arguments, check, write_summary
from sklearn import metrics as skm
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

DATA = REPO / "data" / "gue" / "prom_300_tata"


# --8<-- [start:data]
def read_split(split: str, limit: int | None = None, seed: int = 0) -> pd.DataFrame:
    """One GUE split (`train`, `dev` or `test`) as a DataFrame with `sequence` and `label` columns.

    `limit` keeps a seeded random subset of that many rows (for --fast).
    """
    frame = pd.read_csv(DATA / f"{split}.csv.gz")
    if limit is not None and limit < len(frame):
        frame = frame.sample(n=limit, random_state=seed).reset_index(drop=True)
    return frame


# A lookup table from ASCII byte to channel: A, C, G, T -> 0..3; anything else (N) -> 4, a channel we drop,
# so an N is the all-zero column ("no information about this base").
BASE_TO_CHANNEL = np.full(256, 4, dtype=np.int64)
for channel, base in enumerate(b"ACGT"):
    BASE_TO_CHANNEL[base] = channel


def one_hot(sequence: str) -> Tensor:
    """A DNA string of length L -> a `(4, L)` float tensor (channels A, C, G, T: the layout Conv1d expects)."""
    codes = BASE_TO_CHANNEL[np.frombuffer(sequence.upper().encode("ascii"), dtype=np.uint8)]  # (L,)
    return torch.from_numpy(np.eye(5, dtype=np.float32)[codes][:, :4].T.copy())  # (L, 5) -> (4, L)


class OneHotDataset(Dataset):
    """`dataset[i]` -> `((4, L) one-hot sequence, () float label)`; encoded once, up front (4,904 x 300 bp is 24 MB)."""

    def __init__(self, frame: pd.DataFrame):
        self.x = torch.stack([one_hot(s) for s in frame["sequence"]])  # (N, 4, L)
        self.y = torch.tensor(frame["label"].to_numpy(), dtype=torch.float32)  # (N,) 0./1.

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        return self.x[index], self.y[index]
# --8<-- [end:data]


# --8<-- [start:model]
class PromoterCNN(nn.Module):
    """`(B, 4, L)` one-hot DNA -> `(B,)` logits (one score per sequence; sigmoid gives P(promoter)).

    The shape of biolm's `model=cnn` (configs/model/cnn.yaml, Basset/DeepSEA family): three blocks of
    Conv1d -> BatchNorm -> ReLU -> MaxPool(3) -> Dropout, then global max pooling over positions, dropout and a
    linear layer. Each pooling shrinks the sequence by 3, so the third block sees motifs spread over ~100 bp.
    """

    def __init__(self, channels: int = 128, kernel_sizes: tuple[int, ...] = (15, 11, 7), dropout: float = 0.2, head_dropout: float = 0.3):
        super().__init__()
        blocks, width = [], 4
        for k in kernel_sizes:
            blocks += [
                nn.Conv1d(width, channels, k, padding=k // 2),  # "same" padding: the length is kept
                nn.BatchNorm1d(channels),
                nn.ReLU(),
                nn.MaxPool1d(3, ceil_mode=True),  # L -> ceil(L / 3)
                nn.Dropout(dropout),
            ]
            width = channels
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Sequential(nn.Dropout(head_dropout), nn.Linear(channels, 1))

    def forward(self, x: Tensor) -> Tensor:
        h = self.blocks(x)  # (B, 4, 300) -> (B, C, 12)
        pooled = h.amax(dim=-1)  # global max pooling: (B, C), "is this motif anywhere in the sequence?"
        return self.head(pooled).squeeze(-1)  # (B, 1) -> (B,)
# --8<-- [end:model]


# --8<-- [start:evaluate]
@torch.no_grad()
def predict_proba(model: nn.Module, loader: DataLoader) -> tuple[np.ndarray, np.ndarray]:
    """P(promoter) and the labels of every record of `loader`, in order (eval mode: no dropout, BatchNorm's running stats)."""
    model.eval()
    probs, labels = [], []
    for x, y in loader:
        probs.append(torch.sigmoid(model(x)))
        labels.append(y)
    return torch.cat(probs).numpy(), torch.cat(labels).numpy().astype(int)


def binary_metrics(probs: np.ndarray, labels: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """The five numbers biolm reports for a binary task, with scikit-learn; a probability >= threshold is a positive call."""
    calls = (probs >= threshold).astype(int)
    return {
        "mcc": skm.matthews_corrcoef(labels, calls),  # the GUE metric: uses all four cells of the confusion matrix
        "auroc": skm.roc_auc_score(labels, probs),  # threshold-free: how well the scores rank positives first
        "auprc": skm.average_precision_score(labels, probs),
        "f1": skm.f1_score(labels, calls),
        "accuracy": skm.accuracy_score(labels, calls),
    }
# --8<-- [end:evaluate]


def main() -> None:
    args = arguments(__doc__, "day1_plain_loop")
    torch.manual_seed(0)  # weights, dropout and the shuffling order: one seed makes the run repeatable
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))  # 2 by default (_common), the CPU budget of the course

    # --8<-- [start:loaders]
    train_limit, eval_limit, epochs = (256, 200, 1) if args.fast else (None, None, 8)
    train_set = OneHotDataset(read_split("train", train_limit))
    val_set = OneHotDataset(read_split("dev", eval_limit))
    test_set = OneHotDataset(read_split("test"))
    # shuffle the training order every epoch; evaluation order does not matter, and bigger batches are faster there
    train_loader = DataLoader(train_set, batch_size=32, shuffle=True)
    val_loader = DataLoader(val_set, batch_size=128)
    test_loader = DataLoader(test_set, batch_size=128)
    print(f"train {len(train_set)}, val {len(val_set)}, test {len(test_set)} sequences; one batch: {tuple(next(iter(train_loader))[0].shape)}")
    # --8<-- [end:loaders]

    # --8<-- [start:setup]
    model = PromoterCNN()
    loss_fn = nn.BCEWithLogitsLoss()  # sigmoid + binary cross-entropy in one numerically stable op, on raw logits
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    print(f"{sum(p.numel() for p in model.parameters()):,} parameters")
    # --8<-- [end:setup]

    # --8<-- [start:loop]
    best = {"mcc": -1.0}
    history = []
    for epoch in range(epochs):
        started = time.perf_counter()
        model.train()  # dropout on, BatchNorm uses (and updates) batch statistics
        total_loss = 0.0
        for x, y in train_loader:
            optimizer.zero_grad()  # gradients accumulate in .grad unless cleared
            loss = loss_fn(model(x), y)
            loss.backward()  # d loss / d every parameter
            optimizer.step()  # one AdamW update
            total_loss += loss.item() * len(y)
        val = binary_metrics(*predict_proba(model, val_loader))  # predict_proba switches to model.eval()
        history.append({"epoch": epoch, "train_loss": total_loss / len(train_set), **{f"val_{k}": v for k, v in val.items()}})
        print(f"epoch {epoch}: train loss {total_loss / len(train_set):.4f}, val MCC {val['mcc']:.3f}, "
              f"val AUROC {val['auroc']:.3f} ({time.perf_counter() - started:.0f} s)")
        if val["mcc"] > best["mcc"]:  # keep a copy of the best epoch's weights (what a checkpoint callback does)
            best = {"mcc": val["mcc"], "epoch": epoch, "state": copy.deepcopy(model.state_dict())}
    model.load_state_dict(best["state"])
    print(f"best epoch: {best['epoch']} (val MCC {best['mcc']:.3f})")
    # --8<-- [end:loop]

    # --8<-- [start:test]
    probs, labels = predict_proba(model, test_loader)
    ours = binary_metrics(probs, labels)

    # biolm's metric collection (torchmetrics) on the same probabilities: what `biolm finetune` writes to test_metrics.json
    from biolm.tasks.metrics import build_metrics

    collection = build_metrics("binary", 2, split="test set")
    collection.update(torch.from_numpy(probs), torch.from_numpy(labels))
    theirs = {name: float(value) for name, value in collection.compute().items()}
    print(f"{'metric':9} {'sklearn':>8} {'biolm':>8}")
    for name in ours:
        print(f"{name:9} {ours[name]:8.4f} {theirs[name]:8.4f}")
    # --8<-- [end:test]

    pd.DataFrame(history).to_csv(args.out / "history.csv", index=False)
    torch.save(model.state_dict(), args.out / "best_model.pt")
    check(len(labels) == 613, f"the test split has 613 sequences, got {len(labels)}")
    check(all(abs(ours[k] - theirs[k]) < 1e-5 for k in ours), f"scikit-learn and biolm disagree: {ours} vs {theirs}")
    check(len(history) == epochs and 0 <= best["epoch"] < epochs, "one validation per epoch, a best epoch kept")
    if not args.fast:
        check(ours["mcc"] > 0.4 and ours["auroc"] > 0.8, f"the full run should reach test MCC > 0.4 and AUROC > 0.8: {ours}")
    write_summary(args, "day1_plain_loop", {**{f"test_{k}": round(float(v), 4) for k, v in ours.items()}, "best_epoch": best["epoch"], "epochs": epochs})


if __name__ == "__main__":
    main()

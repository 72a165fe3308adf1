"""Day 2: Day 1's CNN again, with PyTorch Lightning running the loop.

The model, the data and the metrics are Day 1's (imported from tutorials/day1_plain_loop.py); what changes is who
runs them. A `LightningModule` says what one training / validation / test step is and which optimiser to use; a
`LightningDataModule` says where the batches come from; the `Trainer` owns the loop, the device, the precision,
logging (`CSVLogger`), checkpoints (`ModelCheckpoint`) and early stopping (`EarlyStopping`).

    python tutorials/day2_lightning.py            # the full run: up to 8 epochs (early stopping, patience 3)
    python tutorials/day2_lightning.py --fast     # 1 epoch on 256 training sequences (seconds; what CI runs)

The same experiment from the command line is `biolm finetune data=gue_prom_300_tata model=cnn` (docs/course/day2.md).
"""

from __future__ import annotations

import os

import lightning as L
import pandas as pd
import torch
from _common import arguments, check, write_summary
from day1_plain_loop import OneHotDataset, PromoterCNN, read_split
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from torch import nn
from torch.utils.data import DataLoader

from biolm.tasks.metrics import build_metrics


# --8<-- [start:module]
class PromoterClassifier(L.LightningModule):
    """Day 1's `PromoterCNN` + BCE loss + AdamW + biolm's binary metrics, as a LightningModule.

    No `.train()` / `.eval()`, no `zero_grad` / `backward` / `step`, no `torch.no_grad()`, no `.to(device)`: the
    Trainer does those around the steps below.
    """

    def __init__(self, lr: float = 1e-3, weight_decay: float = 0.01):
        super().__init__()
        self.save_hyperparameters()  # lr, weight_decay go into every checkpoint (and hparams.yaml of the logger)
        self.model = PromoterCNN()
        self.loss_fn = nn.BCEWithLogitsLoss()
        # torchmetrics collections are modules: they move to the model's device and, under DDP, sync across processes
        self.val_metrics = build_metrics("binary", 2, split="validation set")
        self.test_metrics = build_metrics("binary", 2, split="test set")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)  # (B, 4, L) -> (B,) logits

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = self.loss_fn(self(x), y)
        self.log("train_loss", loss, on_step=False, on_epoch=True)  # mean over the epoch, weighted by batch size
        return loss  # the Trainer calls backward() and optimizer.step() on it

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._evaluate(batch, self.val_metrics, "val")

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._evaluate(batch, self.test_metrics, "test")

    def _evaluate(self, batch: tuple[torch.Tensor, torch.Tensor], metrics, prefix: str) -> None:
        x, y = batch
        logits = self(x)
        self.log(f"{prefix}_loss", self.loss_fn(logits, y))
        metrics.update(torch.sigmoid(logits), y.long())  # accumulate over the epoch; MCC/AUROC are not batch means

    def on_validation_epoch_end(self) -> None:
        self._log_epoch(self.val_metrics, "val")

    def on_test_epoch_end(self) -> None:
        self._log_epoch(self.test_metrics, "test")

    def _log_epoch(self, metrics, prefix: str) -> None:
        self.log_dict({f"{prefix}_{name}": value for name, value in metrics.compute().items()})
        metrics.reset()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
# --8<-- [end:module]


# --8<-- [start:datamodule]
class PromoterDataModule(L.LightningDataModule):
    """The three GUE prom_300_tata splits as Day 1's `OneHotDataset`s; `train_limit` / `eval_limit` subsample (--fast)."""

    def __init__(self, batch_size: int = 32, train_limit: int | None = None, eval_limit: int | None = None):
        super().__init__()
        self.batch_size, self.train_limit, self.eval_limit = batch_size, train_limit, eval_limit

    def setup(self, stage: str) -> None:
        # called by the Trainer in every process before fit / test: the place to read and encode data
        if not hasattr(self, "train_set"):
            self.train_set = OneHotDataset(read_split("train", self.train_limit))
            self.val_set = OneHotDataset(read_split("dev", self.eval_limit))
            self.test_set = OneHotDataset(read_split("test"))

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.train_set, batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val_set, batch_size=128)

    def test_dataloader(self) -> DataLoader:
        return DataLoader(self.test_set, batch_size=128)
# --8<-- [end:datamodule]


def main() -> None:
    args = arguments(__doc__, "day2_lightning")
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))

    # --8<-- [start:trainer]
    L.seed_everything(0)  # Python, NumPy and torch (and dataloader workers) in one call
    train_limit, eval_limit, epochs = (256, 200, 1) if args.fast else (None, None, 8)
    datamodule = PromoterDataModule(train_limit=train_limit, eval_limit=eval_limit)
    module = PromoterClassifier(lr=1e-3, weight_decay=0.01)

    checkpoint = ModelCheckpoint(  # keeps the best epoch on disk (Day 1 kept a deepcopy of the state dict)
        dirpath=args.out / "checkpoints", filename="best-{epoch}-{val_mcc:.3f}", monitor="val_mcc", mode="max", save_top_k=1
    )
    early_stopping = EarlyStopping(monitor="val_mcc", mode="max", patience=3)  # stop after 3 epochs without a better val MCC
    trainer = L.Trainer(
        max_epochs=epochs,
        accelerator="auto",  # a GPU (or Apple's MPS) when there is one, else the CPU: no .to(device) in our code
        devices=1,  # devices=4, strategy="ddp": the same script on 4 GPUs, one process each
        precision="32-true",  # "bf16-mixed" on a recent GPU: autocast and (for fp16) loss scaling, no code change
        callbacks=[checkpoint, early_stopping],
        logger=CSVLogger(args.out, name="logs", version=0),  # <out>/logs/version_0/metrics.csv + hparams.yaml
        deterministic=True,
        num_sanity_val_steps=0,  # skip Lightning's dry run of 2 validation batches before training
        log_every_n_steps=10,
        enable_progress_bar=False,
        enable_model_summary=not args.fast,
    )
    trainer.fit(module, datamodule=datamodule)
    print(f"best checkpoint: {checkpoint.best_model_path} (val MCC {float(checkpoint.best_model_score):.3f})")
    # test the best epoch's weights, read back from the checkpoint file (not the last epoch's, still in memory)
    test = trainer.test(module, datamodule=datamodule, ckpt_path="best", verbose=False)[0]
    # --8<-- [end:trainer]

    # --8<-- [start:logs]
    log = pd.read_csv(args.out / "logs" / "version_0" / "metrics.csv")
    # one row per logging call: train and val values of an epoch land in different rows (and the test in a row of
    # its own), so keep the columns of fit and merge the rows of each epoch
    per_epoch = log.groupby("epoch")[["train_loss", "val_loss", "val_mcc", "val_auroc"]].first().dropna(how="all")
    print(per_epoch.round(4).to_string())
    for name in ("mcc", "auroc", "auprc", "f1", "accuracy"):
        print(f"test {name:9} {test[f'test_{name}']:.4f}")
    # --8<-- [end:logs]

    best_file = checkpoint.best_model_path
    check(bool(best_file) and os.path.isfile(best_file), "ModelCheckpoint wrote the best epoch")
    check(per_epoch["val_mcc"].notna().sum() == trainer.current_epoch, "one validation row per epoch in metrics.csv")
    check(all(f"test_{k}" in test for k in ("mcc", "auroc", "auprc", "f1", "accuracy")), f"all five test metrics logged: {test}")
    if not args.fast:
        check(test["test_mcc"] > 0.4 and test["test_auroc"] > 0.8, f"the full run should reach test MCC > 0.4 and AUROC > 0.8: {test}")
    best_epoch = int(per_epoch["val_mcc"].idxmax())
    write_summary(args, "day2_lightning", {
        **{k: round(float(test[k]), 4) for k in ("test_mcc", "test_auroc", "test_auprc", "test_f1", "test_accuracy")},
        "best_epoch": best_epoch, "epochs_run": trainer.current_epoch, "stopped_early": bool(early_stopping.stopped_epoch),
    })


if __name__ == "__main__":
    main()

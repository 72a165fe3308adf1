"""Day 3: from SNP genotypes to a phenotype (genomic prediction) with a gMLP, on the bundled CIMMYT wheat lines.

    python tutorials/day3_gmlp_wheat.py            # the full run: about 4 minutes on 2 CPU cores
    python tutorials/day3_gmlp_wheat.py --fast     # seconds: the same steps, 2 epochs on 2 folds

In: data/wheat599 (599 wheat lines x 1,279 DArT markers, presence/absence 0/1; grain yield in 4 environments).
The Dataset, DataLoader and LightningModule are written here by hand; the network is biolm's gMLP
(`biolm.models.gmlp.GMLPRegressor`). We train on one environment (env1), predict the genomic estimated breeding
values (GEBVs) of held-out lines, and score them with Pearson r, the field's "predictive ability"; then we compare
with RR-BLUP (marker ridge) on the same folds.
Out, in --out (default runs/tutorials/day3_gmlp_wheat/): gebv_heldout.csv, cv_folds.csv, logs/ (Lightning's
CSV log), checkpoints/ (the best epoch) and summary.json.
"""

from __future__ import annotations

import logging
import warnings

from _common import REPO, arguments, check, write_summary

args = arguments(__doc__, "day3_gmlp_wheat")

# After arguments(): it sets OMP_NUM_THREADS, which numpy's BLAS and torch read when they load.
import lightning as L  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint  # noqa: E402
from lightning.pytorch.loggers import CSVLogger  # noqa: E402
from sklearn.model_selection import KFold  # noqa: E402
from torch.utils.data import DataLoader, Dataset  # noqa: E402
from torchmetrics import PearsonCorrCoef  # noqa: E402

from biolm.fitting import quiet_lightning_warnings  # noqa: E402
from biolm.genomic_prediction.baselines import RRBLUP  # noqa: E402
from biolm.models.gmlp import GMLPRegressor  # noqa: E402

warnings.filterwarnings("ignore", message=".*LeafSpec")  # a deprecation inside Lightning itself, not ours to fix
TRAIT = "env1"
MAX_EPOCHS = 2 if args.fast else 200
PATIENCE = 20  # epochs without a better validation MSE before early stopping
CV_FOLDS = [0, 1] if args.fast else [0, 1, 2, 3, 4]

# --8<-- [start:data]
# A genotype matrix: one row per line (a wheat variety), one column per marker. DArT markers are
# presence/absence, so every value is 0 or 1 (a SNP panel would hold 0/1/2 allele counts).
genotypes = pd.read_csv(REPO / "data/wheat599/genotypes.csv.gz", index_col=0)
phenotypes = pd.read_csv(REPO / "data/wheat599/phenotypes.csv.gz", index_col=0)
phenotypes = phenotypes.loc[genotypes.index]  # the same line order in both tables
dosages = genotypes.to_numpy(np.float32)  # (599 lines, 1279 markers)
yields = phenotypes[TRAIT].to_numpy(np.float32)  # (599,) grain yield in env1, already standardised
print(f"{dosages.shape[0]} lines x {dosages.shape[1]} markers; {TRAIT}: mean {yields.mean():.2f}, sd {yields.std():.2f}")
# --8<-- [end:data]
check(dosages.shape == (599, 1279) and not np.isnan(dosages).any(), "wheat599 should be 599 x 1279 without missing calls")

# --8<-- [start:split]
# The held-out lines: fold 0 of a shuffled 5-fold split with random_state=0, which is exactly fold 0 of
# repeat 0 in `biolm gp cv` (it shuffles repeat r with KFold(5, shuffle=True, random_state=seed + r)).
folds = list(KFold(5, shuffle=True, random_state=0).split(dosages))


def split_fold(fold: int, val_fraction: float = 0.15, seed: int = 0):
    """Row indices (train, val, test) of one outer fold; val is a seeded share of the training lines, for early stopping."""
    train_val, test = folds[fold]
    shuffled = np.random.default_rng(seed + fold).permutation(train_val)
    n_val = round(val_fraction * len(shuffled))
    return np.sort(shuffled[n_val:]), np.sort(shuffled[:n_val]), test
# --8<-- [end:split]


# --8<-- [start:dataset]
class GenotypeDataset(Dataset):
    """Lines of a genotype matrix: item i is ((n_markers, 1) standardised markers, standardised phenotype).

    The scaling (marker means and sds, phenotype mean and sd) comes from the TRAINING lines only and is passed
    to the validation and test datasets: statistics of held-out lines must not leak into training.
    """

    def __init__(self, dosages: np.ndarray, phenotypes: np.ndarray, scaling: dict | None = None):
        if scaling is None:
            sd = dosages.std(axis=0)
            scaling = {"mean": dosages.mean(axis=0), "sd": np.where(sd > 0, sd, 1.0),
                       "y_mean": float(phenotypes.mean()), "y_sd": float(phenotypes.std())}
        self.scaling = scaling
        markers = (dosages - scaling["mean"]) / scaling["sd"]  # (n, M)
        self.x = torch.from_numpy(markers.astype(np.float32)).unsqueeze(-1)  # (n, M, 1): one channel, additive coding
        self.y = torch.from_numpy(((phenotypes - scaling["y_mean"]) / scaling["y_sd"]).astype(np.float32))  # (n,)

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int):
        return self.x[i], self.y[i]
# --8<-- [end:dataset]


# --8<-- [start:module]
class GenomicPredictor(L.LightningModule):
    """A gMLP regressor trained with MSE on standardised phenotypes; logs val/mse and val/r every epoch."""

    def __init__(self, n_markers: int, lr: float = 1e-3, weight_decay: float = 1e-2):
        super().__init__()
        self.save_hyperparameters()  # stored in every checkpoint, so load_from_checkpoint can rebuild the module
        # Windows of 32 neighbouring markers are the tokens (1279 markers -> 40 tokens); the spatial gating unit
        # mixes those tokens. Heavy dropout, also on the inputs: 500 lines for 1279 markers is n << p.
        self.network = GMLPRegressor(n_markers=n_markers, channels=1, markers_per_token=32, d_model=64, d_ffn=128,
                                     depth=1, dropout=0.3, input_dropout=0.3)
        self.val_r = PearsonCorrCoef()  # accumulates over the epoch's batches, then computes r once

    def forward(self, x):
        return self.network(x).prediction  # (batch, n_markers, 1) -> (batch,)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = torch.nn.functional.mse_loss(self(x), y)
        self.log("train/mse", loss, on_step=False, on_epoch=True, batch_size=len(y))
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        prediction = self(x)
        self.log("val/mse", torch.nn.functional.mse_loss(prediction, y), batch_size=len(y))
        self.val_r.update(prediction, y)
        self.log("val/r", self.val_r, batch_size=len(y))

    def predict_step(self, batch, batch_idx):
        x, _ = batch
        return self(x)

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
# --8<-- [end:module]


# --8<-- [start:train]
def train_gmlp(fold: int, run_dir, quiet: bool = False):
    """Train on a fold's training lines with early stopping on its validation lines; return (module, datasets)."""
    train, val, test = split_fold(fold)
    train_set = GenotypeDataset(dosages[train], yields[train])
    val_set = GenotypeDataset(dosages[val], yields[val], train_set.scaling)
    test_set = GenotypeDataset(dosages[test], yields[test], train_set.scaling)
    L.seed_everything(fold, verbose=False)  # the same initial weights and batch order on every run
    train_loader = DataLoader(train_set, batch_size=32, shuffle=True)
    val_loader = DataLoader(val_set, batch_size=len(val_set))  # one batch: the whole validation share
    best = ModelCheckpoint(dirpath=run_dir / "checkpoints", monitor="val/mse", mode="min", save_top_k=1)
    trainer = L.Trainer(
        max_epochs=MAX_EPOCHS, accelerator="cpu", devices=1, logger=CSVLogger(run_dir, name="logs"),
        callbacks=[best, EarlyStopping(monitor="val/mse", mode="min", patience=PATIENCE)],
        enable_progress_bar=False, enable_model_summary=not quiet, num_sanity_val_steps=0,
    )
    module = GenomicPredictor(n_markers=dosages.shape[1])
    with quiet_lightning_warnings():  # e.g. "the dataloader has no workers": fine for an in-memory matrix
        trainer.fit(module, train_loader, val_loader)
    # The weights of the best epoch, not the last one (which trained PATIENCE epochs past it).
    module = GenomicPredictor.load_from_checkpoint(best.best_model_path)
    return module, trainer, train_set, test_set, test
# --8<-- [end:train]


# --8<-- [start:infer]
def predict_gebv(trainer: L.Trainer, module: GenomicPredictor, dataset: GenotypeDataset, scaling: dict) -> np.ndarray:
    """GEBVs of a dataset's lines, in the trait's units: the network predicts standardised phenotypes."""
    predicted = torch.cat(trainer.predict(module, DataLoader(dataset, batch_size=256)))  # (n,)
    return predicted.double().numpy() * scaling["y_sd"] + scaling["y_mean"]


module, trainer, train_set, test_set, test_rows = train_gmlp(0, args.out)
gebv = predict_gebv(trainer, module, test_set, train_set.scaling)
observed = yields[test_rows]
r_gmlp = float(np.corrcoef(gebv, observed)[0, 1])  # predictive ability: Pearson r of GEBV vs observed
table = pd.DataFrame({"line": genotypes.index[test_rows], "gebv": gebv, "observed": observed})
table.to_csv(args.out / "gebv_heldout.csv", index=False)
print(f"gMLP on {len(test_rows)} held-out lines ({TRAIT}): r = {r_gmlp:.3f} "
      f"(best validation MSE {float(trainer.checkpoint_callback.best_model_score):.3f}, standardised units)")
# --8<-- [end:infer]
check(len(table) == len(test_rows) and np.isfinite(gebv).all(), "a finite GEBV for every held-out line")
check(np.isfinite(r_gmlp), "Pearson r of the held-out GEBVs")


# --8<-- [start:baseline]
def rrblup_r(fold: int) -> float:
    """RR-BLUP (marker ridge, penalty by inner 5-fold CV) on the same training lines; r on the same held-out lines."""
    train_val, test = folds[fold]  # no early stopping, so the validation share goes back into training
    model = RRBLUP(inner_folds=5, log10_lambda=(-4.0, 4.0, 81)).fit(dosages[train_val, :, None], yields[train_val], seed=fold)
    return float(np.corrcoef(model.predict(dosages[test, :, None]), yields[test])[0, 1])


r_rrblup = rrblup_r(0)
print(f"RR-BLUP on the same held-out lines: r = {r_rrblup:.3f}")
# --8<-- [end:baseline]

# --8<-- [start:cv]
# One split of 120 lines is noisy (r moves by +-0.05-0.1 from fold to fold), so compare models over every fold.
logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)  # Lightning's start-up notes, once was enough
rows = []
for fold in CV_FOLDS:
    fold_module, fold_trainer, fold_train, fold_test, fold_rows = train_gmlp(fold, args.out / "cv" / f"fold{fold}", quiet=True)
    fold_pred = predict_gebv(fold_trainer, fold_module, fold_test, fold_train.scaling)
    rows.append({"fold": fold, "gmlp": float(np.corrcoef(fold_pred, yields[fold_rows])[0, 1]), "rrblup": rrblup_r(fold)})
cv = pd.DataFrame(rows)
cv.to_csv(args.out / "cv_folds.csv", index=False)
print(cv.round(3).to_string(index=False))
print(f"mean r over {len(cv)} folds: gMLP {cv.gmlp.mean():.3f}, RR-BLUP {cv.rrblup.mean():.3f}")
# --8<-- [end:cv]
check(cv[["gmlp", "rrblup"]].notna().all().all(), "a Pearson r for every fold and model")
if not args.fast:
    # Measured 2026-12-01 (see docs/course/day3.md): both models around r = 0.5 on env1.
    check(cv.rrblup.mean() > 0.4, f"RR-BLUP mean r {cv.rrblup.mean():.3f} should be about 0.5 on env1")
    check(cv.gmlp.mean() > 0.35, f"gMLP mean r {cv.gmlp.mean():.3f} should be about 0.45-0.5 on env1")

write_summary(args, "day3_gmlp_wheat", {
    "trait": TRAIT,
    "heldout_lines": len(test_rows),
    "r_gmlp_fold0": round(r_gmlp, 4),
    "r_rrblup_fold0": round(r_rrblup, 4),
    "cv_folds": len(cv),
    "r_gmlp_cv_mean": round(float(cv.gmlp.mean()), 4),
    "r_rrblup_cv_mean": round(float(cv.rrblup.mean()), 4),
})

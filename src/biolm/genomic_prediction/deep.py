"""Training the deep genomic-prediction models (gMLP, MLP) with Lightning on one training fold.

In: encoded markers `(n, K, C)` and phenotypes `(n,)` of the training fold. A seeded share
(`val_fraction`) of those lines is the inner validation split for early stopping; the held-out
fold is never seen. Phenotypes are standardised with the inner-training mean/sd, and the weights
of the epoch with the lowest validation MSE are kept. `ensemble > 1` trains that many networks
(different seeds and inner splits) and averages their predictions.
Out: `predict(x) -> (n,)` in phenotype units; `state()` -> tensors for safetensors.
"""

from __future__ import annotations

import copy
import logging

import lightning as L
import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader, TensorDataset

from biolm.fitting import quiet_lightning_warnings

log = logging.getLogger(__name__)


class GenomicRegressionTask(L.LightningModule):
    """MSE regression of standardised phenotypes; logs ``val/mse`` per epoch."""

    def __init__(self, network: torch.nn.Module, lr: float, weight_decay: float):
        super().__init__()
        self.network = network
        self.lr = lr
        self.weight_decay = weight_decay

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = self.network(x, y).loss
        self.log("train/mse", loss, on_step=False, on_epoch=True, batch_size=len(y))
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val/mse", self.network(x, y).loss, on_step=False, on_epoch=True, batch_size=len(y))

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.lr, weight_decay=self.weight_decay)


class KeepBestWeights(L.Callback):
    """Copy the network weights (in memory) whenever ``val/mse`` improves."""

    def __init__(self):
        self.best, self.state, self.epoch = float("inf"), None, -1

    def on_validation_epoch_end(self, trainer, module):
        value = trainer.callback_metrics.get("val/mse")
        if value is not None and float(value) < self.best and not trainer.sanity_checking:
            self.best, self.epoch = float(value), trainer.current_epoch
            self.state = copy.deepcopy(module.network.state_dict())


class DeepRegressor:
    """A gMLP / MLP (any ``network`` config) trained with early stopping on an inner validation split.

    Args:
        network: config of the torch module (``_target_`` + options; n_markers/channels are set from the data).
        lr, weight_decay: AdamW settings.
        batch_size: lines per step.
        max_epochs, patience: epochs, and epochs without a better validation MSE before stopping.
        val_fraction: share of the training fold held out for early stopping.
        ensemble: networks averaged (different seeds and inner splits).
    """

    def __init__(self, network, lr: float = 1e-3, weight_decay: float = 1e-2, batch_size: int = 32, max_epochs: int = 200,
                 patience: int = 20, val_fraction: float = 0.15, ensemble: int = 1):
        self.network_cfg = OmegaConf.create(OmegaConf.to_container(network, resolve=True) if isinstance(network, DictConfig) else dict(network))
        self.lr, self.weight_decay = float(lr), float(weight_decay)
        self.batch_size, self.max_epochs, self.patience = int(batch_size), int(max_epochs), int(patience)
        self.val_fraction, self.ensemble = float(val_fraction), int(ensemble)

    def build(self, n_markers: int, channels: int) -> torch.nn.Module:
        """A fresh network for `(n, n_markers, channels)` inputs."""
        self.shape = (int(n_markers), int(channels))
        return instantiate(self.network_cfg, n_markers=int(n_markers), channels=int(channels))

    def _train_one(self, x: np.ndarray, y: np.ndarray, seed: int) -> tuple[torch.nn.Module, float, float, int]:
        rng = np.random.default_rng(seed)
        order = rng.permutation(len(y))
        n_val = max(1, int(round(self.val_fraction * len(y))))
        val, train = order[:n_val], order[n_val:]
        mean, sd = float(y[train].mean()), float(y[train].std() or 1.0)
        target = torch.from_numpy(((y - mean) / sd).astype(np.float32))
        inputs = torch.from_numpy(x)
        torch.manual_seed(seed)
        network = self.build(x.shape[1], x.shape[2])
        task = GenomicRegressionTask(network, self.lr, self.weight_decay)
        generator = torch.Generator().manual_seed(seed)
        train_loader = DataLoader(TensorDataset(inputs[train], target[train]), batch_size=self.batch_size, shuffle=True, generator=generator)
        val_loader = DataLoader(TensorDataset(inputs[val], target[val]), batch_size=1024)
        best = KeepBestWeights()
        trainer = L.Trainer(
            max_epochs=self.max_epochs, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
            enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
            callbacks=[best, L.pytorch.callbacks.EarlyStopping("val/mse", patience=self.patience, mode="min")],
        )
        with quiet_lightning_warnings():
            trainer.fit(task, train_loader, val_loader)
        if best.state is not None:
            network.load_state_dict(best.state)
        network.eval()
        return network, mean, sd, best.epoch

    def fit(self, x: np.ndarray, y: np.ndarray, seed: int = 0, lines=None) -> DeepRegressor:
        """Train `ensemble` networks on encoded markers `(n, K, C)` and phenotypes `(n,)`."""
        y = np.asarray(y, dtype=np.float64)
        self.members = []
        for member in range(self.ensemble):
            network, mean, sd, epoch = self._train_one(np.asarray(x, np.float32), y, seed * 101 + member)
            self.members.append((network, mean, sd))
            log.debug("member %d: best epoch %d", member, epoch)
        return self

    @torch.inference_mode()
    def predict(self, x: np.ndarray, lines=None) -> np.ndarray:
        """Mean prediction of the members, `(n,)`, in phenotype units."""
        inputs = torch.from_numpy(np.asarray(x, np.float32))
        outputs = [network(inputs).prediction.double().numpy() * sd + mean for network, mean, sd in self.members]
        return np.mean(outputs, axis=0)

    def state(self) -> dict[str, torch.Tensor]:
        """All member weights (``member<i>.<param>``) plus their target scaling."""
        tensors = {}
        for i, (network, mean, sd) in enumerate(self.members):
            tensors.update({f"member{i}.{k}": v.detach().contiguous() for k, v in network.state_dict().items()})
            tensors[f"member{i}.target_scaling"] = torch.tensor([mean, sd], dtype=torch.float64)
        return tensors

    def load_state(self, tensors: dict[str, torch.Tensor], n_markers: int, channels: int) -> DeepRegressor:
        """Rebuild the members from `state()` tensors."""
        self.members = []
        for i in range(self.ensemble):
            prefix = f"member{i}."
            network = self.build(n_markers, channels)
            network.load_state_dict({k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix) and not k.endswith("target_scaling")})
            network.eval()
            mean, sd = tensors[f"{prefix}target_scaling"].tolist()
            self.members.append((network, mean, sd))
        return self

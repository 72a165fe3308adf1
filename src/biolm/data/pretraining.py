"""The Lightning data module for genome pretraining.

In: FASTA genome files and a ``data`` config (window length, windows per epoch, held-out part,
reverse-complement rate, length warm-up). Out: batches ``{"input_ids": (B, L), "attention_mask":
(B, L)}`` of tokenised windows. Training windows are drawn at random but deterministically from
``(seed, epoch, index)``, so a run resumed at an epoch boundary sees the same data as an
uninterrupted one, and DDP ranks (Lightning's distributed sampler over indices) see disjoint
windows. Validation tiles the held-out regions with fixed windows.
"""

from __future__ import annotations

import logging

import lightning as L
from torch.utils.data import DataLoader

from biolm.data.datasets import Collator
from biolm.data.genome import (
    GenomeWindowDataset,
    length_warmup_schedule,
    load_genome,
    split_genome,
)
from biolm.errors import BiolmError

log = logging.getLogger(__name__)


class TokenizingCollator:
    """Window strings -> padded token batch (tokenising is vectorised and cheap)."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.pad = Collator(tokenizer.pad_id)

    def __call__(self, windows: list[str]):
        tokens = self.tokenizer.encode_batch(windows)
        batch = self.pad([(ids, None, i) for i, ids in enumerate(tokens)])
        batch.pop("index")
        return batch


class GenomeDataModule(L.LightningDataModule):
    """Random training windows and fixed validation windows from FASTA genomes.

    Args:
        data_cfg: the ``data`` node (fasta, holdout, window_bp, windows_per_epoch,
            val_windows, rc_prob, max_n_fraction, batch_size, num_workers, length_warmup).
        tokenizer: the run's tokenizer.
        seed: the run's seed.
    """

    def __init__(self, data_cfg, tokenizer, seed: int):
        super().__init__()
        fasta = data_cfg.fasta
        paths = [fasta] if isinstance(fasta, str) else list(fasta or [])
        if not paths:
            raise BiolmError("data.fasta: no genome given; pass data.fasta=genome.fa (or a list [a.fa,b.fa])")
        genome = load_genome(paths)
        train_regions, val_regions = split_genome(genome, data_cfg.holdout)
        self.genome, self.train_regions, self.val_regions = genome, train_regions, val_regions
        self.window_bp = int(data_cfg.window_bp)
        warmup = data_cfg.get("length_warmup") or {}
        self.schedule = (
            length_warmup_schedule(self.window_bp, int(warmup.min_bp), int(warmup.epochs))
            if warmup and warmup.get("epochs")
            else None
        )
        self.train_set = GenomeWindowDataset(
            genome,
            train_regions,
            window_bp=self.window_bp,
            windows_per_epoch=int(data_cfg.windows_per_epoch),
            seed=seed,
            rc_prob=float(data_cfg.rc_prob),
            max_n_fraction=float(data_cfg.max_n_fraction),
        )
        self.max_n_fraction = float(data_cfg.max_n_fraction)
        self.val_set = self._tiles(int(data_cfg.val_windows)) if val_regions else None
        self.collate = TokenizingCollator(tokenizer)
        self.batch_size = int(data_cfg.batch_size)
        self.num_workers = int(data_cfg.num_workers)
        total_bp = sum(len(seq) for seq in genome.values())
        log.info(
            "genome: %d contigs, %s bp | train windows/epoch %d of %d bp | validation windows %d",
            len(genome),
            f"{total_bp:,}",
            len(self.train_set),
            self.window_bp,
            0 if self.val_set is None else len(self.val_set),
        )

    def set_epoch(self, epoch: int) -> None:
        """New random windows each epoch (and the warm-up length, when configured)."""
        self.train_set.set_epoch(epoch)
        if self.schedule is not None:
            self.train_set.set_window_bp(self.schedule(epoch))

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.train_set, batch_size=self.batch_size, shuffle=False, collate_fn=self.collate, num_workers=self.num_workers)

    def _tiles(self, cap: int) -> GenomeWindowDataset:
        """Fixed non-overlapping windows over the held-out regions (``cap`` evenly spaced ones; 0: all)."""
        return GenomeWindowDataset(
            self.genome,
            self.val_regions,
            window_bp=self.window_bp,
            windows_per_epoch=cap,
            rc_prob=0.0,
            max_n_fraction=self.max_n_fraction,
            deterministic_positions=True,
        )

    def val_dataloader(self) -> DataLoader:
        if self.val_set is None:
            return []
        return DataLoader(self.val_set, batch_size=self.batch_size, shuffle=False, collate_fn=self.collate, num_workers=self.num_workers)

    def heldout_windows(self) -> GenomeWindowDataset | None:
        """Every held-out tile (``data.val_windows`` only thins the per-epoch validation), for the final report."""
        return self._tiles(0) if self.val_regions else None

    def loader(self, windows: GenomeWindowDataset) -> DataLoader:
        """Batches of fixed windows, in order."""
        return DataLoader(windows, batch_size=self.batch_size, shuffle=False, collate_fn=self.collate, num_workers=self.num_workers)

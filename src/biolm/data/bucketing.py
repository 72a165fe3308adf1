"""Length-bucketed training batches: less padding, the same items every epoch.

`LengthBucketBatches` draws an epoch's order from ``(seed, epoch)`` (as `biolm.data.datasets.EpochShuffle`),
cuts it into pools of ``pool`` batches, sorts each pool by length and cuts it into batches, then
shuffles the batches. Each epoch still sees every item once in a random batch order, but a batch
holds items of similar length, so a padded batch ``(B, T_max)`` wastes little of ``T_max`` (the
"bucket iterator" of torchtext and fairseq).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from torch.utils.data import Sampler


class LengthBucketBatches(Sampler):
    """Batches of item indices of similar length (see the module docstring).

    Args:
        lengths: length of each item (any unit the padding follows: words, tokens).
        batch_size: items per batch (the last batch of a pool may be smaller).
        seed: the run's seed.
        epoch_of: returns the epoch being started (0-based).
        pool: batches per sorted pool (1: no bucketing, plain shuffled batches).
    """

    def __init__(self, lengths: list[int], batch_size: int, seed: int, epoch_of: Callable[[], int], pool: int = 50):
        self.lengths = [int(n) for n in lengths]
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.epoch_of = epoch_of
        self.pool = max(int(pool), 1)

    def __len__(self) -> int:
        size = self.batch_size * self.pool
        full, rest = divmod(len(self.lengths), size)
        return full * self.pool + -(-rest // self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        generator = torch.Generator().manual_seed(hash((self.seed, int(self.epoch_of()))) % (2**63))
        order = torch.randperm(len(self.lengths), generator=generator).tolist()
        size = self.batch_size * self.pool
        batches = []
        for start in range(0, len(order), size):
            chunk = sorted(order[start : start + size], key=self.lengths.__getitem__)
            batches += [chunk[i : i + self.batch_size] for i in range(0, len(chunk), self.batch_size)]
        return iter([batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()])

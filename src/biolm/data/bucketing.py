"""Length-bucketed training batches: less padding, the same items every epoch.

`LengthBucketBatches` draws an epoch's order from ``(seed, epoch)`` (as `biolm.data.datasets.EpochShuffle`),
cuts it into pools of ``pool`` batches, sorts each pool by length and cuts it into batches, then
shuffles the batches. Each epoch still sees every item once in a random batch order, but a batch
holds items of similar length, so a padded batch ``(B, T_max)`` wastes little of ``T_max`` (the
"bucket iterator" of torchtext and fairseq, transformers' ``group_by_length``).

Several devices: it is a `torch.utils.data.BatchSampler`, so Lightning's DDP set-up passes it its
distributed sampler (``sampler=``, this rank's share of a seeded shuffle, re-drawn every epoch
through ``set_epoch``); the pools are then cut from that share. Every rank gets the same number of
batches, since the distributed sampler gives each the same number of items.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import torch
from torch.utils.data import BatchSampler


class LengthBucketBatches(BatchSampler):
    """Batches of item indices of similar length (see the module docstring).

    Args:
        lengths: length of each item (any unit the padding follows: words, tokens, bases).
        batch_size: items per batch (the last batch of a pool may be smaller).
        seed: the run's seed.
        epoch_of: returns the epoch being started (0-based).
        pool: batches per sorted pool (1: no bucketing, plain shuffled batches).
        sampler: the items to batch, in order (None: a permutation drawn from ``(seed, epoch)``);
            Lightning sets it to its distributed sampler on several devices.
        per_epoch: yield ``(epoch, index)`` pairs, for datasets that draw per epoch (augmentation),
            as `biolm.data.datasets.EpochShuffle` does.
        drop_last: accepted for the `BatchSampler` interface; must be False (every item is used).
    """

    def __init__(
        self,
        lengths: list[int],
        batch_size: int,
        seed: int,
        epoch_of: Callable[[], int],
        pool: int = 50,
        sampler: Iterable[int] | None = None,
        per_epoch: bool = False,
        drop_last: bool = False,
    ):
        if drop_last:
            raise ValueError("LengthBucketBatches uses every item: drop_last must be False")
        self.lengths = [int(n) for n in lengths]
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.epoch_of = epoch_of
        self.pool = max(int(pool), 1)
        self.sampler = sampler
        self.per_epoch = per_epoch
        self.drop_last = False

    def _n_items(self) -> int:
        return len(self.lengths) if self.sampler is None else len(self.sampler)

    def __len__(self) -> int:
        size = self.batch_size * self.pool
        full, rest = divmod(self._n_items(), size)
        return full * self.pool + -(-rest // self.batch_size)

    def __iter__(self) -> Iterator[list]:
        # a generator: the epoch is read at the first batch drawn, not when the loader builds its
        # iterator (Lightning may build it before advancing the epoch), as for `EpochShuffle` under
        # a `BatchSampler`, so a resumed run draws what the uninterrupted run drew
        epoch = int(self.epoch_of())
        generator = torch.Generator().manual_seed(hash((self.seed, epoch)) % (2**63))
        if self.sampler is None:
            order = torch.randperm(len(self.lengths), generator=generator).tolist()
        else:
            order = [int(i) for i in self.sampler]
        size = self.batch_size * self.pool
        batches = []
        for start in range(0, len(order), size):
            chunk = sorted(order[start : start + size], key=self.lengths.__getitem__)
            batches += [chunk[i : i + self.batch_size] for i in range(0, len(chunk), self.batch_size)]
        shuffled = [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]
        for batch in shuffled:
            yield [(epoch, i) for i in batch] if self.per_epoch else batch

"""Length-bucketed batches: every item once per epoch, an order drawn from (seed, epoch) alone,
batches of similar length, DDP shards from Lightning's sampler; and the model's loss on a batch
does not depend on how far its rows are padded or which rows share the batch."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from lightning.fabric.utilities.data import _replace_dunder_methods
from lightning.pytorch.utilities.data import _update_dataloader
from torch.utils.data import BatchSampler, DataLoader, DistributedSampler

from biolm.data.augment import AugmentedSequenceDataset
from biolm.data.bucketing import LengthBucketBatches
from biolm.data.datasets import Collator, EpochShuffle, SequenceDataModule, TokenDataset
from biolm.models import BertEncoder, SequenceHead, SequenceModel


def _lengths(n: int = 2000, seed: int = 0) -> list[int]:
    return torch.randint(50, 501, (n,), generator=torch.Generator().manual_seed(seed)).tolist()


def _pad_waste(batches: list[list[int]], lengths: list[int]) -> float:
    """Share of the padded (B, T_max) cells that are padding, over all batches."""
    cells = sum(len(b) * max(lengths[i] for i in b) for b in batches)
    return 1.0 - sum(lengths[i] for b in batches for i in b) / cells


@pytest.mark.parametrize(("n", "batch_size", "pool"), [(2000, 32, 50), (1000, 7, 3), (5, 4, 50), (100, 8, 1)])
def test_every_item_once_per_epoch_in_as_many_batches_as_len_says(n, batch_size, pool):
    sampler = LengthBucketBatches(_lengths(n), batch_size, seed=1, epoch_of=lambda: 0, pool=pool)
    batches = list(sampler)
    assert len(batches) == len(sampler)
    assert sorted(i for b in batches for i in b) == list(range(n))
    assert all(1 <= len(b) <= batch_size for b in batches)


def test_order_is_a_function_of_seed_and_epoch_only():
    epoch = {"now": 0}
    lengths = _lengths(500)
    first = list(LengthBucketBatches(lengths, 16, seed=3, epoch_of=lambda: epoch["now"], pool=4))
    torch.manual_seed(123)  # the global random state plays no part
    again = list(LengthBucketBatches(lengths, 16, seed=3, epoch_of=lambda: epoch["now"], pool=4))
    assert first == again
    epoch["now"] = 1
    assert list(LengthBucketBatches(lengths, 16, seed=3, epoch_of=lambda: epoch["now"], pool=4)) != first
    epoch["now"] = 0
    assert list(LengthBucketBatches(lengths, 16, seed=4, epoch_of=lambda: epoch["now"], pool=4)) != first
    # the epoch is read at the first batch, not when the iterator is made (Lightning may make it early)
    early = iter(LengthBucketBatches(lengths, 16, seed=3, epoch_of=lambda: epoch["now"], pool=4))
    epoch["now"] = 1
    assert next(early) == list(LengthBucketBatches(lengths, 16, seed=3, epoch_of=lambda: 1, pool=4))[0]


def test_batches_are_length_homogeneous_and_not_served_in_length_order():
    lengths = _lengths(2000)
    batches = list(LengthBucketBatches(lengths, 32, seed=0, epoch_of=lambda: 0, pool=50))
    plain = list(LengthBucketBatches(lengths, 32, seed=0, epoch_of=lambda: 0, pool=1))
    assert _pad_waste(plain, lengths) > 0.3  # random batches of 50..500: ~45% padding
    assert _pad_waste(batches, lengths) < 0.03
    spans = [max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches]
    assert np.median(spans) <= 15  # a pool of 1,600 items over 450 lengths: 32 neighbours span ~9
    assert max(spans) <= 60  # the last pool holds the 400 left over: ~36
    shortest = [min(lengths[i] for i in b) for b in batches]
    assert shortest != sorted(shortest) and shortest != sorted(shortest, reverse=True)
    rho = np.corrcoef(np.arange(len(shortest)), shortest)[0, 1]
    assert abs(rho) < 0.3  # the model does not see lengths in order


def test_per_epoch_pairs_carry_the_epoch_for_augmentation():
    batches = list(LengthBucketBatches(_lengths(50), 8, seed=0, epoch_of=lambda: 4, pool=2, per_epoch=True))
    assert {e for b in batches for e, _ in b} == {4}
    assert sorted(i for b in batches for _, i in b) == list(range(50))


def test_lightning_injects_its_distributed_sampler_and_the_ranks_share_the_epoch():
    """What Lightning's DDP set-up does to a training loader (``use_distributed_sampler``): rank r keeps
    batches drawn from its share, every rank gets as many batches, together they cover every item."""
    lengths = _lengths(1001)
    dataset = TokenDataset([np.zeros(n, dtype=np.int64) for n in lengths])
    with _replace_dunder_methods(DataLoader, "dataset"), _replace_dunder_methods(BatchSampler):
        loader = DataLoader(dataset, batch_sampler=LengthBucketBatches(lengths, 16, seed=0, epoch_of=lambda: 0, pool=20), collate_fn=list)
    shards = []
    for rank in range(2):
        sampler = DistributedSampler(dataset, num_replicas=2, rank=rank, shuffle=True, seed=0)
        sharded = _update_dataloader(loader, sampler)
        assert sharded.batch_sampler.sampler is sampler  # so Lightning's set_epoch reaches it
        shards.append(list(sharded.batch_sampler))
    assert len(shards[0]) == len(shards[1]) == len(sharded.batch_sampler)
    assert set().union(*({i for b in shard for i in b} for shard in shards)) == set(range(1001))
    assert all(_pad_waste(shard, lengths) < 0.08 for shard in shards)  # pools of 320 items: batches span ~22 bp


def _module(datasets: dict, pool: int) -> SequenceDataModule:
    return SequenceDataModule(datasets, pad_id=0, batch_size=8, eval_batch_size=16, seed=5, bucket_pool=pool)


def test_data_module_buckets_training_batches_and_sorts_evaluation_items():
    lengths = _lengths(200)
    tokens = [np.arange(1, n + 1, dtype=np.int64) for n in lengths]
    data = {"train": TokenDataset(tokens, np.arange(200)), "val": TokenDataset(tokens, np.arange(200))}
    bucketed = list(_module(data, 10).train_dataloader())
    assert sorted(torch.cat([b["index"] for b in bucketed]).tolist()) == list(range(200))
    # pool 1: the plain EpochShuffle order, as before bucketing existed
    plain = _module(data, 1).train_dataloader()
    waste = {name: np.mean([1 - b["attention_mask"].float().mean().item() for b in loader]) for name, loader in (("bucketed", bucketed), ("plain", plain))}
    assert waste["bucketed"] < 0.15 < 0.3 < waste["plain"]  # pools of 80 items over 450 lengths: batches of 8 span ~45
    assert isinstance(plain.sampler, EpochShuffle)
    assert torch.cat([b["index"] for b in plain]).tolist() == list(EpochShuffle(200, 5, lambda: 0))
    for name in ("val", "test"):
        data["test"] = data["val"]
        batches = list(_module(data, 10).val_dataloader() if name == "val" else _module(data, 10).test_dataloader())
        served = torch.cat([b["index"] for b in batches]).tolist()
        assert sorted(served) == list(range(200))
        assert [lengths[i] for i in served] == sorted(lengths)
        for batch in batches:  # each row is the item its index names, with its label
            for row, i in enumerate(batch["index"].tolist()):
                assert batch["input_ids"][row, : lengths[i]].tolist() == tokens[i].tolist()
                assert batch["labels"][row].item() == i


def test_bucketing_serves_augmented_items_of_the_epoch(tiny_tokenizer):
    sequences = ["ACGT" * n for n in (5, 30, 6, 29, 7, 28, 8, 27)]
    train = AugmentedSequenceDataset(sequences, np.arange(8), tiny_tokenizer, None, seed=0, rc_prob=0.5, substitution_rate=0.0)
    module = SequenceDataModule({"train": train}, pad_id=tiny_tokenizer.pad_id, batch_size=2, seed=0, bucket_pool=4)
    batches = list(module.train_dataloader())
    assert sorted(torch.cat([b["index"] for b in batches]).tolist()) == list(range(8))
    for batch in batches:  # short with short, long with long
        assert {len(sequences[i]) > 50 for i in batch["index"].tolist()} in ({True}, {False})


@pytest.fixture
def tiny_tokenizer():
    from biolm.tokenizers import KmerTokenizer

    return KmerTokenizer(k=3)


def _model(position_embedding: str, pooling: str) -> SequenceModel:
    torch.manual_seed(0)
    trunk = BertEncoder(70, pad_token_id=0, hidden_size=32, num_layers=2, num_heads=4, intermediate_size=64, position_embedding=position_embedding)
    return SequenceModel(trunk, SequenceHead(32, 3, pooling=pooling)).eval()


@pytest.mark.parametrize("pooling", ["cls", "mean"])
@pytest.mark.parametrize("position_embedding", ["learned", "alibi"])
def test_loss_of_a_batch_does_not_depend_on_padding_or_batch_mates(position_embedding, pooling):
    model = _model(position_embedding, pooling)
    g = torch.Generator().manual_seed(1)
    rows = [torch.randint(5, 70, (n,), generator=g) for n in (9, 23, 17, 40)]
    items = [(ids.numpy(), np.int64(k % 3), k) for k, ids in enumerate(rows)]
    labels = torch.tensor([k % 3 for k in range(len(rows))])
    collate = Collator(pad_id=0)
    tight = collate(items)  # padded to the batch's longest row (what a bucketed batch is)
    loose = collate([*items, (np.full(97, 7), np.int64(0), 99)])  # padded to a much longer batch mate

    with torch.no_grad():
        logits_tight = model(tight["input_ids"], tight["attention_mask"]).logits
        logits_loose = model(loose["input_ids"], loose["attention_mask"]).logits[: len(rows)]
        alone = torch.cat([model(ids[None], torch.ones(1, len(ids), dtype=torch.bool)).logits for ids in rows])
    torch.testing.assert_close(logits_tight, alone, rtol=0, atol=1e-5)
    torch.testing.assert_close(logits_loose, alone, rtol=0, atol=1e-5)
    loss = torch.nn.functional.cross_entropy
    assert abs(loss(logits_tight, labels).item() - loss(logits_loose, labels).item()) < 1e-5

"""Long-input windows and training-time augmentation: known answers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from biolm.data.augment import AugmentedSequenceDataset, substitute
from biolm.data.genome import reverse_complement
from biolm.data.io import SequenceRecords
from biolm.data.windows import (
    aggregate_windows,
    check_window,
    split_into_windows,
    window_spans,
)
from biolm.errors import BiolmError
from biolm.tokenizers import CharTokenizer


def test_window_spans_cover_the_sequence_with_an_end_aligned_last_window():
    assert window_spans(10, 4, 2) == [(0, 4), (2, 6), (4, 8), (6, 10)]
    assert window_spans(11, 4, 4) == [(0, 4), (4, 8), (7, 11)]  # the 3-base tail becomes a full window
    assert window_spans(9, 4, 4) == [(0, 4), (4, 8), (5, 9)]  # a 1-base tail too
    assert window_spans(3, 4, 2) == [(0, 3)]
    assert window_spans(4, 4, 1) == [(0, 4)]
    for size in (4, 6):
        for length in range(size + 1, 40):
            for stride in range(1, size + 1):
                spans = window_spans(length, size, stride)
                assert all(end - start == size for start, end in spans)
                assert spans[0][0] == 0 and spans[-1][1] == length
                assert all(b[0] - a[0] <= stride and b[0] > a[0] for a, b in zip(spans, spans[1:]))


def test_split_into_windows_keeps_owner_label_and_origin():
    records = SequenceRecords("x.csv", ["a", "b"], ["ACGTACGTAC", "GGG"], ["1", "0"], [2, 3])
    windows = split_into_windows(records, 4, 4)
    assert windows.records.sequences == ["ACGT", "ACGT", "GTAC", "GGG"]
    assert windows.records.ids == ["a:0-4", "a:4-8", "a:6-10", "b:0-3"]
    assert windows.records.labels == ["1", "1", "1", "0"]
    assert windows.owner.tolist() == [0, 0, 0, 1]
    assert windows.length_bp.tolist() == [4, 4, 4, 3]
    assert windows.records.where(2) == "x.csv line 2"


def test_aggregations_known_answers():
    values = np.array([0.2, 0.6, 0.9, 0.5])
    owner = np.array([0, 0, 0, 1])
    lengths = np.array([4.0, 4.0, 2.0, 3.0])
    np.testing.assert_allclose(aggregate_windows(values, owner, lengths, 2, "mean"), [(0.2 + 0.6 + 0.9) / 3, 0.5])
    np.testing.assert_allclose(aggregate_windows(values, owner, lengths, 2, "max"), [0.9, 0.5])
    np.testing.assert_allclose(aggregate_windows(values, owner, lengths, 2, "length"), [(0.8 + 2.4 + 1.8) / 10, 0.5])
    two = np.stack([values, 1 - values], axis=1)
    np.testing.assert_allclose(aggregate_windows(two, owner, lengths, 2, "mean").sum(axis=1), [1.0, 1.0])
    with pytest.raises(BiolmError, match="predict.aggregate"):
        aggregate_windows(values, owner, lengths, 2, "median")
    with pytest.raises(BiolmError, match="stride"):
        check_window(100, 200)


def test_substitution_rate_and_letters():
    rng = np.random.default_rng(0)
    seq = "ACGT" * 25_000 + "N" * 1000
    out = substitute(seq, 0.02, rng)
    changed = np.frombuffer(out.encode(), np.uint8) != np.frombuffer(seq.encode(), np.uint8)
    assert abs(changed[:100_000].mean() - 0.02) < 0.002  # binomial sd ~ 0.00044
    assert not changed[100_000:].any() and set(out[:100_000]) <= set("ACGT")


def test_augmented_dataset_keeps_labels_and_is_seeded_per_epoch():
    seqs = ["AACCGGTTAC" * 3] * 64
    targets = np.arange(64) % 2
    data = AugmentedSequenceDataset(seqs, targets, CharTokenizer(), None, seed=7, rc_prob=0.5, substitution_rate=0.0)
    tokenizer = CharTokenizer()
    strands = []
    for i in range(64):
        ids, target, index = data[i]
        assert target == targets[i] and index == i
        text = tokenizer.decode(ids)
        assert text in (seqs[i], reverse_complement(seqs[i]))
        strands.append(text == seqs[i])
    assert 16 < sum(strands) < 48  # about half flipped
    first = [data.augmented(i) for i in range(64)]
    assert first == [data.augmented(i) for i in range(64)]  # same epoch, same draws
    data.set_epoch(1)
    assert first != [data.augmented(i) for i in range(64)]
    with pytest.raises(BiolmError, match="substitution_rate"):
        AugmentedSequenceDataset(seqs, targets, tokenizer, None, 0, 0.5, 0.2)


def test_epoch_shuffle_depends_on_seed_and_epoch_only():
    from biolm.data.datasets import EpochShuffle

    epoch = {"now": 0}
    sampler = EpochShuffle(50, seed=3, epoch_of=lambda: epoch["now"])
    torch.manual_seed(0)
    first = list(sampler)
    torch.manual_seed(123)  # the global random state plays no part
    assert list(sampler) == first and sorted(first) == list(range(50))
    epoch["now"] = 1
    second = list(sampler)
    assert second != first and sorted(second) == list(range(50))
    paired = EpochShuffle(50, seed=3, epoch_of=lambda: 1, per_epoch=True)
    assert list(paired) == [(1, i) for i in second]

    seqs = ["AACCGGTTAC" * 3] * 8
    data = AugmentedSequenceDataset(seqs, np.zeros(8), CharTokenizer(), None, seed=7, rc_prob=0.5, substitution_rate=0.02)
    data.set_epoch(4)
    assert [data[(4, i)][0].tolist() for i in range(8)] == [data[i][0].tolist() for i in range(8)]
    assert [data.augmented(i, 2) for i in range(8)] != [data.augmented(i) for i in range(8)]

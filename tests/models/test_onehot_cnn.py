"""OneHotCnn: its input is the character tokenizer's one-hot; shapes, pads, pooling geometry, config errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from biolm.errors import BiolmError
from biolm.models.onehot_cnn import OneHotCnn
from biolm.tokenizers import CharTokenizer


def batch(tokenizer, seqs):
    rows = [torch.as_tensor(ids) for ids in tokenizer.encode_batch(seqs)]
    length = max(len(r) for r in rows)
    ids = torch.full((len(rows), length), tokenizer.pad_id)
    mask = torch.zeros(len(rows), length, dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)], mask[i, : len(row)] = row, 1
    return ids, mask


def test_input_is_the_character_tokenizers_one_hot():
    tokenizer = CharTokenizer()
    ids, mask = batch(tokenizer, ["ACGTN", "GG"])
    model = OneHotCnn(tokenizer.vocab_size, tokenizer.pad_id)
    x = model.one_hot(ids, mask)  # (B, V, L)
    assert x.shape == (2, tokenizer.vocab_size, 7)
    # one channel per base (A, C, G, T, N at their tokenizer ids) and per special; pads all zero
    a, c, g, t = (tokenizer.vocab[b] for b in "ACGT")
    assert x[0, [a, c, g, t], 1:5].equal(torch.eye(4))
    assert x[0, tokenizer.cls_id, 0] == 1 and x[0, tokenizer.sep_id, 6] == 1
    assert x[1, :, 4:].abs().sum() == 0  # "GG" is [CLS] G G [SEP], then pads
    assert x.equal(F.one_hot(ids, tokenizer.vocab_size).float().mul(mask[..., None]).transpose(1, 2))


def test_shapes_pads_and_trailing_pad_invariance():
    torch.manual_seed(0)
    tokenizer = CharTokenizer()
    model = OneHotCnn(tokenizer.vocab_size, tokenizer.pad_id, channels=16, kernel_sizes=[5, 3], pool_size=3).eval()
    ids, mask = batch(tokenizer, ["ACGTACGTTTGACCA" * 2, "ACGTAC"])
    out = model(ids, mask)
    assert out.shape == (2, ids.shape[1], 16) and out[1, mask[1] == 0].abs().sum() == 0
    alone, alone_mask = batch(tokenizer, ["ACGTAC"])
    # the short row alone equals its padded copy on the positions whose pooled windows hold no pad
    assert torch.allclose(model(alone, alone_mask)[0, :6], out[1, :6], atol=1e-6)


def test_pooling_gives_each_position_its_windows_features():
    model = OneHotCnn(10, 0, channels=4, kernel_sizes=[3], pool_size=3, batch_norm=False, dropout=0.0).eval()
    ids = torch.randint(5, 10, (1, 10))
    out = model(ids, torch.ones_like(ids))
    assert torch.equal(out[0, 0], out[0, 2]) and torch.equal(out[0, 3], out[0, 5]) and out.shape == (1, 10, 4)


@pytest.mark.parametrize(("kwargs", "match"), [({"kernel_sizes": [4]}, "kernel_sizes"), ({"pool_size": 0}, "pool_size"), ({"width": 3}, "width")])
def test_bad_config_is_named(kwargs, match):
    with pytest.raises(BiolmError, match=match):
        OneHotCnn(10, 0, **kwargs)

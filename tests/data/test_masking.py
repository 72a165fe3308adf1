"""Masked-LM corruption (rates, 80/10/10, k-mer spans), causal-LM labels, bits per base."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from biolm.data.masking import (
    IGNORE_INDEX,
    bases_per_predicted_token,
    bits_per_base,
    causal_lm_labels,
    mask_span_tokens,
    mask_tokens,
    special_token_ids,
)
from biolm.errors import BiolmError
from biolm.tokenizers import BpeTokenizer, CharTokenizer, KmerTokenizer

BPE_JSON = Path(__file__).resolve().parents[2] / "data" / "tokenizers" / "dnabert2_117m" / "tokenizer.json"


def batch(tokenizer, n_seqs: int, length_bp: int, seed: int = 0, n_share: float = 0.04) -> tuple[torch.Tensor, torch.Tensor]:
    """Random sequences of varied lengths (``n_share`` of bases N), encoded and right-padded."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(length_bp // 2, length_bp + 1, n_seqs)
    share = [(1 - n_share) / 4] * 4 + [n_share]
    seqs = [np.frombuffer(b"ACGTN", dtype=np.uint8)[rng.choice(5, n, p=share)].tobytes().decode() for n in lengths]
    rows = tokenizer.encode_batch(seqs)
    ids = torch.full((n_seqs, max(map(len, rows))), tokenizer.pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids, dtype=torch.bool)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.from_numpy(row)
        mask[i, : len(row)] = True
    return ids, mask


def runs(selected: torch.Tensor) -> list[tuple[int, int, int]]:
    """(row, start, length) of every run of True."""
    out = []
    for row, line in enumerate(selected.to(torch.int8).numpy()):
        edges = np.flatnonzero(np.diff(np.concatenate([[0], line, [0]])))
        out += [(row, int(a), int(b - a)) for a, b in zip(edges[::2], edges[1::2])]
    return out


def test_bert_rates_80_10_10_and_specials_never_selected():
    tokenizer = CharTokenizer()
    ids, mask = batch(tokenizer, 128, 400)
    corrupted, labels = mask_tokens(ids, mask, tokenizer, 0.15, generator=torch.Generator().manual_seed(0))
    specials = torch.isin(ids, torch.tensor(special_token_ids(tokenizer))) | ~mask
    selected = labels != IGNORE_INDEX
    assert not (selected & specials).any()
    assert torch.equal(labels[selected], ids[selected])
    assert torch.equal(corrupted[~selected], ids[~selected])
    assert selected.sum() / (~specials).sum() == pytest.approx(0.15, abs=0.01)
    n = int(selected.sum())
    to_mask = corrupted[selected] == tokenizer.mask_id
    kept = corrupted[selected] == ids[selected]
    assert to_mask.sum() / n == pytest.approx(0.8, abs=0.02)
    # A random replacement may draw the original id (1 in 5 for char tokens): 10% + 10% * 1/5 kept.
    assert kept.sum() / n == pytest.approx(0.1 + 0.1 / 5, abs=0.02)
    replaced = corrupted[selected][~to_mask & ~kept]
    assert not torch.isin(replaced, torch.tensor(special_token_ids(tokenizer))).any()
    assert len(replaced) / n == pytest.approx(0.1 * 4 / 5, abs=0.02)


def test_overlapping_kmers_are_masked_as_whole_spans():
    tokenizer = KmerTokenizer(6, 1)
    assert mask_span_tokens(tokenizer) == 6
    generator = torch.Generator().manual_seed(1)
    ids, mask = batch(tokenizer, 96, 300, seed=1, n_share=0.0)
    _, labels = mask_tokens(ids, mask, tokenizer, 0.15, generator=generator)
    candidate = mask & ~torch.isin(ids, torch.tensor(special_token_ids(tokenizer)))
    assert (labels != IGNORE_INDEX).sum() / candidate.sum() == pytest.approx(0.15, abs=0.015)
    # With N in the sequences, [UNK] k-mers cut spans too.
    ids, mask = batch(tokenizer, 96, 300, seed=1)
    _, labels = mask_tokens(ids, mask, tokenizer, 0.15, generator=generator)
    selected = labels != IGNORE_INDEX
    candidate = mask & ~torch.isin(ids, torch.tensor(special_token_ids(tokenizer)))
    assert not (selected & ~candidate).any()
    found = runs(selected)
    assert len(found) > 100 and max(length for _, _, length in found) >= 12  # overlapping spans merge
    short = 0
    for row, start, length in found:
        # A run may be cut short only where it meets a non-candidate ([CLS], [SEP], [UNK], pad).
        touches_edge = not candidate[row, start - 1] or start + length >= ids.shape[1] or not candidate[row, start + length]
        short += length < 6 and not touches_edge
    assert short == 0


def test_span_length_follows_stride_and_non_overlapping_kmers_are_per_token():
    assert mask_span_tokens(KmerTokenizer(6, 2)) == 3
    assert mask_span_tokens(KmerTokenizer(3, 3)) == 1
    assert mask_span_tokens(CharTokenizer()) == 1
    tokenizer = KmerTokenizer(3, 3)
    ids, mask = batch(tokenizer, 64, 600, seed=2)
    _, labels = mask_tokens(ids, mask, tokenizer, 0.3, generator=torch.Generator().manual_seed(2))
    candidate = mask & ~torch.isin(ids, torch.tensor(special_token_ids(tokenizer)))
    assert (labels != IGNORE_INDEX).sum() / candidate.sum() == pytest.approx(0.3, abs=0.015)


def test_generator_makes_masking_reproducible():
    tokenizer = KmerTokenizer(4, 1)
    ids, mask = batch(tokenizer, 8, 100)
    first = mask_tokens(ids, mask, tokenizer, generator=torch.Generator().manual_seed(3))
    again = mask_tokens(ids, mask, tokenizer, generator=torch.Generator().manual_seed(3))
    other = mask_tokens(ids, mask, tokenizer, generator=torch.Generator().manual_seed(4))
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])
    assert not torch.equal(first[1], other[1])
    with pytest.raises(BiolmError, match="mlm_probability"):
        mask_tokens(ids, mask, tokenizer, 1.0)


def test_causal_labels_shift_by_one_and_ignore_padding():
    ids = torch.tensor([[2, 5, 6, 7, 3], [2, 8, 3, 0, 0], [0, 0, 2, 5, 3]])
    mask = ids != 0
    labels = causal_lm_labels(ids, mask)
    x = IGNORE_INDEX
    assert labels.tolist() == [[5, 6, 7, 3, x], [8, 3, x, x, x], [x, x, 5, 3, x]]
    assert causal_lm_labels(ids, mask.long()).tolist() == labels.tolist()


def test_bits_per_base_and_bases_per_token():
    assert bits_per_base(1000 * 2 * math.log(2), 1000) == pytest.approx(2.0)
    assert bits_per_base(math.log(2) * 30, 10) == pytest.approx(3.0)
    assert bases_per_predicted_token(CharTokenizer()) == 1.0
    assert bases_per_predicted_token(KmerTokenizer(6, 1)) == 1.0
    assert bases_per_predicted_token(KmerTokenizer(6, 2)) == 1.0
    assert bases_per_predicted_token(KmerTokenizer(3, 3)) == 3.0
    bpe = BpeTokenizer.from_file(BPE_JSON)
    assert bases_per_predicted_token(bpe) == bpe.bases_per_token > 2

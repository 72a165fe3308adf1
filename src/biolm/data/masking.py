"""Language-model targets: BERT masked-LM corruption, causal-LM labels, and bits per base.

In: ``(batch, length)`` int64 token ids and a ``(batch, length)`` attention mask (True/1 on real
tokens, False/0 on padding). Out: ``(batch, length)`` int64 tensors: corrupted ids for the model
and labels holding the id to predict, ``-100`` (``IGNORE_INDEX``, what
``torch.nn.functional.cross_entropy`` skips) where nothing is predicted.

Masked LM (`mask_tokens`): tokens are selected at rate ``mlm_probability``; of those, 80% become
``[MASK]``, 10% a random non-special token, 10% stay. Overlapping k-mers (``stride < k``) share
bases with their neighbours, so a lone masked k-mer could be read off the tokens beside it;
instead whole spans of ``tokenizer.max_tokens_per_base`` tokens are selected (``ceil(k / stride)``;
DNABERT: 6 tokens for 6-mers, offsets -2..+3 around each chosen centre), which leaves at least
``stride`` bases hidden.

Causal LM (`causal_lm_labels`): ``labels[:, t] = input_ids[:, t + 1]``, so ``logits[:, t]``
(computed from tokens ``0..t``) is scored against ``labels[:, t]`` with no further shift:
``cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100)``.

Everything here is vectorised torch (the only Python loop is over the <= 6 span offsets) and
runs on the device of ``input_ids``.
"""

from __future__ import annotations

import math

import torch

from biolm.errors import BiolmError
from biolm.tokenizers.base import DnaTokenizer

IGNORE_INDEX = -100
MASK_SHARE, RANDOM_SHARE = 0.8, 0.1  # of the selected tokens; the remaining 0.1 stay unchanged


def special_token_ids(tokenizer: DnaTokenizer) -> list[int]:
    """Ids never selected as masked-LM targets: every special token (``[PAD]``, ``[UNK]``, ``[CLS]``, ``[SEP]``, ``[MASK]``)."""
    return tokenizer.special_ids


def mask_span_tokens(tokenizer: DnaTokenizer) -> int:
    """Tokens per masked span: the most tokens one base lies in (``ceil(k / stride)`` for k-mers), 1 without overlap."""
    return tokenizer.max_tokens_per_base


def mask_tokens(
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    tokenizer: DnaTokenizer,
    mlm_probability: float = 0.15,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT masked-LM corruption (80% ``[MASK]`` / 10% random / 10% kept), span-wise for overlapping k-mers.

    Args:
        input_ids: ``(batch, length)`` int64 token ids.
        attention_mask: ``(batch, length)``, True (or 1) on real tokens.
        tokenizer: gives the special ids, the vocabulary and the k-mer geometry.
        mlm_probability: expected share of non-special tokens selected. With spans of ``m``
            tokens, centres are chosen at rate ``1 - (1 - p) ** (1 / m)`` so that, away from the
            sequence ends, a token is covered with probability exactly ``p`` (DNABERT's ``p / m``
            undershoots: 13.9% instead of 15% for 6-mers); spans are cut at special tokens, so
            the rate is a little lower within ``m`` tokens of them.
        generator: makes the draws reproducible. The draws are made on the generator's device
            and moved to ``input_ids.device``, so a CPU generator gives the same masks for CPU and
            CUDA batches.

    Returns:
        ``(corrupted_ids, labels)``, both ``(batch, length)`` int64: labels hold the original id
        at selected positions and ``-100`` elsewhere. Special tokens and padding are never selected.
    """
    if input_ids.shape != attention_mask.shape or input_ids.dim() != 2:
        raise ValueError(
            f"input_ids {tuple(input_ids.shape)} and attention_mask {tuple(attention_mask.shape)} must be equal (batch, length)"
        )
    if not 0 < mlm_probability < 1:
        raise BiolmError(f"objective.mlm_probability={mlm_probability}: accepted: a share strictly between 0 and 1")
    device, shape, length = input_ids.device, input_ids.shape, input_ids.shape[1]
    specials = torch.tensor(special_token_ids(tokenizer), device=device)
    candidate = attention_mask.bool() & ~torch.isin(input_ids, specials)  # (batch, length)

    span = mask_span_tokens(tokenizer)
    centre_rate = 1 - (1 - mlm_probability) ** (1 / span)
    draw_on = device if generator is None else generator.device
    centres = (torch.rand(shape, generator=generator, device=draw_on) < centre_rate).to(device)
    centres &= candidate
    selected = centres.clone()
    first = -((span - 1) // 2)
    for offset in range(first, first + span):  # token j is covered by a centre at j - offset
        if offset > 0:
            selected[:, offset:] |= centres[:, : length - offset]
        elif offset < 0:
            selected[:, : length + offset] |= centres[:, -offset:]
    selected &= candidate

    labels = input_ids.masked_fill(~selected, IGNORE_INDEX)
    action = torch.rand(shape, generator=generator, device=draw_on).to(device)
    to_mask = selected & (action < MASK_SHARE)
    to_random = selected & (action >= MASK_SHARE) & (action < MASK_SHARE + RANDOM_SHARE)
    ordinary = torch.tensor(sorted(set(tokenizer.vocab.values()) - set(special_token_ids(tokenizer))), device=device)
    random_ids = ordinary[torch.randint(len(ordinary), shape, generator=generator, device=draw_on).to(device)]
    corrupted = input_ids.masked_fill(to_mask, tokenizer.mask_id)
    corrupted = torch.where(to_random, random_ids, corrupted)
    return corrupted, labels


def causal_lm_labels(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Next-token labels: ``labels[:, t] = input_ids[:, t + 1]``, so ``logits[:, t]`` predicts ``labels[:, t]``.

    Args:
        input_ids: ``(batch, length)`` int64 token ids.
        attention_mask: ``(batch, length)``, True (or 1) on real tokens.

    Returns:
        ``(batch, length)`` int64 labels, ``-100`` at the last position and wherever the target
        ``t + 1`` or the position ``t`` itself is padding (so left- and right-padding both work).
        Special targets such as ``[SEP]`` are kept; mask them out if they should not count.
    """
    if input_ids.shape != attention_mask.shape or input_ids.dim() != 2:
        raise ValueError(
            f"input_ids {tuple(input_ids.shape)} and attention_mask {tuple(attention_mask.shape)} must be equal (batch, length)"
        )
    real = attention_mask.bool()
    labels = torch.full_like(input_ids, IGNORE_INDEX)
    labels[:, :-1] = input_ids[:, 1:].masked_fill(~(real[:, 1:] & real[:, :-1]), IGNORE_INDEX)
    return labels


def bits_per_base(total_nll_nats: float, n_bases: float) -> float:
    """Summed negative log-likelihood in nats -> bits per base.

    Args:
        total_nll_nats: cross-entropy summed over predicted tokens.
        n_bases: the bases those tokens stand for (predicted tokens x `bases_per_predicted_token`).

    Returns:
        ``total_nll_nats / ln 2 / n_bases``; 2.0 is a uniform guess over ACGT.
    """
    if n_bases <= 0:
        raise ValueError(f"n_bases must be positive, got {n_bases}")
    return total_nll_nats / math.log(2) / n_bases


def bases_per_predicted_token(tokenizer: DnaTokenizer) -> float:
    """How many bases one predicted token is credited with when turning loss per token into bits per base.

    Single nucleotides: 1. Non-overlapping k-mers: k (each token holds k new bases). BPE: its
    average bases per token. Overlapping k-mers (``stride < k``, masked as spans): 1. For stride 1
    a span of k masked tokens hides exactly one base that the unmasked neighbours do not reveal,
    and every token in the span contains it, so each token's loss is about that one base; the
    figure is therefore bits per hidden base, not directly comparable with a causal model's
    bits per base over every base.

    Args:
        tokenizer: the run's tokenizer.

    Returns:
        Bases per predicted token.
    """
    if mask_span_tokens(tokenizer) > 1:
        return 1.0
    return float(tokenizer.bases_per_token)

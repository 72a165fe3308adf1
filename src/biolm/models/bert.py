"""BERT trunk: bidirectional transformer encoder (DNABERT-1, DNABERT-2 and GENA-LM shapes).

`(batch, length)` token ids + `(batch, length)` attention mask (1 = real token)
-> `(batch, length, hidden_size)` hidden states.

Two position schemes and two MLPs cover the DNA BERTs:

- DNABERT-1 (standard Hugging Face BERT): learned absolute positions, GELU MLP.
- DNABERT-2 (MosaicBERT): ALiBi attention bias instead of position embeddings, GEGLU MLP.

Blocks are post-LN as in BERT, or pre-LN (``pre_layer_norm``) as in GENA-LM
(AIRI-Institute/GENA_LM ``src/gena_lm/modeling_bert.py``), optionally with a LayerNorm after
the last block (``last_layer_norm``); the LayerNorm after the embeddings is kept either way.

Attention goes through `torch.nn.functional.scaled_dot_product_attention` with one fused
QKV projection laid out as `(3, heads, head_dim)` along the output features, the layout of
MosaicBERT's `Wqkv`; `biolm.models.bert_hub` maps Hugging Face checkpoints onto these names,
and `BertEncoder.from_pretrained` loads such a checkpoint folder.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from biolm.errors import BiolmError
from biolm.models.config import config_from_kwargs

POSITION_EMBEDDINGS = ("learned", "alibi")
MLP_KINDS = ("gelu", "geglu")


@dataclass
class BertConfig:
    """Shape and regularisation of a `BertEncoder` (defaults: a tiny model for tests).

    Attributes:
        hidden_size: model width D.
        num_layers: number of transformer blocks.
        num_heads: attention heads; must divide `hidden_size`.
        intermediate_size: MLP inner width I.
        max_position_embeddings: rows of the learned position table (unused with ALiBi).
        position_embedding: "learned" (absolute table) or "alibi" (linear attention bias).
        mlp: "gelu" (Linear-GELU-Linear) or "geglu" (gated, DNABERT-2 layout).
        hidden_dropout: dropout on embeddings and on each sub-block output.
        attention_dropout: dropout on attention probabilities.
        layer_norm_eps: LayerNorm epsilon.
        type_vocab_size: token-type rows; row 0 is added to every token (0 disables).
        gradient_checkpointing: recompute each block in backward to save memory.
        initializer_range: std of the normal weight init.
        pre_layer_norm: pre-LN blocks, `x = x + attn(LN(x)); x = x + mlp(LN(x))`, as GENA-LM's
            `pre_layer_norm` (false: BERT's post-LN blocks).
        last_layer_norm: a LayerNorm on the last block's output (GENA-LM's `last_layer_ln`);
            pre-LN only, as in GENA-LM.
    """

    hidden_size: int = 128
    num_layers: int = 2
    num_heads: int = 4
    intermediate_size: int = 512
    max_position_embeddings: int = 512
    position_embedding: str = "learned"
    mlp: str = "gelu"
    hidden_dropout: float = 0.1
    attention_dropout: float = 0.0
    layer_norm_eps: float = 1e-12
    type_vocab_size: int = 2
    gradient_checkpointing: bool = False
    initializer_range: float = 0.02
    pre_layer_norm: bool = False
    last_layer_norm: bool = False

    def __post_init__(self) -> None:
        if self.position_embedding not in POSITION_EMBEDDINGS:
            raise BiolmError(
                f"model.trunk.position_embedding: unknown value {self.position_embedding!r} "
                f"(accepted: {', '.join(POSITION_EMBEDDINGS)})"
            )
        if self.mlp not in MLP_KINDS:
            raise BiolmError(
                f"model.trunk.mlp: unknown value {self.mlp!r} (accepted: {', '.join(MLP_KINDS)})"
            )
        if self.hidden_size % self.num_heads != 0:
            raise BiolmError(
                f"model.trunk.num_heads: {self.num_heads} does not divide "
                f"model.trunk.hidden_size {self.hidden_size}"
            )
        if self.last_layer_norm and not self.pre_layer_norm:
            raise BiolmError("model.trunk.last_layer_norm: true needs model.trunk.pre_layer_norm: true (a post-LN block already ends in a LayerNorm)")


def alibi_slopes(num_heads: int) -> Tensor:
    """ALiBi head slopes as in the ALiBi paper, MosaicBERT and DNABERT-2.

    For a power of two n the slopes are 2^(-8(i+1)/n). Otherwise take the list for the
    closest smaller power of two, then every other entry of the list for twice that size.

    Args:
        num_heads: number of attention heads.

    Returns:
        `(num_heads,)` float32 slopes.
    """

    def power_of_two(n: int) -> list[float]:
        return [2 ** (-8 * (i + 1) / n) for i in range(n)]

    closest = 2 ** math.floor(math.log2(num_heads))
    slopes = power_of_two(closest)
    if closest != num_heads:
        slopes += power_of_two(2 * closest)[0::2][: num_heads - closest]
    return torch.tensor(slopes, dtype=torch.float32)


def alibi_bias(slopes: Tensor, length: int) -> Tensor:
    """Symmetric ALiBi bias `-slope_h * |i - j|`.

    Args:
        slopes: `(heads,)` slopes from `alibi_slopes`.
        length: sequence length L.

    Returns:
        `(heads, L, L)` additive attention bias, dtype and device of `slopes`.
    """
    positions = torch.arange(length, device=slopes.device)
    distance = (positions[None, :] - positions[:, None]).abs().to(slopes.dtype)  # (L, L)
    return -slopes[:, None, None] * distance[None]


class BertEmbeddings(nn.Module):
    """Token ids -> embeddings: word (+ position) (+ token type 0), LayerNorm, dropout."""

    def __init__(self, config: BertConfig, vocab_size: int, pad_token_id: int):
        super().__init__()
        d = config.hidden_size
        self.word_embeddings = nn.Embedding(vocab_size, d, padding_idx=pad_token_id)
        self.position_embeddings = (
            nn.Embedding(config.max_position_embeddings, d)
            if config.position_embedding == "learned"
            else None
        )
        self.token_type_embeddings = (
            nn.Embedding(config.type_vocab_size, d) if config.type_vocab_size > 0 else None
        )
        self.layer_norm = nn.LayerNorm(d, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout)

    def forward(self, input_ids: Tensor) -> Tensor:
        x = self.word_embeddings(input_ids)  # (B, L, D)
        # Every token has type 0 for single-sequence tasks: add row 0 rather than a lookup.
        if self.token_type_embeddings is not None:
            x = x + self.token_type_embeddings.weight[0]
        if self.position_embeddings is not None:
            x = x + self.position_embeddings.weight[: input_ids.shape[1]]
        return self.dropout(self.layer_norm(x))


class BertSelfAttention(nn.Module):
    """Multi-head self-attention with a fused QKV projection: (B, L, D) -> (B, L, D)."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.num_heads = config.num_heads
        self.head_dim = config.hidden_size // config.num_heads
        self.dropout_p = config.attention_dropout
        self.qkv = nn.Linear(config.hidden_size, 3 * config.hidden_size)
        self.out = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(self, x: Tensor, attn_mask: Tensor | None, queries: int | None = None) -> Tensor:
        """``queries``: attend from the first ``queries`` positions only (to every key): output `(B, queries, D)`."""
        b, length, d = x.shape
        qkv = self.qkv(x).view(b, length, 3, self.num_heads, self.head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (B, H, L, head_dim)
        if queries is not None:
            q = q[:, :, :queries]  # (B, H, queries, head_dim)
            if attn_mask is not None and attn_mask.shape[-2] != 1:
                attn_mask = attn_mask[..., :queries, :]  # ALiBi bias rows of those queries
        y = F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=attn_mask,
            dropout_p=self.dropout_p if self.training else 0.0,
            is_causal=False,
        )
        y = y.transpose(1, 2).reshape(b, q.shape[2], d)  # (B, L or queries, D)
        return self.out(y)


class GeluMlp(nn.Module):
    """Linear(D, I) -> GELU (exact) -> Linear(I, D)."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.fc_in = nn.Linear(config.hidden_size, config.intermediate_size)
        self.fc_out = nn.Linear(config.intermediate_size, config.hidden_size)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc_out(F.gelu(self.fc_in(x)))


class GegluMlp(nn.Module):
    """GEGLU as in DNABERT-2: `gated` (D -> 2I, no bias) split gate | linear, then Linear(I, D)."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.intermediate_size = config.intermediate_size
        self.gated = nn.Linear(config.hidden_size, 2 * config.intermediate_size, bias=False)
        self.fc_out = nn.Linear(config.intermediate_size, config.hidden_size)

    def forward(self, x: Tensor) -> Tensor:
        gate, linear = self.gated(x).split(self.intermediate_size, dim=-1)  # each (B, L, I)
        return self.fc_out(F.gelu(gate) * linear)


class BertLayer(nn.Module):
    """Post-LN block x = LN(x + attn(x)); x = LN(x + mlp(x)), or pre-LN x = x + attn(LN(x)); x = x + mlp(LN(x)).

    `attention_norm` and `mlp_norm` follow (post-LN) or precede (pre-LN, `pre_layer_norm`) the
    attention and the MLP, so both kinds share parameter names.
    """

    def __init__(self, config: BertConfig):
        super().__init__()
        self.pre_layer_norm = config.pre_layer_norm
        self.attention = BertSelfAttention(config)
        self.attention_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.mlp = GegluMlp(config) if config.mlp == "geglu" else GeluMlp(config)
        self.mlp_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout)

    def forward(self, x: Tensor, attn_mask: Tensor | None, queries: int | None = None) -> Tensor:
        """`(B, L, D)` -> `(B, L, D)`, or `(B, queries, D)`: the first ``queries`` positions' outputs only (the
        MLP and residuals of the other positions are skipped; their keys and values still count)."""
        if self.pre_layer_norm:
            x = x[:, :queries] + self.dropout(self.attention(self.attention_norm(x), attn_mask, queries))
            return x + self.dropout(self.mlp(self.mlp_norm(x)))
        x = self.attention_norm(x[:, :queries] + self.dropout(self.attention(x, attn_mask, queries)))
        return self.mlp_norm(x + self.dropout(self.mlp(x)))


class BertEncoder(nn.Module):
    """BERT trunk: `(B, L)` ids + `(B, L)` mask -> `(B, L, D)` hidden states.

    Args:
        vocab_size: tokenizer vocabulary size.
        pad_token_id: id of the pad token (its embedding row stays zero and gets no gradient).
        **kwargs: `BertConfig` fields.
    """

    needs_pretraining = True  # from scratch it wants more labelled data than a CNN (biolm.schedule.small_data_advice)
    first_token_only = True  # forward(..., first_token_only=True): see `forward`

    lora_target_modules = ("qkv",)  # default LoRA targets: the fused query/key/value projection (LoRA on attention, as in the LoRA paper)

    def __init__(self, vocab_size: int, pad_token_id: int = 0, **kwargs: object):
        super().__init__()
        self.config = config_from_kwargs(BertConfig, kwargs, "BertEncoder")
        self.embeddings = BertEmbeddings(self.config, vocab_size, pad_token_id)
        self.layers = nn.ModuleList(BertLayer(self.config) for _ in range(self.config.num_layers))
        self.final_norm = (
            nn.LayerNorm(self.config.hidden_size, eps=self.config.layer_norm_eps) if self.config.last_layer_norm else None
        )
        if self.config.position_embedding == "alibi":
            self.register_buffer("alibi_slopes", alibi_slopes(self.config.num_heads), persistent=False)
        self._alibi_cache: Tensor | None = None
        self.apply(self._init_weights)

    @classmethod
    def from_pretrained(cls, path: str | Path, **overrides: object) -> BertEncoder:
        """Load a local Hugging Face BERT / DNABERT-1 / DNABERT-2 / GENA-LM checkpoint folder.

        The architecture comes from its config.json; see
        `biolm.models.bert_hub.bert_encoder_from_pretrained` for `overrides` and errors.
        """
        from biolm.models.bert_hub import bert_encoder_from_pretrained

        return bert_encoder_from_pretrained(path, **overrides)

    @property
    def hidden_size(self) -> int:
        """Width D of the returned hidden states."""
        return self.config.hidden_size

    @property
    def max_tokens(self) -> int | None:
        """Longest input in tokens: the position table size, or None for ALiBi."""
        if self.config.position_embedding == "learned":
            return self.config.max_position_embeddings
        return None

    def _init_weights(self, module: nn.Module) -> None:
        # Hugging Face BERT init: N(0, initializer_range) weights, zero biases, LN = identity.
        std = self.config.initializer_range
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, std=std)
            if module.padding_idx is not None:
                with torch.no_grad():
                    module.weight[module.padding_idx].zero_()
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)

    def _alibi(self, length: int, dtype: torch.dtype) -> Tensor:
        """`(1, H, L, L)` ALiBi bias, sliced from the largest one built so far."""
        cache = self._alibi_cache
        if (
            cache is None
            or cache.shape[-1] < length
            or cache.dtype != dtype
            or cache.device != self.alibi_slopes.device
        ):
            cache = alibi_bias(self.alibi_slopes, length).to(dtype)[None]
            self._alibi_cache = cache
        return cache[..., :length, :length]

    def attention_mask_for(self, attention_mask: Tensor, dtype: torch.dtype) -> Tensor | None:
        """SDPA mask from a `(B, L)` padding mask: None, bool `(B, 1, 1, L)` or float bias.

        With learned positions and no pads this is None so SDPA takes its fastest path.
        With ALiBi it is the `(B or 1, H, L, L)` bias, pad keys set to the dtype's minimum.
        """
        keep = attention_mask.bool()
        has_pads = not bool(keep.all())
        length = keep.shape[1]
        if self.config.position_embedding == "learned":
            return keep[:, None, None, :] if has_pads else None
        bias = self._alibi(length, dtype)
        if has_pads:
            # finfo.min rather than -inf keeps an all-pad row finite instead of NaN.
            bias = bias.masked_fill(~keep[:, None, None, :], torch.finfo(dtype).min)
        return bias

    def forward(self, input_ids: Tensor, attention_mask: Tensor, first_token_only: bool = False) -> Tensor:
        """Encode a batch.

        Args:
            input_ids: `(B, L)` token ids.
            attention_mask: `(B, L)` bool or 0/1, 1 = real token.
            first_token_only: return the first position only, `(B, 1, D)`; the last layer then runs its
                attention output, MLP and norms for that position alone (exact, and cheaper: what a CLS-pooled
                head reads; `biolm.models.heads.SequenceModel` asks for it when predicting).

        Returns:
            `(B, L, D)` hidden states (values at pad positions are meaningless), or `(B, 1, D)`.
        """
        length = input_ids.shape[1]
        if self.max_tokens is not None and length > self.max_tokens:
            raise BiolmError(
                f"input of {length} tokens is longer than model.trunk.max_position_embeddings "
                f"({self.max_tokens}); truncate or window the sequences"
            )
        x = self.embeddings(input_ids)  # (B, L, D)
        attn_mask = self.attention_mask_for(attention_mask, x.dtype)
        use_checkpoint = self.config.gradient_checkpointing and self.training
        last = len(self.layers) - 1
        for index, layer in enumerate(self.layers):
            queries = 1 if first_token_only and index == last else None
            if use_checkpoint:
                x = checkpoint(layer, x, attn_mask, queries, use_reentrant=False)
            else:
                x = layer(x, attn_mask, queries)
        if first_token_only and not self.layers:
            x = x[:, :1]
        if self.final_norm is not None:
            x = self.final_norm(x)
        return x

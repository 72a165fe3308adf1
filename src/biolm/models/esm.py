"""ESM trunk: pre-LN transformer encoder of ESM-2 and the Nucleotide Transformer (v1 and v2).

`(batch, length)` token ids + `(batch, length)` attention mask (1 = real token)
-> `(batch, length, hidden_size)` hidden states, after the final LayerNorm.

Switches in `EsmConfig` cover the three public families (the math of `transformers.EsmModel`
and of the NT v2 remote code, see shared/reference/checkpoint-layouts.md §1):

- NT v1 (`InstaDeepAI/nucleotide-transformer-*` up to 2.5B): learned absolute positions
  counted from `pad_token_id + 1`, `token_dropout` embedding rescaling, GELU MLP with biases.
- NT v2: rotary positions, gated SiLU MLP (`fc_in` D -> 2I, `silu(first half) * second half`)
  without biases.
- ESM-2 (`facebook/esm2_*`): rotary positions, GELU MLP with biases.

Queries are scaled by `head_dim ** -0.5` before the rotation, as ESM does. The LM head
(`lm_logits`) is ESM's: dense -> GELU -> LayerNorm -> decoder + bias, the decoder tied to the
embedding for ESM-2 and stored separately for NT.
`biolm.models.esm_hub` maps checkpoints onto these names; `EsmEncoder.from_pretrained` loads a
local checkpoint folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from biolm.errors import BiolmError
from biolm.models.config import config_from_kwargs

POSITION_EMBEDDINGS = ("learned", "rotary")
MLP_KINDS = ("gelu", "swiglu")
# ESM's token dropout rescales by the share of tokens its training left unmasked (15% picked,
# 80% of those replaced by <mask>); hard-coded in ESM, NT and transformers alike.
_TRAIN_MASK_RATIO = 0.15 * 0.8


@dataclass
class EsmConfig:
    """Shape and switches of an `EsmEncoder` (defaults: a tiny ESM-2-style model for tests).

    Attributes:
        hidden_size: model width D.
        num_layers: number of transformer blocks.
        num_heads: attention heads; must divide `hidden_size` into an even head size.
        intermediate_size: MLP inner width I (the gated MLP projects to 2I first).
        max_position_embeddings: rows of the learned position table; positions start at
            `pad_token_id + 1`, so it holds `max_position_embeddings - pad_token_id - 1`
            tokens. With rotary positions it is the trained length, not a hard limit.
        position_embedding: "learned" (NT v1) or "rotary" (NT v2, ESM-2).
        mlp: "gelu" (Linear-GELU-Linear) or "swiglu" (NT v2's gated SiLU MLP).
        mlp_bias: biases in the MLP's two projections (NT v2: false).
        token_dropout: zero `<mask>` embeddings and rescale every embedding by
            `(1 - 0.12) / (1 - masked share of the sequence)` (NT v1, ESM-2: true).
        mask_token_id: the `<mask>` id `token_dropout` looks for.
        embedding_layer_norm: LayerNorm right after the embeddings (ESM-1b; false for NT and ESM-2).
        lm_head: build ESM's LM head (`lm_logits`); false for a checkpoint without one.
        tie_word_embeddings: the LM head's decoder reuses the embedding matrix (ESM-2: true;
            NT: false, its decoder is stored).
        hidden_dropout: dropout on each sub-block output.
        attention_dropout: dropout on attention probabilities.
        layer_norm_eps: LayerNorm epsilon.
        gradient_checkpointing: recompute each block in backward to save memory.
        initializer_range: std of the normal weight init.
    """

    hidden_size: int = 64
    num_layers: int = 2
    num_heads: int = 4
    intermediate_size: int = 256
    max_position_embeddings: int = 1026
    position_embedding: str = "rotary"
    mlp: str = "gelu"
    mlp_bias: bool = True
    token_dropout: bool = False
    mask_token_id: int = 2
    embedding_layer_norm: bool = False
    lm_head: bool = True
    tie_word_embeddings: bool = True
    hidden_dropout: float = 0.0
    attention_dropout: float = 0.0
    layer_norm_eps: float = 1e-12
    gradient_checkpointing: bool = False
    initializer_range: float = 0.02

    def __post_init__(self) -> None:
        if self.position_embedding not in POSITION_EMBEDDINGS:
            raise BiolmError(
                f"model.trunk.position_embedding: unknown value {self.position_embedding!r} "
                f"(accepted: {', '.join(POSITION_EMBEDDINGS)})"
            )
        if self.mlp not in MLP_KINDS:
            raise BiolmError(f"model.trunk.mlp: unknown value {self.mlp!r} (accepted: {', '.join(MLP_KINDS)})")
        if self.hidden_size % self.num_heads != 0 or (self.hidden_size // self.num_heads) % 2 != 0:
            raise BiolmError(
                f"model.trunk.num_heads: {self.num_heads} must divide model.trunk.hidden_size "
                f"{self.hidden_size} into an even head size"
            )


def rotary_tables(head_dim: int, length: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """`(L, head_dim)` float32 cos and sin for positions 0..L-1 (half-split layout, base 10000)."""
    inv_freq = 1.0 / 10000 ** (torch.arange(0, head_dim, 2, device=device, dtype=torch.float32) / head_dim)
    angles = torch.arange(length, device=device, dtype=torch.float32)[:, None] * inv_freq  # (L, head_dim/2)
    angles = torch.cat([angles, angles], dim=-1)  # (L, head_dim)
    return angles.cos(), angles.sin()


def apply_rotary(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate `(B, H, L, head_dim)` queries or keys: `x*cos + rotate_half(x)*sin`, in float32."""
    x1, x2 = x.float().chunk(2, dim=-1)
    rotated = torch.cat([-x2, x1], dim=-1)
    return (x.float() * cos + rotated * sin).to(x.dtype)


class EsmEmbeddings(nn.Module):
    """Token ids -> embeddings: word, token-dropout rescaling, (+ learned position), pads zeroed."""

    def __init__(self, config: EsmConfig, vocab_size: int, pad_token_id: int):
        super().__init__()
        d = config.hidden_size
        self.config = config
        self.pad_token_id = pad_token_id
        self.word_embeddings = nn.Embedding(vocab_size, d, padding_idx=pad_token_id)
        self.position_embeddings = (
            nn.Embedding(config.max_position_embeddings, d, padding_idx=pad_token_id)
            if config.position_embedding == "learned"
            else None
        )
        self.layer_norm = nn.LayerNorm(d, eps=config.layer_norm_eps) if config.embedding_layer_norm else None

    def forward(self, input_ids: Tensor, keep: Tensor) -> Tensor:
        x = self.word_embeddings(input_ids)  # (B, L, D)
        if self.config.token_dropout:
            is_mask = input_ids == self.config.mask_token_id  # (B, L)
            x = x.masked_fill(is_mask[..., None], 0.0)
            observed = is_mask.sum(-1).float() / keep.sum(-1).clamp(min=1)  # (B,); an all-pad row stays finite
            x = (x * (1 - _TRAIN_MASK_RATIO) / (1 - observed)[:, None, None]).to(x.dtype)
        if self.position_embeddings is not None:
            # fairseq positions: real tokens count from pad_token_id + 1, pads sit on pad_token_id.
            real = (input_ids != self.pad_token_id).long()
            x = x + self.position_embeddings(torch.cumsum(real, dim=1) * real + self.pad_token_id)
        if self.layer_norm is not None:
            x = self.layer_norm(x)
        return x * keep[..., None].to(x.dtype)


class EsmSelfAttention(nn.Module):
    """Multi-head self-attention, fused QKV laid out `(q | k | v)`: (B, L, D) -> (B, L, D)."""

    def __init__(self, config: EsmConfig):
        super().__init__()
        self.num_heads = config.num_heads
        self.head_dim = config.hidden_size // config.num_heads
        self.dropout_p = config.attention_dropout
        self.qkv = nn.Linear(config.hidden_size, 3 * config.hidden_size)
        self.out = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(self, x: Tensor, attn_mask: Tensor | None, rotary: tuple[Tensor, Tensor] | None) -> Tensor:
        b, length, d = x.shape
        qkv = self.qkv(x).view(b, length, 3, self.num_heads, self.head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (B, H, L, head_dim)
        q = q * self.head_dim**-0.5  # before the rotation, as ESM does
        if rotary is not None:
            q, k = apply_rotary(q, *rotary), apply_rotary(k, *rotary)
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, dropout_p=self.dropout_p if self.training else 0.0, scale=1.0
        )
        return self.out(y.transpose(1, 2).reshape(b, length, d))  # (B, L, D)


class EsmMlp(nn.Module):
    """GELU: `fc_out(gelu(fc_in(x)))`; SwiGLU (NT v2): `fc_out(silu(u[:I]) * u[I:])`, `u = fc_in(x)`."""

    def __init__(self, config: EsmConfig):
        super().__init__()
        self.gated = config.mlp == "swiglu"
        inner = config.intermediate_size
        self.fc_in = nn.Linear(config.hidden_size, 2 * inner if self.gated else inner, bias=config.mlp_bias)
        self.fc_out = nn.Linear(inner, config.hidden_size, bias=config.mlp_bias)

    def forward(self, x: Tensor) -> Tensor:
        u = self.fc_in(x)  # (B, L, I) or (B, L, 2I)
        if self.gated:
            gate, linear = u.chunk(2, dim=-1)  # each (B, L, I)
            return self.fc_out(F.silu(gate) * linear)
        return self.fc_out(F.gelu(u))  # exact (erf) GELU, as ESM


class EsmLayer(nn.Module):
    """Pre-LN block: x = x + attn(LN(x)); x = x + mlp(LN(x))."""

    def __init__(self, config: EsmConfig):
        super().__init__()
        self.attention_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.attention = EsmSelfAttention(config)
        self.mlp_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.mlp = EsmMlp(config)
        self.dropout = nn.Dropout(config.hidden_dropout)

    def forward(self, x: Tensor, attn_mask: Tensor | None, rotary: tuple[Tensor, Tensor] | None) -> Tensor:
        x = x + self.dropout(self.attention(self.attention_norm(x), attn_mask, rotary))
        return x + self.dropout(self.mlp(self.mlp_norm(x)))


class EsmLMHead(nn.Module):
    """ESM's LM head: `(B, L, D)` -> dense -> GELU -> LayerNorm -> decoder (no bias) + bias -> `(B, L, V)`."""

    def __init__(self, config: EsmConfig, vocab_size: int, tied_embedding: nn.Embedding | None):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.decoder = nn.Linear(config.hidden_size, vocab_size, bias=False)
        if tied_embedding is not None:
            self.decoder.weight = tied_embedding.weight
        self.bias = nn.Parameter(torch.zeros(vocab_size))

    def forward(self, hidden: Tensor) -> Tensor:
        return self.decoder(self.layer_norm(F.gelu(self.dense(hidden)))) + self.bias


class EsmEncoder(nn.Module):
    """ESM / Nucleotide Transformer trunk: `(B, L)` ids + `(B, L)` mask -> `(B, L, D)` hidden states.

    Args:
        vocab_size: tokenizer vocabulary size.
        pad_token_id: id of the pad token (ESM and NT: 1); learned positions count from it.
        **kwargs: `EsmConfig` fields.
    """

    needs_pretraining = True  # from scratch it wants more labelled data than a CNN (biolm.schedule.small_data_advice)

    lora_target_modules = ("qkv",)  # default LoRA targets: the fused query/key/value projection

    def __init__(self, vocab_size: int, pad_token_id: int = 1, **kwargs: object):
        super().__init__()
        self.config = config_from_kwargs(EsmConfig, kwargs, "EsmEncoder")
        c = self.config
        self.embeddings = EsmEmbeddings(c, vocab_size, pad_token_id)
        self.layers = nn.ModuleList(EsmLayer(c) for _ in range(c.num_layers))
        self.final_norm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        tied = self.embeddings.word_embeddings if c.tie_word_embeddings else None
        self.lm_head = EsmLMHead(c, vocab_size, tied) if c.lm_head else None
        self.apply(self._init_weights)

    @classmethod
    def from_pretrained(cls, path: str | Path, **overrides: object) -> EsmEncoder:
        """Load a local ESM-2 / Nucleotide Transformer v1 or v2 checkpoint folder.

        The architecture comes from its config.json; see
        `biolm.models.esm_hub.esm_encoder_from_pretrained` for `overrides` and errors.
        """
        from biolm.models.esm_hub import esm_encoder_from_pretrained

        return esm_encoder_from_pretrained(path, **overrides)

    @property
    def hidden_size(self) -> int:
        """Width D of the returned hidden states."""
        return self.config.hidden_size

    @property
    def max_tokens(self) -> int | None:
        """Longest input in tokens: what the learned position table holds, or None for rotary."""
        if self.config.position_embedding == "learned":
            return self.config.max_position_embeddings - self.embeddings.pad_token_id - 1
        return None

    def _init_weights(self, module: nn.Module) -> None:
        # Hugging Face ESM init: N(0, initializer_range) weights, zero biases, LN = identity.
        std = self.config.initializer_range
        if isinstance(module, nn.Linear):
            if module.weight is not self.embeddings.word_embeddings.weight:  # a tied decoder keeps its init
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
        elif isinstance(module, EsmLMHead):
            nn.init.zeros_(module.bias)

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        """Encode a batch.

        Args:
            input_ids: `(B, L)` token ids, right-padded.
            attention_mask: `(B, L)` bool or 0/1, 1 = real token.

        Returns:
            `(B, L, D)` hidden states after the final LayerNorm (values at pad positions are
            meaningless).

        Raises:
            BiolmError: more tokens than the learned position table holds.
        """
        length = input_ids.shape[1]
        if self.max_tokens is not None and length > self.max_tokens:
            raise BiolmError(
                f"input of {length} tokens is longer than the {self.max_tokens} that "
                f"model.trunk.max_position_embeddings ({self.config.max_position_embeddings}) holds; "
                "truncate or window the sequences"
            )
        keep = attention_mask.bool()
        x = self.embeddings(input_ids, keep)  # (B, L, D)
        attn_mask = None if bool(keep.all()) else keep[:, None, None, :]  # (B, 1, 1, L)
        rotary = None
        if self.config.position_embedding == "rotary":
            rotary = rotary_tables(self.config.hidden_size // self.config.num_heads, length, x.device)
        use_checkpoint = self.config.gradient_checkpointing and self.training
        for layer in self.layers:
            if use_checkpoint:
                x = checkpoint(layer, x, attn_mask, rotary, use_reentrant=False)
            else:
                x = layer(x, attn_mask, rotary)
        return self.final_norm(x)

    def lm_logits(self, hidden: Tensor) -> Tensor:
        """Token logits `(..., V)` from `(..., D)` hidden states, with ESM's LM head.

        Raises:
            BiolmError: the encoder was built without an LM head (`lm_head: false`).
        """
        if self.lm_head is None:
            raise BiolmError(
                "EsmEncoder has no LM head (model.trunk.lm_head=false, e.g. a checkpoint saved without "
                "lm_head.*): masked-LM training and scoring need one"
            )
        return self.lm_head(hidden)

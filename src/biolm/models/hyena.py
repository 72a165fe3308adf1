"""HyenaDNA trunk: causal long convolutions with implicit filters, no attention.

`(batch, length)` token ids + `(batch, length)` attention mask (1 = real token)
-> `(batch, length, d_model)` hidden states (zero at pad positions).

Each of `n_layer` pre-norm blocks is `x = x + mixer(norm1(x)); x = x + mlp(norm2(x))`, where the
mixer is a `HyenaOperator` of order N (2 in all published checkpoints):

- `in_proj` lifts `(B, L, D)` to `(B, L, (N+1) D)`, a depthwise causal `short_filter` mixes a few
  neighbouring tokens, and the result splits into gates `x_0 .. x_{N-1}` and a value `v`.
- For each remaining gate: `v = fft_long_conv(v * x_i, k_i)`, with `k_i` a `(D, L)` filter
  that a small MLP (`HyenaFilter`) generates from positional features, so the number of
  parameters does not grow with L. Finally `y = out_proj(v * x_0)`.

The long convolution is a zero-padded FFT over at least 2L points (cost O(L log L)), always in
float32. Every mixing step is causal, so hidden states at position t depend only on tokens
<= t: right padding never changes real positions. `HyenaEncoder.lm_logits` maps hidden states
to `(batch, length, vocab)` next-token logits through `HyenaLMHead` (tied to the embedding by
default) for a causal-LM task. Parameter names follow the Hugging Face port of HyenaDNA
(`LongSafari/hyenadna-*-hf`): `biolm.models.hyena_hub.hyena_state_dict_from_hf` only strips its `hyena.backbone.` prefix,
and `HyenaEncoder.from_pretrained` loads such a checkpoint folder.
Structure after HazyResearch/hyena-dna `standalone_hyenadna.py`.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from biolm.errors import BiolmError
from biolm.models.config import config_from_kwargs


@dataclass
class HyenaConfig:
    """Shape and regularisation of a `HyenaEncoder` (defaults: HyenaDNA-tiny-1k).

    Field names and defaults are those of the Hugging Face port's `HyenaConfig`.

    Attributes:
        d_model: model width D.
        n_layer: number of blocks.
        d_inner: MLP inner width (None: 4 * d_model).
        max_seq_len: longest input in tokens; also the length of the filters' position grid.
        emb_dim: positional features fed to the filter MLP (odd, >= 3: time, then cos/sin bands).
        filter_order: width of the filter MLP.
        num_inner_mlps: hidden Linear + Sin layers of the filter MLP.
        hyena_order: N, the number of gates (N - 1 long convolutions per block).
        short_filter_order: kernel of the depthwise causal short convolution.
        activation_freq: initial frequency of the filter MLP's Sin activations.
        modulation_shift: constant added to the filters' exponential decay window (0.0 in the
            HyenaDNA training code; the HF port, and so its checkpoints, use 0.05).
        embed_dropout: dropout on the token embeddings.
        hyena_dropout: dropout on each gated value before its long convolution.
        hyena_filter_dropout: dropout on the generated filter taps.
        layer_norm_epsilon: LayerNorm epsilon.
        initializer_range: std of the normal weight init.
        use_bias: add the per-channel skip term `bias * u` to each long convolution.
        train_freq: make the Sin frequency a trainable parameter.
        pad_vocab_size_multiple: round the embedding rows up to a multiple of this.
        tie_word_embeddings: the LM head reuses the embedding matrix.
        gradient_checkpointing: recompute each block in backward to save memory.
        causal: must be True; the FFT convolution and short filter are causal by construction.
    """

    d_model: int = 128
    n_layer: int = 2
    d_inner: int | None = None
    max_seq_len: int = 1024
    emb_dim: int = 5
    filter_order: int = 64
    num_inner_mlps: int = 2
    hyena_order: int = 2
    short_filter_order: int = 3
    activation_freq: float = 1.0
    modulation_shift: float = 0.0
    embed_dropout: float = 0.1
    hyena_dropout: float = 0.0
    hyena_filter_dropout: float = 0.0
    layer_norm_epsilon: float = 1e-5
    initializer_range: float = 0.02
    use_bias: bool = True
    train_freq: bool = True
    pad_vocab_size_multiple: int = 8
    tie_word_embeddings: bool = True
    gradient_checkpointing: bool = False
    causal: bool = True

    def __post_init__(self) -> None:
        if self.d_inner is None:
            self.d_inner = 4 * self.d_model
        checks = [
            ("d_model", self.d_model >= 1, "an integer >= 1"),
            ("n_layer", self.n_layer >= 1, "an integer >= 1"),
            ("d_inner", self.d_inner >= 1, "an integer >= 1, or null for 4 * d_model"),
            ("max_seq_len", self.max_seq_len >= 1, "an integer >= 1"),
            ("emb_dim", self.emb_dim >= 3 and self.emb_dim % 2 == 1, "an odd integer >= 3"),
            ("filter_order", self.filter_order >= 1, "an integer >= 1"),
            ("num_inner_mlps", self.num_inner_mlps >= 0, "an integer >= 0"),
            ("hyena_order", self.hyena_order >= 2, "an integer >= 2"),
            ("short_filter_order", self.short_filter_order >= 1, "an integer >= 1"),
            ("pad_vocab_size_multiple", self.pad_vocab_size_multiple >= 1, "an integer >= 1"),
            ("causal", self.causal is True, "true (HyenaDNA is a causal model)"),
        ]
        for name in ("embed_dropout", "hyena_dropout", "hyena_filter_dropout"):
            checks.append((name, 0.0 <= getattr(self, name) < 1.0, "a number in [0, 1)"))
        for name, ok, accepted in checks:
            if not ok:
                raise BiolmError(
                    f"model.trunk.{name}: {getattr(self, name)!r} is not allowed "
                    f"(accepted: {accepted})"
                )


@functools.lru_cache(maxsize=64)
def _fast_fft_size(n: int) -> int:
    """Smallest 2^a 3^b 5^c >= n: FFT libraries are slow on sizes with large prime factors."""
    candidate = n
    while True:
        m = candidate
        for p in (2, 3, 5):
            while m % p == 0:
                m //= p
        if m == 1:
            return candidate
        candidate += 1


def fft_long_conv(u: Tensor, k: Tensor, bias: Tensor | None = None) -> Tensor:
    """Causal convolution of each channel with its own length-L filter, via FFT.

    `y[b, d, t] = sum_{s <= t} k[d, s] * u[b, d, t - s] + bias[d] * u[b, d, t]`.
    Zero padding to >= 2L turns the FFT's circular convolution into a linear one, so nothing
    wraps around from the end of the sequence to its start. Computed in float32 whatever
    the input dtype (half-precision FFTs lose too much over long filters).

    Args:
        u: `(B, D, L)` input.
        k: `(D, L)` filters.
        bias: `(D,)` skip weights, or None for no skip term.

    Returns:
        `(B, D, L)` output in the dtype of `u`.
    """
    length = u.shape[-1]
    n = _fast_fft_size(2 * length)
    with torch.autocast(device_type=u.device.type, enabled=False):
        u32 = u.float()
        k_f = torch.fft.rfft(k.float(), n=n)  # (D, n // 2 + 1)
        u_f = torch.fft.rfft(u32, n=n)  # (B, D, n // 2 + 1)
        y = torch.fft.irfft(u_f * k_f, n=n)[..., :length]  # (B, D, L)
        if bias is not None:
            y = y + u32 * bias.float()[:, None]
    return y.to(u.dtype)


class Sin(nn.Module):
    """`sin(freq * x)` with a per-feature frequency `freq` of shape `(1, dim)`."""

    def __init__(self, dim: int, freq: float, trainable: bool):
        super().__init__()
        init = freq * torch.ones(1, dim)
        if trainable:
            self.freq = nn.Parameter(init)
        else:
            # Not saved, as in the reference (there it is a plain tensor attribute).
            self.register_buffer("freq", init, persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return torch.sin(self.freq * x)


class PositionalEmbedding(nn.Module):
    """Filter-MLP input features over the whole position grid.

    `z`: `(1, max_seq_len, emb_dim)` = [t, cos(f w), -sin(f w)] with t in [0, 1],
    w = 2 pi pos / max_seq_len and (emb_dim - 1) / 2 bands f. A parameter, as in the reference.
    """

    def __init__(self, emb_dim: int, max_seq_len: int):
        super().__init__()
        t = torch.linspace(0, 1, max_seq_len)[None, :, None]  # (1, L, 1)
        bands = (emb_dim - 1) // 2
        positions = torch.arange(max_seq_len, dtype=torch.float32)[None, :, None]  # (1, L, 1)
        w = 2 * math.pi * positions / max_seq_len
        f = torch.linspace(1e-4, bands - 1, bands)[None, None]  # (1, 1, bands)
        # Real and imaginary parts of exp(-i f w), without building the complex tensor.
        fw = f * w  # (1, L, bands)
        self.z = nn.Parameter(torch.cat([t, fw.cos(), -fw.sin()], dim=-1))  # (1, L, emb_dim)
        self.register_buffer("t", t)

    def forward(self, length: int) -> tuple[Tensor, Tensor]:
        """Return `z[:, :length]` `(1, L, emb_dim)` and `t[:, :length]` `(1, L, 1)`."""
        return self.z[:, :length], self.t[:, :length]


class ExponentialModulation(nn.Module):
    """Multiply filter channel d by `exp(-t |delta_d|)`: decay rates from fast to slow."""

    def __init__(
        self,
        channels: int,
        fast_decay_pct: float = 0.3,
        slow_decay_pct: float = 1.5,
        target: float = 1e-2,
        shift: float = 0.0,
    ):
        super().__init__()
        self.shift = shift
        max_decay = math.log(target) / fast_decay_pct
        min_decay = math.log(target) / slow_decay_pct
        self.register_buffer("deltas", torch.linspace(min_decay, max_decay, channels)[None, None])

    def forward(self, t: Tensor, h: Tensor) -> Tensor:
        """`(1, L, 1)` times, `(1, L, C)` filters -> `(1, L, C)` decayed filters."""
        return h * (torch.exp(-t * self.deltas.abs()) + self.shift)


class HyenaFilter(nn.Module):
    """Implicit long filters: positions -> MLP with Sin activations -> decay -> `(L, C)` taps.

    C = d_model * (hyena_order - 1). One `Sin` module is shared by all activations of the MLP
    (state dict names `implicit_filter.{1,3,5}.freq` hold the same tensor), as in the reference.
    """

    def __init__(self, config: HyenaConfig):
        super().__init__()
        channels = config.d_model * (config.hyena_order - 1)
        width = config.filter_order
        self.use_bias = config.use_bias
        self.bias = nn.Parameter(torch.randn(channels))
        self.dropout = nn.Dropout(config.hyena_filter_dropout)
        self.pos_emb = PositionalEmbedding(config.emb_dim, config.max_seq_len)
        act = Sin(width, config.activation_freq, config.train_freq)
        layers: list[nn.Module] = [nn.Linear(config.emb_dim, width), act]
        for _ in range(config.num_inner_mlps):
            layers += [nn.Linear(width, width), act]
        layers.append(nn.Linear(width, channels, bias=False))
        self.implicit_filter = nn.Sequential(*layers)
        self.modulation = ExponentialModulation(channels, shift=config.modulation_shift)

    def filter(self, length: int) -> Tensor:
        """`(L, C)` filter taps for the first `length` positions."""
        z, t = self.pos_emb(length)
        h = self.implicit_filter(z)  # (1, L, C)
        return self.dropout(self.modulation(t, h)[0])


class HyenaOperator(nn.Module):
    """Hyena mixer of order N: `(B, L, D)` -> `(B, L, D)`, causal."""

    def __init__(self, config: HyenaConfig):
        super().__init__()
        d = config.d_model
        self.d_model = d
        self.order = config.hyena_order
        inner = d * (self.order + 1)
        self.in_proj = nn.Linear(d, inner)
        self.out_proj = nn.Linear(d, d)
        # Pad k-1 on both sides and keep the first L outputs: output t sees inputs t-k+1 .. t.
        self.short_filter = nn.Conv1d(
            inner,
            inner,
            config.short_filter_order,
            padding=config.short_filter_order - 1,
            groups=inner,
        )
        self.filter_fn = HyenaFilter(config)
        self.dropout = nn.Dropout(config.hyena_dropout)

    def forward(self, u: Tensor) -> Tensor:
        length = u.shape[1]
        u = self.in_proj(u).transpose(1, 2)  # (B, (N+1) D, L)
        uc = self.short_filter(u)[..., :length]  # (B, (N+1) D, L)
        *gates, v = uc.split(self.d_model, dim=1)  # N gates and v, each (B, D, L)
        k = self.filter_fn.filter(length)  # (L, (N-1) D)
        k = k.transpose(0, 1).reshape(self.order - 1, self.d_model, length)  # (N-1, D, L)
        bias = self.filter_fn.bias.view(self.order - 1, self.d_model)  # (N-1, D)
        # Same gate order as the reference: v is gated by x_{N-1} .. x_1, convolved after each,
        # and gated by x_0 last; checkpoints depend on this order.
        for o, gate in enumerate(reversed(gates[1:])):
            v = self.dropout(v * gate)
            v = fft_long_conv(v, k[o], bias[o] if self.filter_fn.use_bias else None)
        y = (v * gates[0]).transpose(1, 2)  # (B, L, D)
        return self.out_proj(y)


class HyenaMlp(nn.Module):
    """Linear(D, d_inner) -> GELU (tanh approximation) -> Linear(d_inner, D)."""

    def __init__(self, config: HyenaConfig):
        super().__init__()
        self.fc1 = nn.Linear(config.d_model, config.d_inner)
        self.fc2 = nn.Linear(config.d_inner, config.d_model)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))


class HyenaBlock(nn.Module):
    """Pre-norm residual block: x + mixer(norm1(x)), then + mlp(norm2(.))."""

    def __init__(self, config: HyenaConfig):
        super().__init__()
        self.norm1 = nn.LayerNorm(config.d_model, eps=config.layer_norm_epsilon)
        self.mixer = HyenaOperator(config)
        self.norm2 = nn.LayerNorm(config.d_model, eps=config.layer_norm_epsilon)
        self.mlp = HyenaMlp(config)

    def forward(self, x: Tensor, keep: Tensor) -> Tensor:
        # Zero pads after the norm (LN of 0 is not 0): a pad then looks like no token at all.
        x = x + self.mixer(self.norm1(x) * keep)
        return x + self.mlp(self.norm2(x))


class HyenaEmbeddings(nn.Module):
    """Token ids -> `(B, L, D)` embeddings; rows padded up to a multiple of 8 as in the HF port."""

    def __init__(self, config: HyenaConfig, vocab_size: int, pad_token_id: int):
        super().__init__()
        multiple = config.pad_vocab_size_multiple
        self.padded_vocab_size = math.ceil(vocab_size / multiple) * multiple
        self.word_embeddings = nn.Embedding(
            self.padded_vocab_size, config.d_model, padding_idx=pad_token_id
        )

    def forward(self, input_ids: Tensor) -> Tensor:
        return self.word_embeddings(input_ids)


class HyenaLMHead(nn.Module):
    """Next-token logits: `(B, L, D)` hidden -> `(B, L, vocab_size)`.

    The weight is the embedding matrix itself when tied (the HF port's default); the padding
    rows of the vocabulary are dropped from the logits.

    Args:
        d_model: hidden width D.
        vocab_size: real vocabulary size (logits are sliced to it).
        padded_vocab_size: rows of the weight.
        tied_to: embedding whose weight to share, or None for a separate weight.
    """

    def __init__(
        self, d_model: int, vocab_size: int, padded_vocab_size: int, tied_to: nn.Embedding | None
    ):
        super().__init__()
        self.vocab_size = vocab_size
        if tied_to is not None:
            self.weight = tied_to.weight
        else:
            self.weight = nn.Parameter(torch.empty(padded_vocab_size, d_model))

    def forward(self, hidden: Tensor) -> Tensor:
        return F.linear(hidden, self.weight)[..., : self.vocab_size]


class HyenaEncoder(nn.Module):
    """HyenaDNA trunk: `(B, L)` ids + `(B, L)` mask -> `(B, L, D)` hidden states.

    Args:
        vocab_size: tokenizer vocabulary size.
        pad_token_id: id of the pad token (its embedding row starts at zero).
        **kwargs: `HyenaConfig` fields.
    """

    needs_pretraining = True  # from scratch it wants more labelled data than a CNN (biolm.schedule.small_data_advice)

    causal = True  # position t sees tokens <= t only: a sequence head must not pool the first ([CLS]) token
    lora_target_modules = ("in_proj", "out_proj")  # default LoRA targets: the Hyena operators' input and output projections

    def __init__(self, vocab_size: int, pad_token_id: int = 0, **kwargs: object):
        super().__init__()
        self.config = config_from_kwargs(HyenaConfig, kwargs, "HyenaEncoder")
        c = self.config
        self.embeddings = HyenaEmbeddings(c, vocab_size, pad_token_id)
        self.embed_dropout = nn.Dropout(c.embed_dropout)
        self.layers = nn.ModuleList(HyenaBlock(c) for _ in range(c.n_layer))
        self.ln_f = nn.LayerNorm(c.d_model, eps=c.layer_norm_epsilon)
        self.lm_head = HyenaLMHead(
            c.d_model,
            vocab_size,
            self.embeddings.padded_vocab_size,
            self.embeddings.word_embeddings if c.tie_word_embeddings else None,
        )
        self.apply(self._init_weights)

    @classmethod
    def from_pretrained(cls, path: str | Path, **overrides: object) -> HyenaEncoder:
        """Load a local HyenaDNA `-hf` checkpoint folder (`config.json` + weights).

        The architecture comes from its config.json; see
        `biolm.models.hyena_hub.hyena_encoder_from_pretrained` for `overrides` and errors.
        """
        from biolm.models.hyena_hub import hyena_encoder_from_pretrained

        return hyena_encoder_from_pretrained(path, **overrides)

    def no_weight_decay(self) -> set[str]:
        """Parameter-name prefixes AdamW must not decay: each filter's positional features and MLP.

        As in the HyenaDNA reference (HazyResearch/hyena-dna `src/models/sequence/hyena.py`):
        `PositionalEmbedding` registers `z` through `OptimModule.register(..., wd=0.0)`, and
        `HyenaFilter` gives every tensor of `implicit_filter` (Linear layers and the Sin `freq`)
        `_optim = {"weight_decay": wd, ...}` with `wd=0`.
        """
        return {
            f"{name}.{part}"
            for name, module in self.named_modules()
            if isinstance(module, HyenaFilter)
            for part in ("pos_emb", "implicit_filter")
        }

    @property
    def hidden_size(self) -> int:
        """Width D of the returned hidden states."""
        return self.config.d_model

    @property
    def max_tokens(self) -> int:
        """Longest input in tokens (`max_seq_len`, the filters' position grid)."""
        return self.config.max_seq_len

    def _init_weights(self, module: nn.Module) -> None:
        # Reference init: N(0, initializer_range) for every Linear (filter MLP included) and
        # embedding, zero biases, and GPT-2's 1/sqrt(2 n_layer) shrink on the residual outputs.
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
        elif isinstance(module, HyenaLMHead) and not self.config.tie_word_embeddings:
            nn.init.normal_(module.weight, std=std)
        if isinstance(module, (HyenaOperator, HyenaMlp)):
            residual_out = module.out_proj if isinstance(module, HyenaOperator) else module.fc2
            nn.init.normal_(residual_out.weight, std=std / math.sqrt(2 * self.config.n_layer))

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        """Encode a batch.

        Args:
            input_ids: `(B, L)` token ids, right-padded.
            attention_mask: `(B, L)` bool or 0/1, 1 = real token.

        Returns:
            `(B, L, D)` hidden states, zero at pad positions. Position t depends only on
            tokens <= t.

        Raises:
            BiolmError: L is longer than `max_seq_len`.
        """
        length = input_ids.shape[1]
        if length > self.max_tokens:
            raise BiolmError(
                f"input of {length} tokens is longer than model.trunk.max_seq_len "
                f"({self.max_tokens}); truncate or window the sequences"
            )
        x = self.embed_dropout(self.embeddings(input_ids))  # (B, L, D)
        keep = attention_mask[..., None].to(x.dtype)  # (B, L, 1)
        use_checkpoint = self.config.gradient_checkpointing and self.training
        for layer in self.layers:
            if use_checkpoint:
                x = checkpoint(layer, x, keep, use_reentrant=False)
            else:
                x = layer(x, keep)
        return self.ln_f(x) * keep

    def lm_logits(self, hidden: Tensor) -> Tensor:
        """Next-token logits `(B, L, vocab_size)` from `(B, L, D)` hidden states."""
        return self.lm_head(hidden)

"""gMLP for SNP genotypes (Liu et al. 2021, "Pay Attention to MLPs"), as a genomic-prediction regressor.

`(batch, n_markers, channels)` encoded genotypes (channels 1 for additive dosage, 3 for one-hot
genotype classes) -> `(batch,)` predicted phenotype.

Markers, in map order, are grouped into windows of `markers_per_token` neighbours; each window is
one token, so the spatial gating unit mixes `n_tokens = ceil(n_markers / markers_per_token)` real
tokens with an `(n_tokens, n_tokens)` projection (the last window is zero-padded). Neighbouring
markers are in linkage, so a window is a haplotype-like unit and the gating learns which regions
interact.

    x (B, M, C) -> pad (B, T*P, C) -> (B, T, P*C) -> per-window Linear -> (B, T, D)
      -> depth x [x + Proj(SGU(GELU(Linear(LN(x)))))] -> mean over T -> LN -> (B, D) -> Linear -> (B,)
    SGU(z): z = [u, v] split on channels (F/2 each); v = W_spatial @ LN(v) + b; return u * v
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from biolm.errors import BiolmError


@dataclass
class GMLPConfig:
    """Shape of a `GMLPRegressor`.

    Attributes:
        n_markers: markers per line after filtering (set from the data).
        channels: values per marker (1 additive, 3 one-hot; set from the encoding).
        markers_per_token: neighbouring markers in one token (window).
        d_model: token width D.
        d_ffn: width F of the gated projection (split in two halves for the gating).
        depth: gMLP blocks.
        dropout: dropout on block outputs and on the pooled features.
        input_dropout: dropout on the marker values (a strong regulariser for n << p).
        token_embedding: ``per_token`` (each window has its own embedding weights, since window t
            holds other markers than window t+1) or ``shared`` (one ViT-style patch embedding plus a
            learned position embedding).
        linear_skip: add a linear function of all markers to the output (wide & deep): the gMLP then
            models what an additive (ridge-like) marker model leaves over.
    """

    n_markers: int = 0
    channels: int = 1
    markers_per_token: int = 32
    d_model: int = 64
    d_ffn: int = 128
    depth: int = 2
    dropout: float = 0.1
    input_dropout: float = 0.0
    token_embedding: str = "per_token"
    linear_skip: bool = False

    def __post_init__(self) -> None:
        if self.n_markers < 1 or self.channels < 1:
            raise BiolmError(f"model: gMLP needs n_markers >= 1 and channels >= 1 (got {self.n_markers}, {self.channels})")
        if self.markers_per_token < 1 or self.d_ffn < 2 or self.d_ffn % 2:
            raise BiolmError(
                f"model.markers_per_token={self.markers_per_token}, model.d_ffn={self.d_ffn}: "
                "accepted markers_per_token >= 1 and an even d_ffn >= 2"
            )
        if self.token_embedding not in ("per_token", "shared"):
            raise BiolmError(f"model.token_embedding: {self.token_embedding!r} (accepted: per_token, shared)")

    @property
    def n_tokens(self) -> int:
        """Tokens T the gating unit mixes."""
        return math.ceil(self.n_markers / self.markers_per_token)


@dataclass
class GenomicOutput:
    """Regressor output: `prediction` (B,), `hidden` (B, D) pooled features, `loss` (MSE) when targets are given."""

    prediction: Tensor
    hidden: Tensor
    loss: Tensor | None = None


class SpatialGatingUnit(nn.Module):
    """(B, T, F) -> (B, T, F/2): half the channels gate the other half after mixing across tokens."""

    def __init__(self, d_ffn: int, n_tokens: int):
        super().__init__()
        self.norm = nn.LayerNorm(d_ffn // 2)
        self.spatial = nn.Linear(n_tokens, n_tokens)
        # Near-identity start (W ~ 0, b = 1): each block begins as a plain token-wise MLP (paper, sec. 2.1).
        nn.init.uniform_(self.spatial.weight, -1e-3, 1e-3)
        nn.init.ones_(self.spatial.bias)

    def forward(self, z: Tensor) -> Tensor:
        u, v = z.chunk(2, dim=-1)  # (B, T, F/2) each
        v = self.spatial(self.norm(v).transpose(1, 2)).transpose(1, 2)  # mix along T
        return u * v


class GMLPBlock(nn.Module):
    """Pre-norm residual gMLP block: (B, T, D) -> (B, T, D)."""

    def __init__(self, cfg: GMLPConfig):
        super().__init__()
        self.norm = nn.LayerNorm(cfg.d_model)
        self.proj_in = nn.Linear(cfg.d_model, cfg.d_ffn)
        self.gate = SpatialGatingUnit(cfg.d_ffn, cfg.n_tokens)
        self.proj_out = nn.Linear(cfg.d_ffn // 2, cfg.d_model)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: Tensor) -> Tensor:
        z = nn.functional.gelu(self.proj_in(self.norm(x)))
        return x + self.dropout(self.proj_out(self.gate(z)))


class GMLPRegressor(nn.Module):
    """Windows of markers as tokens -> gMLP blocks -> mean pool -> one value per line."""

    def __init__(self, **kwargs):
        super().__init__()
        self.config = cfg = GMLPConfig(**kwargs)
        self.input_dropout = nn.Dropout(cfg.input_dropout)
        width = cfg.markers_per_token * cfg.channels
        if cfg.token_embedding == "per_token":
            self.embed_weight = nn.Parameter(torch.randn(cfg.n_tokens, width, cfg.d_model) / math.sqrt(width))
            self.embed_bias = nn.Parameter(torch.zeros(cfg.n_tokens, cfg.d_model))
        else:
            self.embed = nn.Linear(width, cfg.d_model)
            self.position = nn.Parameter(torch.zeros(cfg.n_tokens, cfg.d_model))
        self.blocks = nn.ModuleList(GMLPBlock(cfg) for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(cfg.d_model)
        self.dropout = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(cfg.d_model, 1)
        self.skip = nn.Linear(cfg.n_markers * cfg.channels, 1, bias=False) if cfg.linear_skip else None
        if self.skip is not None:
            nn.init.zeros_(self.skip.weight)

    def tokens(self, x: Tensor) -> Tensor:
        """(B, M, C) encoded markers -> (B, T, P*C) windows (last one zero-padded)."""
        cfg = self.config
        if x.shape[1:] != (cfg.n_markers, cfg.channels):
            raise BiolmError(f"genotypes: expected (lines, {cfg.n_markers}, {cfg.channels}) encoded markers, got {tuple(x.shape)}")
        pad = cfg.n_tokens * cfg.markers_per_token - cfg.n_markers
        x = nn.functional.pad(x, (0, 0, 0, pad))  # (B, T*P, C)
        return x.reshape(x.shape[0], cfg.n_tokens, cfg.markers_per_token * cfg.channels)

    def forward(self, x: Tensor, targets: Tensor | None = None) -> GenomicOutput:
        windows = self.tokens(self.input_dropout(x))  # (B, T, P*C)
        if self.config.token_embedding == "per_token":
            h = torch.einsum("btw,twd->btd", windows, self.embed_weight) + self.embed_bias  # (B, T, D)
        else:
            h = self.embed(windows) + self.position  # (B, T, D)
        for block in self.blocks:
            h = block(h)
        # Pool, then normalise: a per-token LayerNorm would give every window the same weight,
        # while most marker windows should contribute little.
        pooled = self.dropout(self.norm(h.mean(dim=1)))  # (B, D)
        prediction = self.head(pooled).squeeze(-1)  # (B,)
        if self.skip is not None:
            prediction = prediction + self.skip(x.flatten(1)).squeeze(-1)
        loss = None if targets is None else nn.functional.mse_loss(prediction, targets)
        return GenomicOutput(prediction, pooled, loss)

"""Dilated residual CNN trunk: a small, fast baseline for sequence-level tasks.

`(batch, length)` token ids + `(batch, length)` attention mask (1 = real token)
-> `(batch, length, hidden_size)` hidden states (zero at pad positions).

Each block is pre-norm: x = x + dropout(GELU(conv(mask * LN(x)))), with dilation
`dilation_growth ** i` in block i. Pad positions are zeroed before every convolution, so a pad
looks exactly like the convolution's own zero padding and appending pads never changes the
outputs at real positions.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor, nn

from biolm.errors import BiolmError
from biolm.models.config import config_from_kwargs


@dataclass
class CnnConfig:
    """Shape of a `CnnEncoder`.

    Attributes:
        hidden_size: channels D.
        num_layers: residual conv blocks.
        kernel_size: odd kernel width in tokens.
        dilation_growth: block i uses dilation `dilation_growth ** i` (1 keeps all at 1).
        dropout: dropout on embeddings and each block output.
    """

    hidden_size: int = 128
    num_layers: int = 3
    kernel_size: int = 9
    dilation_growth: int = 2
    dropout: float = 0.1

    def __post_init__(self) -> None:
        if self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise BiolmError(
                f"model.trunk.kernel_size: {self.kernel_size} is not allowed "
                "(accepted: an odd number >= 1, so outputs stay aligned with inputs)"
            )
        if self.dilation_growth < 1:
            raise BiolmError(
                f"model.trunk.dilation_growth: {self.dilation_growth} is not allowed "
                "(accepted: an integer >= 1)"
            )


class ConvBlock(nn.Module):
    """Pre-norm residual dilated conv: (B, L, D) -> (B, L, D)."""

    def __init__(self, hidden_size: int, kernel_size: int, dilation: int, dropout: float):
        super().__init__()
        self.norm = nn.LayerNorm(hidden_size)
        self.conv = nn.Conv1d(
            hidden_size,
            hidden_size,
            kernel_size,
            dilation=dilation,
            padding=dilation * (kernel_size - 1) // 2,
        )
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, keep: Tensor) -> Tensor:
        h = self.norm(x) * keep  # (B, L, D), pads zeroed after the norm (LN of 0 is not 0)
        h = self.conv(h.transpose(1, 2)).transpose(1, 2)  # (B, D, L) conv -> (B, L, D)
        return x + self.dropout(F.gelu(h))


class CnnEncoder(nn.Module):
    """Dilated residual CNN trunk: `(B, L)` ids + `(B, L)` mask -> `(B, L, D)`.

    Args:
        vocab_size: tokenizer vocabulary size.
        pad_token_id: id of the pad token.
        **kwargs: `CnnConfig` fields.
    """

    def __init__(self, vocab_size: int, pad_token_id: int = 0, **kwargs: object):
        super().__init__()
        self.config = config_from_kwargs(CnnConfig, kwargs, "CnnEncoder")
        c = self.config
        self.embedding = nn.Embedding(vocab_size, c.hidden_size, padding_idx=pad_token_id)
        self.dropout = nn.Dropout(c.dropout)
        self.blocks = nn.ModuleList(
            ConvBlock(c.hidden_size, c.kernel_size, c.dilation_growth**i, c.dropout)
            for i in range(c.num_layers)
        )
        self.final_norm = nn.LayerNorm(c.hidden_size)

    @property
    def hidden_size(self) -> int:
        """Width D of the returned hidden states."""
        return self.config.hidden_size

    @property
    def max_tokens(self) -> int | None:
        """No hard length limit."""
        return None

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        """Encode a batch.

        Args:
            input_ids: `(B, L)` token ids.
            attention_mask: `(B, L)` bool or 0/1, 1 = real token.

        Returns:
            `(B, L, D)` hidden states, zero at pad positions.
        """
        keep = attention_mask[..., None].to(self.embedding.weight.dtype)  # (B, L, 1)
        x = self.dropout(self.embedding(input_ids))
        for block in self.blocks:
            x = block(x, keep)
        return self.final_norm(x) * keep

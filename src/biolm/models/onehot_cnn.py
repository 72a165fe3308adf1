"""One-hot convolutional trunk: the plain CNN baseline of regulatory genomics (Basset/DeepSEA family, small width).

`(batch, length)` token ids + `(batch, length)` attention mask (1 = real token)
-> `(batch, length, channels)` hidden states (zero at pad positions).

The input is the one-hot code of the token ids (one channel per vocabulary entry, nothing learned
before the first convolution; with the character tokenizer: one channel per base and per special
token). Each block is ``Conv1d -> BatchNorm -> ReLU -> MaxPool -> Dropout`` (Kelley et al. 2016,
Basset, Genome Research 26:990; Zhou & Troyanskaya 2015, DeepSEA, Nature Methods 12:931), with
max pooling of stride ``pool_size`` that widens the receptive field of the next block. The last
block's features are repeated back to the input length (each position gets the features of the
pooled window it lies in), so sequence heads pool over real tokens as usual (``max`` is the
classic global max pooling) and per-token heads get one vector per token.

Pad positions are zeroed before every convolution and pooled windows of pads only stay zero, so
trailing pads look like the convolution's own zero padding. Batch-norm statistics are taken over
every position of the batch, pads included (BatchNorm1d cannot mask); with equal-length inputs, the
usual case for this baseline, there are none.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch.nn.functional as F
from torch import Tensor, nn

from biolm.errors import BiolmError
from biolm.models.config import config_from_kwargs


class OneHot(nn.Module):
    """`(B, L)` ids + `(B, L)` mask -> `(B, L, V)` float one-hot, zero at pad positions.

    A module (not a function) so that attribution methods can hook the input representation
    (`OneHotCnn.token_embedding`), as they hook an `nn.Embedding` in the other trunks.
    """

    def __init__(self, vocab_size: int):
        super().__init__()
        self.vocab_size = vocab_size

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        return F.one_hot(input_ids, self.vocab_size).float() * attention_mask[..., None].float()


@dataclass
class OneHotCnnConfig:
    """Shape of a `OneHotCnn`.

    Attributes:
        channels: filters per convolution (the hidden size D).
        kernel_sizes: one odd kernel width per block, in tokens.
        pool_size: max-pool window and stride after each block (1: no pooling).
        dropout: dropout after each block.
        batch_norm: batch normalisation after each convolution.
    """

    channels: int = 128
    kernel_sizes: list[int] = field(default_factory=lambda: [15, 11, 7])
    pool_size: int = 3
    dropout: float = 0.2
    batch_norm: bool = True

    def __post_init__(self) -> None:
        self.kernel_sizes = [int(k) for k in self.kernel_sizes]
        if not self.kernel_sizes or any(k < 1 or k % 2 == 0 for k in self.kernel_sizes):
            raise BiolmError(f"model.trunk.kernel_sizes: {self.kernel_sizes} (accepted: a non-empty list of odd widths >= 1)")
        if self.pool_size < 1 or self.channels < 1:
            raise BiolmError(f"model.trunk: pool_size {self.pool_size} and channels {self.channels} must be >= 1")


class ConvPoolBlock(nn.Module):
    """``(B, C_in, L) -> (B, C_out, ceil(L / pool))``: conv (same padding), batch norm, ReLU, max pool, dropout."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, pool_size: int, dropout: float, batch_norm: bool):
        super().__init__()
        self.conv = nn.Conv1d(in_channels, out_channels, kernel_size, padding=kernel_size // 2)
        self.norm = nn.BatchNorm1d(out_channels) if batch_norm else nn.Identity()
        self.pool_size = pool_size
        # modules rather than F.relu / F.max_pool1d, so that DeepLIFT (biolm interpret) finds its rules for them
        self.act = nn.ReLU()
        self.pool = nn.MaxPool1d(pool_size, ceil_mode=True)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, keep: Tensor) -> tuple[Tensor, Tensor]:
        h = self.act(self.norm(self.conv(x * keep))) * keep  # (B, C_out, L); pads zeroed before the convolution and the pooling
        if self.pool_size > 1:
            h = self.pool(h)
            keep = F.max_pool1d(keep, self.pool_size, ceil_mode=True)  # a window with any real token is real
        return self.dropout(h * keep), keep


class OneHotCnn(nn.Module):
    """One-hot CNN trunk: `(B, L)` ids + `(B, L)` mask -> `(B, L, channels)` (see the module docstring).

    Args:
        vocab_size: tokenizer vocabulary size (the one-hot width).
        pad_token_id: id of the pad token (its one-hot channel is never set: pads are zero).
        **kwargs: `OneHotCnnConfig` fields.
    """

    def __init__(self, vocab_size: int, pad_token_id: int = 0, **kwargs: object):
        super().__init__()
        self.config = config_from_kwargs(OneHotCnnConfig, kwargs, "OneHotCnn")
        c = self.config
        self.vocab_size = vocab_size
        self.pad_token_id = pad_token_id
        self.token_embedding = OneHot(vocab_size)  # the per-token input representation (no weights)
        widths = [vocab_size] + [c.channels] * len(c.kernel_sizes)
        self.blocks = nn.ModuleList(
            ConvPoolBlock(widths[i], widths[i + 1], k, c.pool_size, c.dropout, c.batch_norm) for i, k in enumerate(c.kernel_sizes)
        )

    @property
    def hidden_size(self) -> int:
        """Width D of the returned hidden states (``channels``)."""
        return self.config.channels

    @property
    def token_stride(self) -> int:
        """Tokens per output feature vector: ``pool_size ** blocks`` (27 by default; 1 without pooling)."""
        return self.config.pool_size ** len(self.blocks)

    @property
    def max_tokens(self) -> int | None:
        """No hard length limit."""
        return None

    def one_hot(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        """``(B, V, L)`` float one-hot of the ids, zero at pad positions (the first block's input)."""
        return self.token_embedding(input_ids, attention_mask).transpose(1, 2)  # (B, L, V) -> (B, V, L)

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        """Encode a batch.

        Args:
            input_ids: `(B, L)` token ids.
            attention_mask: `(B, L)` bool or 0/1, 1 = real token.

        Returns:
            `(B, L, D)` hidden states, zero at pad positions.
        """
        length = input_ids.shape[1]
        x = self.one_hot(input_ids, attention_mask)  # (B, V, L)
        keep = attention_mask[:, None, :].to(x.dtype)  # (B, 1, L)
        for block in self.blocks:
            x, keep = block(x, keep)
        stride = self.token_stride
        if stride > 1:  # each position takes the features of the pooled window it lies in
            x = x.repeat_interleave(stride, dim=-1)[..., :length]
        return x.transpose(1, 2) * attention_mask[..., None].to(x.dtype)  # (B, L, D)

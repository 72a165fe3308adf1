"""Bidirectional LSTM trunk: a recurrent baseline, `(B, L)` ids + mask -> `(B, L, D)` hidden states.

Embeddings, then ``num_layers`` bidirectional LSTM layers (torch `nn.LSTM`) over the real tokens
only (packed sequences, so padding never enters the recurrence); the two directions are
concatenated, so ``hidden_size`` must be even. Pad positions are zero.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from biolm.errors import BiolmError
from biolm.models.config import config_from_kwargs


@dataclass
class LstmConfig:
    """Shape of an `LstmEncoder`.

    Attributes:
        hidden_size: output width D (D / 2 per direction).
        num_layers: stacked bidirectional layers.
        dropout: dropout on embeddings and between layers.
    """

    hidden_size: int = 128
    num_layers: int = 1
    dropout: float = 0.1

    def __post_init__(self) -> None:
        if self.hidden_size < 2 or self.hidden_size % 2:
            raise BiolmError(f"model.trunk.hidden_size: {self.hidden_size} is not allowed (accepted: an even number >= 2, half per direction)")


class LstmEncoder(nn.Module):
    """Bidirectional LSTM trunk (see the module docstring).

    Args:
        vocab_size: tokenizer vocabulary size.
        pad_token_id: id of the pad token.
        **kwargs: `LstmConfig` fields.
    """

    def __init__(self, vocab_size: int, pad_token_id: int = 0, **kwargs: object):
        super().__init__()
        self.config = config_from_kwargs(LstmConfig, kwargs, "LstmEncoder")
        c = self.config
        self.embedding = nn.Embedding(vocab_size, c.hidden_size, padding_idx=pad_token_id)
        self.dropout = nn.Dropout(c.dropout)
        self.lstm = nn.LSTM(c.hidden_size, c.hidden_size // 2, c.num_layers, batch_first=True, bidirectional=True,
                            dropout=c.dropout if c.num_layers > 1 else 0.0)

    @property
    def hidden_size(self) -> int:
        return self.config.hidden_size

    @property
    def max_tokens(self) -> int | None:
        return None

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        lengths = attention_mask.bool().sum(dim=1).clamp(min=1).cpu()
        packed = pack_padded_sequence(self.dropout(self.embedding(input_ids)), lengths, batch_first=True, enforce_sorted=False)
        out, _ = self.lstm(packed)
        hidden, _ = pad_packed_sequence(out, batch_first=True, total_length=input_ids.shape[1])
        return hidden * attention_mask[..., None].to(hidden.dtype)


__all__ = ["LstmConfig", "LstmEncoder"]

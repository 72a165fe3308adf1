"""A per-token head on any trunk: `(B, L, D)` hidden states -> `(B, L, num_outputs)` logits.

`TokenModel` wires a trunk (any module with ``hidden_size``, ``max_tokens`` and
``forward(input_ids, attention_mask) -> (B, L, D)``) to `TokenHead` (dropout + linear, applied at
every position; the task masks specials and padding out of the loss) and returns `ModelOutput`.
"""

from __future__ import annotations

from torch import Tensor, nn

from biolm.models.heads import ModelOutput


class TokenHead(nn.Module):
    """Dropout then a linear map at every position.

    Args:
        hidden_size: trunk width D.
        num_outputs: classes per token.
        dropout: dropout before the projection.
    """

    def __init__(self, hidden_size: int, num_outputs: int, dropout: float = 0.1):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(hidden_size, num_outputs)

    def forward(self, hidden: Tensor) -> Tensor:
        """``(B, L, D)`` -> ``(B, L, num_outputs)``."""
        return self.out(self.dropout(hidden))


class TokenModel(nn.Module):
    """Trunk + `TokenHead`: ``(B, L)`` ids + mask -> `ModelOutput` with ``(B, L, C)`` logits.

    Args:
        trunk: the encoder.
        num_outputs: classes per token.
        dropout: head dropout.
    """

    def __init__(self, trunk: nn.Module, num_outputs: int, dropout: float = 0.1):
        super().__init__()
        self.trunk = trunk
        self.head = TokenHead(trunk.hidden_size, num_outputs, dropout)

    @property
    def max_tokens(self) -> int | None:
        """Longest input the trunk accepts in tokens (None: no hard limit)."""
        return self.trunk.max_tokens

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> ModelOutput:
        hidden = self.trunk(input_ids, attention_mask)
        return ModelOutput(logits=self.head(hidden), hidden=hidden)

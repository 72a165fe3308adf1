"""Plain fully connected regressor for SNP genotypes: the deep baseline next to the gMLP.

`(batch, n_markers, channels)` encoded genotypes -> flatten `(batch, n_markers * channels)`
-> [Linear, GELU, Dropout] per hidden layer -> `(batch,)` predicted phenotype.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from biolm.models.gmlp import GenomicOutput


@dataclass
class MLPConfig:
    """Shape of an `MLPRegressor` (the plain fully connected baseline).

    Attributes:
        n_markers: markers per line (set from the data).
        channels: values per marker (set from the encoding).
        hidden_sizes: widths of the hidden layers.
        dropout: dropout after every hidden layer.
        input_dropout: dropout on the marker values.
    """

    n_markers: int = 0
    channels: int = 1
    hidden_sizes: tuple[int, ...] = (256, 64)
    dropout: float = 0.3
    input_dropout: float = 0.0


class MLPRegressor(nn.Module):
    """(B, M, C) -> flatten (B, M*C) -> [Linear, GELU, Dropout] x len(hidden_sizes) -> Linear -> (B,)."""

    def __init__(self, **kwargs):
        super().__init__()
        self.config = cfg = MLPConfig(**kwargs)
        layers: list[nn.Module] = [nn.Flatten(), nn.Dropout(cfg.input_dropout)]
        width = cfg.n_markers * cfg.channels
        for size in cfg.hidden_sizes:
            layers += [nn.Linear(width, int(size)), nn.GELU(), nn.Dropout(cfg.dropout)]
            width = int(size)
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, 1)

    def forward(self, x: Tensor, targets: Tensor | None = None) -> GenomicOutput:
        hidden = self.body(x)  # (B, H)
        prediction = self.head(hidden).squeeze(-1)  # (B,)
        loss = None if targets is None else nn.functional.mse_loss(prediction, targets)
        return GenomicOutput(prediction, hidden, loss)

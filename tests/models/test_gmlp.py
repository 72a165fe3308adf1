"""gMLP and MLP regressors for SNP genotypes: shapes, true token count, spatial mixing."""

from __future__ import annotations

import math

import pytest
import torch

from biolm.errors import BiolmError
from biolm.models.gmlp import GMLPRegressor
from biolm.models.mlp import MLPRegressor


@pytest.mark.parametrize("embedding", ["per_token", "shared"])
def test_markers_become_window_tokens_and_the_gate_is_sized_to_them(embedding):
    model = GMLPRegressor(n_markers=100, channels=3, markers_per_token=16, d_model=8, d_ffn=12, depth=2, token_embedding=embedding)
    tokens = math.ceil(100 / 16)
    assert model.config.n_tokens == tokens == 7
    assert model.blocks[0].gate.spatial.weight.shape == (tokens, tokens)
    x = torch.randn(5, 100, 3)
    assert model.tokens(x).shape == (5, 7, 48)
    assert torch.equal(model.tokens(x)[:, -1, 4 * 3 :], torch.zeros(5, 48 - 12))  # last window zero-padded
    out = model(x, torch.zeros(5))
    assert out.prediction.shape == (5,) and out.hidden.shape == (5, 8)
    assert torch.isclose(out.loss, (out.prediction**2).mean())


def test_spatial_gating_mixes_tokens():
    torch.manual_seed(0)
    model = GMLPRegressor(n_markers=40, channels=1, markers_per_token=10, d_model=8, d_ffn=16, depth=1).eval()
    with torch.no_grad():
        model.blocks[0].gate.spatial.weight.normal_()
    x = torch.randn(1, 40, 1)
    y = x.clone()
    y[0, :10] += 1.0  # change token 0 only

    def token3(inp):
        h = torch.einsum("btw,twd->btd", model.tokens(inp), model.embed_weight) + model.embed_bias
        return model.blocks[0](h)[0, 3]

    assert not torch.allclose(token3(x), token3(y))  # token 3 sees token 0 through the gate
    with torch.no_grad():
        model.blocks[0].gate.spatial.weight.zero_()
    assert torch.allclose(token3(x), token3(y))  # without spatial weights, tokens stay independent


def test_wrong_input_shape_and_bad_config_are_errors():
    model = GMLPRegressor(n_markers=10, channels=1, markers_per_token=4, d_model=4, d_ffn=8, depth=1)
    with pytest.raises(BiolmError, match=r"expected \(lines, 10, 1\)"):
        model(torch.randn(2, 11, 1))
    with pytest.raises(BiolmError, match="even d_ffn"):
        GMLPRegressor(n_markers=10, channels=1, d_ffn=7)


def test_mlp_regressor_flattens_markers():
    model = MLPRegressor(n_markers=10, channels=3, hidden_sizes=[8, 4])
    assert model.body[2].in_features == 30
    assert model(torch.randn(6, 10, 3)).prediction.shape == (6,)

"""HyenaEncoder: FFT long convolution, causality, padding, HF parameter layout, config errors."""

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from torch import nn

from biolm.errors import BiolmError
from biolm.models import (
    HyenaEncoder,
    SequenceHead,
    build_sequence_model,
    fft_long_conv,
    hyena_state_dict_from_hf,
)
from biolm.models.heads import pool

CONFIG_DIR = Path(__file__).parents[2] / "configs/model"
VOCAB, PAD = 12, 4  # the HyenaDNA character vocabulary: 12 ids, [PAD] = 4
TINY = {"d_model": 32, "n_layer": 2, "max_seq_len": 64, "filter_order": 16, "embed_dropout": 0.0}


def tiny_model(seed: int = 0, **overrides) -> HyenaEncoder:
    torch.manual_seed(seed)
    return HyenaEncoder(VOCAB, pad_token_id=PAD, **{**TINY, **overrides}).eval()


def strengthen_filters(model: HyenaEncoder) -> None:
    """At init the implicit filters are ~1e-5: scale them up so long-range effects are visible."""
    with torch.no_grad():
        for layer in model.layers:
            for module in layer.mixer.filter_fn.implicit_filter:
                if isinstance(module, nn.Linear):
                    module.weight.normal_(std=0.5)


def direct_causal_conv(u, k):
    """`y[b, d, t] = sum_{s <= t} k[d, s] u[b, d, t - s]` as a depthwise conv1d."""
    length = u.shape[-1]
    return F.conv1d(F.pad(u, (length - 1, 0)), k.flip(-1)[:, None], groups=k.shape[0])


@pytest.mark.parametrize("length", [1, 37, 64])
def test_fft_long_conv_matches_direct_convolution(length):
    torch.manual_seed(length)
    u, k, bias = torch.randn(2, 5, length), torch.randn(5, length), torch.randn(5)
    expected = direct_causal_conv(u, k)
    torch.testing.assert_close(fft_long_conv(u, k), expected, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(
        fft_long_conv(u, k, bias), expected + bias[:, None] * u, atol=1e-4, rtol=1e-4
    )


def test_fft_long_conv_keeps_low_precision_dtype():
    u, k = torch.randn(1, 3, 16).bfloat16(), torch.randn(3, 16)
    y = fft_long_conv(u, k)
    assert y.dtype == torch.bfloat16
    torch.testing.assert_close(y.float(), direct_causal_conv(u.float(), k), atol=0.1, rtol=0.02)


def test_causal_changing_later_tokens_leaves_earlier_positions_unchanged():
    model = tiny_model()
    strengthen_filters(model)
    ids = torch.randint(5, VOCAB, (1, 40))
    mask = torch.ones(1, 40, dtype=torch.long)
    t = 20
    changed = ids.clone()
    changed[0, t + 1] = 5 if ids[0, t + 1] != 5 else 6
    changed[0, t + 2 :] = torch.randint(5, VOCAB, (40 - t - 2,))
    with torch.no_grad():
        before, after = model(ids, mask), model(changed, mask)
    torch.testing.assert_close(after[:, : t + 1], before[:, : t + 1], atol=1e-5, rtol=1e-5)
    # Only token t+1 differs: positions beyond both short filters' reach (2 layers x 2 tokens)
    # still change, so the long convolution carries information forward.
    one_token = ids.clone()
    one_token[0, t + 1] = changed[0, t + 1]
    with torch.no_grad():
        far = model(one_token, mask)
    assert (far[0, t + 10] - before[0, t + 10]).abs().max() > 1e-3


def test_appending_pads_leaves_real_positions_unchanged():
    model = tiny_model()
    strengthen_filters(model)
    ids = torch.randint(5, VOCAB, (2, 23))
    mask = torch.ones(2, 23, dtype=torch.long)
    mask[1, 15:] = 0
    ids = ids.masked_fill(mask == 0, PAD)
    longer_ids = torch.cat([ids, torch.full((2, 17), PAD)], dim=1)
    longer_mask = torch.cat([mask, torch.zeros(2, 17, dtype=torch.long)], dim=1)
    with torch.no_grad():
        short, long = model(ids, mask), model(longer_ids, longer_mask)
        alone = model(ids[1:, :15], mask[1:, :15])
    torch.testing.assert_close(long[:, :23], short, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(short[1:, :15], alone, atol=1e-5, rtol=1e-5)
    assert long[:, 23:].abs().sum() == 0 and short[1, 15:].abs().sum() == 0


def test_shapes_lm_logits_and_tied_head():
    model = tiny_model()
    ids = torch.randint(5, VOCAB, (3, 10))
    hidden = model(ids, torch.ones(3, 10))
    assert hidden.shape == (3, 10, 32) and model.hidden_size == 32 and model.max_tokens == 64
    assert model.lm_logits(hidden).shape == (3, 10, VOCAB)  # padding rows 12..15 dropped
    assert model.embeddings.word_embeddings.weight.shape == (16, 32)
    assert model.lm_head.weight is model.embeddings.word_embeddings.weight
    assert tiny_model(tie_word_embeddings=False).lm_head.weight.shape == (16, 32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.isfinite(model(ids, torch.ones(3, 10)).float()).all()


def test_last_pooling_picks_last_real_token():
    hidden = torch.arange(3 * 6, dtype=torch.float32).view(3, 6, 1)  # value = 6 * row + position
    mask = torch.tensor([[1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 1], [1, 0, 0, 0, 0, 0]])
    assert pool(hidden, mask, "last")[:, 0].tolist() == [2.0, 11.0, 12.0]
    _, pooled = SequenceHead(1, 2, pooling="last")(hidden, mask)
    assert pooled[:, 0].tolist() == [2.0, 11.0, 12.0]


def test_input_longer_than_max_seq_len_is_a_user_error():
    model = tiny_model()
    with pytest.raises(BiolmError, match=r"65 tokens.*model.trunk.max_seq_len \(64\)"):
        model(torch.full((1, 65), 5), torch.ones(1, 65))


@pytest.mark.parametrize(
    ("field", "value", "accepted"),
    [
        ("emb_dim", 4, "odd integer >= 3"),
        ("hyena_order", 1, ">= 2"),
        ("causal", False, "true"),
        ("hyena_dropout", 1.5, r"\[0, 1\)"),
        ("num_layers", 2, "n_layer"),  # BERT's key name: unknown here, list the accepted ones
    ],
)
def test_bad_config_names_the_field(field, value, accepted):
    with pytest.raises(BiolmError, match=f"model.trunk.{field}.*accepted.*{accepted}"):
        HyenaEncoder(VOCAB, **{field: value})


def expected_hf_names(n_layer: int) -> set[str]:
    """Prefix-free tensor names of HyenaDNAForCausalLM (data/tokenizers/SOURCES.md)."""
    names = {"embeddings.word_embeddings.weight", "ln_f.weight", "ln_f.bias", "lm_head.weight"}
    for i in range(n_layer):
        p = f"layers.{i}."
        for module in ("norm1", "norm2", "mlp.fc1", "mlp.fc2", "mixer.in_proj", "mixer.out_proj",
                       "mixer.short_filter"):
            names |= {p + f"{module}.weight", p + f"{module}.bias"}
        f = p + "mixer.filter_fn."
        names |= {f + "bias", f + "pos_emb.z", f + "pos_emb.t", f + "modulation.deltas"}
        names |= {f + f"implicit_filter.{j}.{w}" for j in (0, 2, 4) for w in ("weight", "bias")}
        names |= {f + f"implicit_filter.{j}.freq" for j in (1, 3, 5)}
        names.add(f + "implicit_filter.6.weight")
    return names


def test_state_dict_has_the_hf_names_and_shapes():
    model = tiny_model()
    sd = model.state_dict()
    assert set(sd) == expected_hf_names(2)
    f = "layers.0.mixer.filter_fn."
    assert sd["layers.0.mixer.in_proj.weight"].shape == (96, 32)
    assert sd["layers.0.mixer.short_filter.weight"].shape == (96, 1, 3)
    assert sd[f + "pos_emb.z"].shape == (1, 64, 5) and sd[f + "pos_emb.t"].shape == (1, 64, 1)
    assert sd[f + "bias"].shape == (32,) and sd[f + "implicit_filter.1.freq"].shape == (1, 16)
    assert sd[f + "implicit_filter.6.weight"].shape == (32, 16)
    assert sd["layers.0.mlp.fc1.weight"].shape == (128, 32)


def test_hf_layout_state_dict_loads_strictly():
    source = tiny_model(seed=1)
    sd = source.state_dict()
    hf = {("" if k == "lm_head.weight" else "hyena.backbone.") + k: v for k, v in sd.items()}
    target = tiny_model(seed=2)
    target.load_state_dict(hyena_state_dict_from_hf(hf), strict=True)
    ids = torch.randint(5, VOCAB, (2, 30))
    with torch.no_grad():
        torch.testing.assert_close(target(ids, torch.ones(2, 30)), source(ids, torch.ones(2, 30)))
    # HyenaDNAModel layout (`backbone.`, no LM head): the tied head is filled from the embedding.
    base = {"backbone." + k: v for k, v in sd.items() if k != "lm_head.weight"}
    tiny_model(seed=3).load_state_dict(hyena_state_dict_from_hf(base), strict=True)
    # A foreign name is kept as it is, for the strict load to report as unexpected.
    assert list(hyena_state_dict_from_hf({"encoder.layer.0.weight": torch.zeros(1)})) == ["encoder.layer.0.weight"]


def test_gradient_checkpointing_gives_the_same_gradients():
    ids = torch.randint(5, VOCAB, (2, 20))
    mask = torch.ones(2, 20)
    grads = []
    for flag in (False, True):
        model = tiny_model(gradient_checkpointing=flag).train()
        model(ids, mask).square().mean().backward()
        grads.append(model.layers[0].mixer.in_proj.weight.grad)
    torch.testing.assert_close(grads[0], grads[1])


@pytest.mark.parametrize("num_outputs", [1, 3])
def test_build_sequence_model_from_hyena_tiny(num_outputs):
    cfg = OmegaConf.load(CONFIG_DIR / "hyena_tiny.yaml")
    model = build_sequence_model(cfg, vocab_size=VOCAB, pad_token_id=PAD, num_outputs=num_outputs)
    ids = torch.randint(5, VOCAB, (2, 24))
    mask = torch.ones(2, 24, dtype=torch.long)
    mask[1, 10:] = 0
    out = model(ids.masked_fill(mask == 0, PAD), mask)
    assert out.logits.shape == (2, num_outputs) and out.hidden.shape == (2, 24, 128)
    out.logits.sum().backward()
    assert model.trunk.layers[0].mixer.filter_fn.implicit_filter[0].weight.grad is not None
    assert model.head.pooling == "last"

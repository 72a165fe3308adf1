"""hyena_hub: HyenaDNA `-hf` checkpoint folders -> HyenaEncoder (from_pretrained and the builder)."""

import math
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from biolm.errors import BiolmError
from biolm.models import HyenaEncoder, build_language_model, build_sequence_model
from biolm.models.hyena import ExponentialModulation
from biolm.models.hyena_hub import hyena_config_from_hf, hyena_state_dict_from_hf

CONFIG_DIR = Path(__file__).parents[2] / "configs/model"
D, N_LAYER, D_INNER, MAX_LEN, EMB, ORDER = 16, 2, 64, 34, 5, 8
# config.json of a HyenaDNA -hf checkpoint (HF port field names), tiny sizes.
HF_CONFIG = {
    "model_type": "hyenadna", "architectures": ["HyenaDNAForCausalLM"],
    "auto_map": {"AutoModelForCausalLM": "modeling_hyena.HyenaDNAForCausalLM"},
    "vocab_size": 12, "d_model": D, "n_layer": N_LAYER, "d_inner": D_INNER, "max_seq_len": MAX_LEN,
    "emb_dim": EMB, "filter_order": ORDER, "num_inner_mlps": 2, "short_filter_order": 3,
    "hyena_order": 2, "activation_freq": 10, "train_freq": True, "use_bias": True,
    "pad_vocab_size_multiple": 8, "tie_word_embeddings": True, "layer_norm_epsilon": 1e-5,
    "embed_dropout": 0.1, "hyena_dropout": 0.0, "hyena_filter_dropout": 0.0, "initializer_range": 0.02,
}


def hyenadna_state_dict(seed: int = 0, buffers: bool = True) -> dict[str, torch.Tensor]:
    """Random tensors under HyenaDNAForCausalLM's names and shapes (checkpoint-layouts.md §4.3).

    The shared Sin frequency is stored once (`implicit_filter.1.freq`), as in the -hf safetensors;
    `lm_head.weight` equals the (tied) embedding.
    """
    g = torch.Generator().manual_seed(seed)
    shapes = {
        "hyena.backbone.embeddings.word_embeddings.weight": (16, D),
        "hyena.backbone.ln_f.weight": (D,), "hyena.backbone.ln_f.bias": (D,),
    }
    for i in range(N_LAYER):
        p, f = f"hyena.backbone.layers.{i}.", f"hyena.backbone.layers.{i}.mixer.filter_fn."
        shapes |= {
            p + "norm1.weight": (D,), p + "norm1.bias": (D,), p + "norm2.weight": (D,), p + "norm2.bias": (D,),
            p + "mixer.in_proj.weight": (3 * D, D), p + "mixer.in_proj.bias": (3 * D,),
            p + "mixer.out_proj.weight": (D, D), p + "mixer.out_proj.bias": (D,),
            p + "mixer.short_filter.weight": (3 * D, 1, 3), p + "mixer.short_filter.bias": (3 * D,),
            f + "bias": (D,), f + "pos_emb.z": (1, MAX_LEN, EMB),
            f + "implicit_filter.0.weight": (ORDER, EMB), f + "implicit_filter.0.bias": (ORDER,),
            f + "implicit_filter.1.freq": (1, ORDER),
            f + "implicit_filter.2.weight": (ORDER, ORDER), f + "implicit_filter.2.bias": (ORDER,),
            f + "implicit_filter.4.weight": (ORDER, ORDER), f + "implicit_filter.4.bias": (ORDER,),
            f + "implicit_filter.6.weight": (D, ORDER),
            p + "mlp.fc1.weight": (D_INNER, D), p + "mlp.fc1.bias": (D_INNER,),
            p + "mlp.fc2.weight": (D, D_INNER), p + "mlp.fc2.bias": (D,),
        }
    sd = {name: 0.5 * torch.randn(shape, generator=g) for name, shape in shapes.items()}
    sd["lm_head.weight"] = sd["hyena.backbone.embeddings.word_embeddings.weight"].clone()
    if buffers:
        for i in range(N_LAYER):
            f = f"hyena.backbone.layers.{i}.mixer.filter_fn."
            sd[f + "pos_emb.t"] = torch.linspace(0, 1, MAX_LEN)[None, :, None]
            sd[f + "modulation.deltas"] = torch.linspace(math.log(1e-2) / 1.5, math.log(1e-2) / 0.3, D)[None, None]
    return sd


def batch(length: int = 20) -> tuple[torch.Tensor, torch.Tensor]:
    ids = torch.randint(7, 12, (2, length), generator=torch.Generator().manual_seed(2))
    mask = torch.ones(2, length, dtype=torch.long)
    mask[1, length // 2 :] = 0
    return ids.masked_fill(mask == 0, 4), mask


@pytest.mark.parametrize("weights", ["model.safetensors", "pytorch_model.bin"])
def test_from_pretrained_equals_the_converter_path(write_hf_folder, weights):
    sd = hyenadna_state_dict()
    encoder = HyenaEncoder.from_pretrained(write_hf_folder(HF_CONFIG, sd, weights=weights)).eval()
    assert encoder.config.max_seq_len == MAX_LEN and encoder.config.activation_freq == 10
    assert encoder.config.modulation_shift == 0.05  # the HF port's hard-coded shift
    direct = HyenaEncoder(**hyena_config_from_hf(HF_CONFIG)).eval()
    direct.load_state_dict(hyena_state_dict_from_hf(sd), strict=True)
    ids, mask = batch()
    with torch.no_grad():
        torch.testing.assert_close(encoder(ids, mask), direct(ids, mask))
    loaded = encoder.state_dict()
    for name, tensor in sd.items():
        torch.testing.assert_close(loaded[name.removeprefix("hyena.backbone.")], tensor)
    f = "layers.1.mixer.filter_fn.implicit_filter."
    assert encoder.get_parameter(f + "5.freq") is encoder.get_parameter(f + "1.freq")
    assert encoder.lm_head.weight is encoder.embeddings.word_embeddings.weight


def test_buffers_absent_from_the_file_are_computed(write_hf_folder):
    with_buffers = HyenaEncoder.from_pretrained(write_hf_folder(HF_CONFIG, hyenadna_state_dict(), name="a"))
    without = HyenaEncoder.from_pretrained(write_hf_folder(HF_CONFIG, hyenadna_state_dict(buffers=False), name="b"))
    for name, tensor in with_buffers.state_dict().items():
        torch.testing.assert_close(without.state_dict()[name], tensor)


def test_modulation_shift_adds_to_the_decay_window():
    t, h = torch.linspace(0, 1, 7)[None, :, None], torch.randn(1, 7, 4)
    module = ExponentialModulation(4, shift=0.05)
    torch.testing.assert_close(module(t, h), h * (torch.exp(-t * module.deltas.abs()) + 0.05))


def test_mismatch_lists_missing_and_unexpected_with_the_folder(write_hf_folder):
    sd = hyenadna_state_dict()
    del sd["hyena.backbone.ln_f.weight"]
    del sd["hyena.backbone.layers.0.mixer.filter_fn.implicit_filter.1.freq"]
    sd["hyena.backbone.layers.2.norm1.weight"] = torch.ones(D)
    sd["encoder.extra"] = torch.ones(1)
    folder = write_hf_folder(HF_CONFIG, sd)
    with pytest.raises(BiolmError) as err:
        HyenaEncoder.from_pretrained(folder)
    message = str(err.value)
    assert "\n" not in message and message.startswith(str(folder))
    assert "missing 4 (" in message and "layers.0.mixer.filter_fn.implicit_filter.1.freq" in message
    assert "ln_f.weight" in message
    assert "unexpected 2 (encoder.extra, layers.2.norm1.weight)" in message


def test_build_sequence_model_with_pretrained(write_hf_folder, caplog):
    sd = hyenadna_state_dict()
    cfg = OmegaConf.load(CONFIG_DIR / "hyenadna_tiny_1k.yaml")
    cfg.pretrained = str(write_hf_folder(HF_CONFIG, sd))
    cfg.trunk.embed_dropout = 0.0
    with caplog.at_level("WARNING"):
        model = build_sequence_model(cfg, vocab_size=12, pad_token_id=4, num_outputs=3).eval()
    assert "d_model=128 (checkpoint: 16)" in caplog.text and "max_seq_len=1026 (checkpoint: 34)" in caplog.text
    assert model.trunk.hidden_size == D and model.trunk.config.embed_dropout == 0.0
    direct = HyenaEncoder(**hyena_config_from_hf(HF_CONFIG)).eval()
    direct.load_state_dict(hyena_state_dict_from_hf(sd), strict=True)
    ids, mask = batch()
    with torch.no_grad():
        torch.testing.assert_close(model(ids, mask).hidden, direct(ids, mask))
        lm = build_language_model(cfg, vocab_size=12, pad_token_id=4).eval()
        torch.testing.assert_close(lm(ids, mask).logits, direct.lm_logits(direct(ids, mask)))
    with pytest.raises(BiolmError, match="tokenizer has 10 token ids, the checkpoint 12"):
        build_sequence_model(cfg, vocab_size=10, pad_token_id=0, num_outputs=3)
    cfg.trunk.d_modle = 8
    with pytest.raises(BiolmError, match="model.trunk.d_modle: unknown HyenaConfig option"):
        build_sequence_model(cfg, vocab_size=12, pad_token_id=4, num_outputs=3)


def test_full_size_parameter_counts():
    def count(name):  # built on the CPU: HyenaEncoder caches CPU grids that a meta-device build cannot mix with
        trunk = build_language_model(OmegaConf.load(CONFIG_DIR / f"{name}.yaml"), vocab_size=12, pad_token_id=4).trunk
        total = sum(p.numel() for p in trunk.parameters())
        return total, total - sum(p.numel() for k, p in trunk.named_parameters() if k.endswith("pos_emb.z"))

    # tiny-1k -hf (d 128, 2 blocks, d_inner 512, max_seq_len 1026): embedding 16 x 128 (tied LM head) + ln_f 256
    # + per block 2 x 256 (norms) + in_proj 49,536 + out_proj 16,512 + short filter 1,536 + filter bias 128
    # + z 1026 x 5 + implicit MLP 384 + 64 (one shared freq) + 2 x 4,160 + 8,192 + fc1 66,048 + fc2 65,664.
    assert count("hyenadna_tiny_1k") == (446_356, 436_096)
    # medium-160k: 12.9M with the -hf trainable position table z vs 6.6M without it (HazyResearch/hyena-dna
    # issue #39: the -hf port stores z as a parameter, 8 blocks x 160,002 x 5 entries).
    total, without_z = count("hyenadna_medium_160k")
    assert total == 12_950_608 and total - without_z == 8 * 160_002 * 5 and without_z == 6_550_528  # "12.9M" / "6.6M"

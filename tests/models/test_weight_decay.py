"""parameter_groups: decay by dimension, embeddings and the model's own no_weight_decay()."""

from pathlib import Path

import torch
from omegaconf import OmegaConf

from biolm.models import build_language_model, build_sequence_model, parameter_groups
from biolm.models.adapters import apply_adapter

CONFIG_DIR = Path(__file__).parents[2] / "configs/model"
LAYERS = (0, 1)


def tiny(name: str):
    cfg = OmegaConf.load(CONFIG_DIR / f"{name}.yaml")
    return build_sequence_model(cfg, vocab_size=12, pad_token_id=0, num_outputs=2)


def names_by_decay(groups) -> tuple[set[str], set[str]]:
    decayed = {n for g in groups if g["weight_decay"] > 0 for n in g["param_names"]}
    exempt = {n for g in groups if g["weight_decay"] == 0 for n in g["param_names"]}
    return decayed, exempt


def test_hyena_tiny_exempts_filter_mlp_and_positional_features():
    model = tiny("hyena_tiny")
    groups = parameter_groups(model, 0.01)
    decayed, exempt = names_by_decay(groups)
    assert decayed == {
        f"trunk.layers.{i}.{name}.weight"
        for i in LAYERS
        for name in ("mixer.in_proj", "mixer.out_proj", "mixer.short_filter", "mlp.fc1", "mlp.fc2")
    } | {"head.out.weight"}
    f = "trunk.layers.{i}.mixer.filter_fn."
    per_layer = (
        [f + "bias", f + "pos_emb.z", f + "implicit_filter.1.freq", f + "implicit_filter.6.weight"]
        + [f + f"implicit_filter.{j}.{w}" for j in (0, 2, 4) for w in ("weight", "bias")]
        + ["trunk.layers.{i}." + f"{m}.bias" for m in ("mixer.in_proj", "mixer.out_proj", "mixer.short_filter", "mlp.fc1", "mlp.fc2")]
        + ["trunk.layers.{i}." + f"{m}.{w}" for m in ("norm1", "norm2") for w in ("weight", "bias")]
    )
    assert exempt == {name.format(i=i) for i in LAYERS for name in per_layer} | {
        "trunk.embeddings.word_embeddings.weight",  # also the tied lm_head, listed once
        "trunk.ln_f.weight", "trunk.ln_f.bias", "head.out.bias",
    }
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    assert all(g["weight_decay"] in (0.0, 0.01) and "lr" not in g for g in groups)


def test_bert_tiny_decays_matrices_only():
    decayed, exempt = names_by_decay(parameter_groups(tiny("bert_tiny"), 0.1))
    assert decayed == {
        f"trunk.layers.{i}.{name}.weight" for i in LAYERS for name in ("attention.qkv", "attention.out", "mlp.fc_in", "mlp.fc_out")
    } | {"head.out.weight"}
    assert exempt == {
        f"trunk.layers.{i}.{name}.bias" for i in LAYERS for name in ("attention.qkv", "attention.out", "mlp.fc_in", "mlp.fc_out")
    } | {
        f"trunk.layers.{i}.{norm}.{w}" for i in LAYERS for norm in ("attention_norm", "mlp_norm") for w in ("weight", "bias")
    } | {
        f"trunk.embeddings.{table}.weight" for table in ("word_embeddings", "position_embeddings", "token_type_embeddings")
    } | {"trunk.embeddings.layer_norm.weight", "trunk.embeddings.layer_norm.bias", "head.out.bias"}


def test_head_learning_rate_group():
    groups = parameter_groups(tiny("bert_tiny"), 0.1, lr_by_module={"head": 1e-2})
    head = {n: (g["weight_decay"], g["lr"]) for g in groups if "lr" in g for n in g["param_names"]}
    assert head == {"head.out.weight": (0.1, 1e-2), "head.out.bias": (0.0, 1e-2)}
    optimizer = torch.optim.AdamW(groups, lr=1e-4)
    assert sorted({g["lr"] for g in optimizer.param_groups}) == [1e-4, 1e-2]


def test_language_model_tied_decoder_is_an_embedding():
    cfg = OmegaConf.load(CONFIG_DIR / "bert_tiny.yaml")
    decayed, exempt = names_by_decay(parameter_groups(build_language_model(cfg, vocab_size=12, pad_token_id=0), 0.1))
    assert "head.transform.weight" in decayed and "head.decoder.bias" in exempt
    assert not any(name.startswith("head.decoder.weight") for name in decayed | exempt)  # tied: listed as the embedding


def test_lora_wrapped_hyena_keeps_the_model_exemptions():
    model = apply_adapter(tiny("hyena_tiny"), {"name": "lora", "r": 2, "alpha": 4, "dropout": 0.0, "target_modules": ["in_proj", "implicit_filter.2"]})
    groups = parameter_groups(model, 0.01, lr_by_module={"head": 1e-3})
    decayed, exempt = names_by_decay(groups)
    lora = {
        f"trunk.layers.{i}.mixer.{m}.lora_{ab}.default.weight"
        for i in LAYERS for m in ("in_proj", "filter_fn.implicit_filter.2") for ab in "AB"
    }
    head = {"head.out.modules_to_save.default.weight", "head.out.modules_to_save.default.bias"}
    assert decayed | exempt == lora | head  # frozen base weights are left out
    assert decayed == {n for n in lora if "in_proj" in n} | {"head.out.modules_to_save.default.weight"}
    head_lr = {n for g in groups if g.get("lr") == 1e-3 for n in g["param_names"]}
    assert head_lr == head

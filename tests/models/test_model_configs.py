"""Contract: every configs/model/*.yaml builds, runs forward and backward (no test edits per model)."""

from pathlib import Path

import pytest
import torch
from hydra.utils import get_class
from omegaconf import OmegaConf

from biolm.errors import BiolmError
from biolm.models import ModelOutput, build_sequence_model, trunk_config

CONFIG_DIR = Path(__file__).parents[2] / "configs/model"
CONFIGS = sorted(CONFIG_DIR.glob("*.yaml"))
CNN = "biolm.models.cnn.CnnEncoder"


def is_base_size(cfg) -> bool:
    trunk = cfg.trunk
    return trunk.get("hidden_size", 0) >= 512 or trunk.get("max_seq_len", 0) >= 100_000


def test_configs_exist():
    assert {p.stem for p in CONFIGS} >= {"bert_tiny", "cnn", "dnabert_base", "dnabert2_base"}


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_model_config_contract(path):
    cfg = OmegaConf.load(path)
    assert set(cfg) - {"pretrained", "recommended"} == {"trunk", "head"} and cfg.get("pretrained") is None
    has_importer = hasattr(get_class(cfg.trunk._target_), "from_pretrained")
    assert ("pretrained" in cfg) == has_importer  # every family with an importer exposes the key
    big = is_base_size(cfg)
    vocab = 4101 if big else 16
    if big:  # keep the width, heads and block kind; one block is enough for the contract
        cfg.trunk["n_layer" if "n_layer" in cfg.trunk else "num_layers"] = 1
    torch.manual_seed(0)
    model = build_sequence_model(cfg, vocab_size=vocab, pad_token_id=0, num_outputs=3)
    length = 16 if big else 20
    ids = torch.randint(1, vocab, (2, length))
    mask = torch.ones(2, length, dtype=torch.long)
    mask[1, length // 2 :] = 0
    ids = ids.masked_fill(mask == 0, 0)
    out = model(ids, mask)
    d = model.trunk.hidden_size
    assert out.logits.shape == (2, 3) and out.pooled.shape == (2, d)
    assert out.hidden.shape == (2, length, d)
    assert torch.isfinite(out.logits).all()
    loss = torch.nn.functional.cross_entropy(out.logits, torch.tensor([0, 2]))
    loss.backward()
    assert model.head.out.weight.grad is not None
    # the first thing the input meets (an embedding; a convolution for one-hot input) got a gradient, so the whole trunk is connected
    first = next(m for m in model.trunk.modules() if isinstance(m, torch.nn.Embedding | torch.nn.Conv1d))
    assert first.weight.grad is not None and first.weight.grad.abs().sum() > 0


def test_dnabert2_base_parameter_count():
    cfg = OmegaConf.load(CONFIG_DIR / "dnabert2_base.yaml")
    with torch.device("meta"):  # shapes only: no memory, no init
        model = build_sequence_model(cfg, vocab_size=4096, pad_token_id=3, num_outputs=2)
    trunk_params = sum(p.numel() for p in model.trunk.parameters())
    # 116,477,952 without DNABERT-2's pooler; +590,592 with it = 117,068,544, the "117M" of its name.
    assert trunk_params == 116_477_952
    assert 110e6 < trunk_params < 120e6


def test_builder_accepts_plain_dict_and_names_bad_values():
    cfg = {"trunk": {"_target_": "biolm.models.bert.BertEncoder", "position_embedding": "rotary"},
           "head": {"pooling": "cls"}}
    with pytest.raises(BiolmError, match="model.trunk.position_embedding.*learned, alibi"):
        build_sequence_model(cfg, vocab_size=16, pad_token_id=0, num_outputs=2)
    cfg["trunk"]["position_embedding"] = "alibi"
    model = build_sequence_model(cfg, vocab_size=16, pad_token_id=0, num_outputs=2)
    assert model.max_tokens is None


@pytest.mark.parametrize(
    ("cfg", "field"),
    [
        ({"trunk": {"_target_": "biolm.models.bert.BertEncoder"}}, "model.head"),
        ({"trunk": {"_target_": "biolm.models.nope.Nope"}, "head": {}}, "model.trunk"),
        ({"trunk": {"hidden_size": 8}, "head": {}}, "model.trunk._target_"),
        ({"trunk": {"_target_": CNN}, "head": {"pooling": "sum"}}, "model.head.pooling"),
        ({"trunk": {"_target_": CNN}, "head": {"polling": "cls"}}, "model.head"),
    ],
)
def test_builder_errors_name_the_key(cfg, field):
    with pytest.raises(BiolmError, match=field):
        build_sequence_model(cfg, vocab_size=16, pad_token_id=0, num_outputs=2)


@pytest.mark.parametrize("name", ["bert_tiny", "hyena_tiny"])
def test_language_model_scores_selected_positions_like_the_full_output(name):
    from biolm.models import build_language_model

    torch.manual_seed(0)
    model = build_language_model(OmegaConf.load(CONFIG_DIR / f"{name}.yaml"), vocab_size=12, pad_token_id=0).eval()
    ids = torch.randint(5, 12, (2, 20))
    mask = torch.ones_like(ids, dtype=torch.bool)
    picked = torch.rand(2, 20) < 0.3
    out = model(ids, mask)
    assert isinstance(out, ModelOutput) and out.pooled is None and out.hidden.shape[:2] == (2, 20)
    full = out.logits  # (2, 20, 12)
    assert full.shape == (2, 20, 12)
    torch.testing.assert_close(model(ids, mask, picked).logits, full[picked], rtol=1e-5, atol=1e-5)


def test_pretrained_on_a_trunk_without_importer_is_a_user_error(tmp_path):
    cfg = OmegaConf.load(CONFIG_DIR / "cnn_dilated.yaml")
    cfg.pretrained = str(tmp_path)
    with pytest.raises(BiolmError, match="model.pretrained: CnnEncoder has no checkpoint importer"):
        build_sequence_model(cfg, vocab_size=16, pad_token_id=0, num_outputs=2)


@pytest.mark.parametrize("name", ["bert_tiny_alibi", "hyena_tiny", "cnn"])
def test_trunk_config_rebuilds_the_architecture(name):
    cfg = OmegaConf.load(CONFIG_DIR / f"{name}.yaml")
    model = build_sequence_model(cfg, vocab_size=16, pad_token_id=0, num_outputs=2)
    rebuilt = build_sequence_model(
        {"trunk": trunk_config(model.trunk), "head": cfg.head}, vocab_size=16, pad_token_id=0, num_outputs=2
    )
    shapes = {name: p.shape for name, p in model.state_dict().items()}
    assert {name: p.shape for name, p in rebuilt.state_dict().items()} == shapes
    assert rebuilt.trunk.config == model.trunk.config

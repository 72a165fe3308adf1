"""model.pretrained reads the family from the checkpoint's config.json: a folder is loaded by its own
family whatever model= says (the default model config included)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from biolm.errors import BiolmError
from biolm.models import EsmEncoder, HyenaEncoder, build_sequence_model
from biolm.models.hub import detect_family
from tests.models.test_esm import NT_V1_STYLE, PAD, tiny_hf_esm
from tests.models.test_hyena_hub import HF_CONFIG, hyenadna_state_dict

BERT_TINY = OmegaConf.load(Path(__file__).parents[2] / "configs/model/bert_tiny.yaml")


@pytest.mark.parametrize(
    ("config", "family"),
    [
        ({"model_type": "esm", "token_dropout": True}, "EsmEncoder"),
        ({"auto_map": {"AutoModelForMaskedLM": "modeling_esm.EsmForMaskedLM"}, "num_attention_heads": 4}, "EsmEncoder"),  # NT v2: no model_type
        ({"architectures": ["BertForMaskedLM"], "auto_map": {"AutoModel": "bert_layers.BertModel"}}, "BertEncoder"),  # DNABERT-2
        ({"model_type": "bert", "type_vocab_size": 2}, "BertEncoder"),
        ({"model_type": "hyenadna"}, "HyenaEncoder"),
        ({"d_model": 128, "n_layer": 2, "max_seq_len": 1026}, "HyenaEncoder"),
        ({"something": 1}, None),
    ],
)
def test_family_from_config_json(tmp_path, config, family):
    (tmp_path / "config.json").write_text(json.dumps(config))
    found = detect_family(tmp_path)
    assert (found.rsplit(".", 1)[-1] if found else None) == family


def test_default_model_config_loads_an_esm_folder_as_esm(tmp_path):
    tiny_hf_esm(NT_V1_STYLE).save_pretrained(tmp_path)
    cfg = BERT_TINY.copy()
    cfg.pretrained = str(tmp_path)
    model = build_sequence_model(cfg, vocab_size=30, pad_token_id=PAD, num_outputs=2)
    assert isinstance(model.trunk, EsmEncoder) and model.trunk.hidden_size == 32


def test_default_model_config_loads_a_hyenadna_folder_as_hyena(write_hf_folder, caplog):
    folder = write_hf_folder(HF_CONFIG, hyenadna_state_dict())
    cfg = BERT_TINY.copy()
    cfg.pretrained = str(folder)
    model = build_sequence_model(cfg, vocab_size=12, pad_token_id=4, num_outputs=2)  # bert_tiny pools cls
    assert isinstance(model.trunk, HyenaEncoder)
    assert model.head.pooling == "last" and cfg.head.pooling == "last"  # recorded for the run's config
    assert "is causal, so model.head.pooling=cls becomes last" in caplog.text
    cfg.pretrained = None
    with pytest.raises(BiolmError, match="HyenaEncoder is causal.*model.head.pooling=last"):
        build_sequence_model({"trunk": {"_target_": "biolm.models.hyena.HyenaEncoder", "d_model": 8, "n_layer": 1},
                              "head": {"pooling": "cls"}}, vocab_size=12, pad_token_id=4, num_outputs=2)

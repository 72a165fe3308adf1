"""bert_hub: Hugging Face BERT and DNABERT-2 (MosaicBERT) checkpoint layouts -> BertEncoder."""

from pathlib import Path

import pytest
import torch
import transformers
from omegaconf import OmegaConf

from biolm.errors import BiolmError
from biolm.models import BertEncoder, build_language_model, build_sequence_model
from biolm.models.bert_hub import (
    bert_config_from_hf,
    bert_encoder_from_hf,
    convert_hf_bert_state_dict,
)

CONFIG_DIR = Path(__file__).parents[2] / "configs/model"
MOSAIC_CONFIG = {
    "vocab_size": 40, "hidden_size": 24, "num_hidden_layers": 2, "num_attention_heads": 3,
    "intermediate_size": 48, "alibi_starting_size": 512, "hidden_act": "gelu",
    "attention_probs_dropout_prob": 0.0, "pad_token_id": 3,
}


def mosaic_state_dict(vocab: int, d: int, inner: int, layers: int, labels: int) -> dict:
    """Random tensors under the DNABERT-2 BertForSequenceClassification names (SOURCES.md)."""
    g = torch.Generator().manual_seed(0)
    shapes = {
        "bert.embeddings.word_embeddings.weight": (vocab, d),
        "bert.embeddings.token_type_embeddings.weight": (2, d),
        "bert.embeddings.LayerNorm.weight": (d,),
        "bert.embeddings.LayerNorm.bias": (d,),
        "bert.pooler.dense.weight": (d, d),
        "bert.pooler.dense.bias": (d,),
        "classifier.weight": (labels, d),
        "classifier.bias": (labels,),
    }
    for i in range(layers):
        p = f"bert.encoder.layer.{i}."
        shapes |= {
            p + "attention.self.Wqkv.weight": (3 * d, d),
            p + "attention.self.Wqkv.bias": (3 * d,),
            p + "attention.output.dense.weight": (d, d),
            p + "attention.output.dense.bias": (d,),
            p + "attention.output.LayerNorm.weight": (d,),
            p + "attention.output.LayerNorm.bias": (d,),
            p + "mlp.gated_layers.weight": (2 * inner, d),
            p + "mlp.wo.weight": (d, inner),
            p + "mlp.wo.bias": (d,),
            p + "mlp.layernorm.weight": (d,),
            p + "mlp.layernorm.bias": (d,),
        }
    return {name: torch.randn(shape, generator=g) for name, shape in shapes.items()}


def test_dnabert2_layout_loads_strict():
    sd = mosaic_state_dict(40, 24, 48, 2, labels=2)
    encoder = bert_encoder_from_hf(MOSAIC_CONFIG, sd)
    assert encoder.config.position_embedding == "alibi" and encoder.config.mlp == "geglu"
    ours = encoder.state_dict()
    pairs = {
        "layers.1.mlp.gated.weight": "encoder.layer.1.mlp.gated_layers.weight",
        "layers.0.attention.qkv.bias": "encoder.layer.0.attention.self.Wqkv.bias",
        "layers.0.mlp.fc_out.weight": "encoder.layer.0.mlp.wo.weight",
        "layers.0.mlp_norm.weight": "encoder.layer.0.mlp.layernorm.weight",
    }
    for our_name, hf_name in pairs.items():
        torch.testing.assert_close(ours[our_name], sd["bert." + hf_name])


def test_tf_style_layer_norm_names():
    converted = convert_hf_bert_state_dict({"bert.embeddings.LayerNorm.gamma": torch.ones(4)})
    assert list(converted) == ["embeddings.layer_norm.weight"]


def test_split_qkv_fused_in_order():
    hf_config = transformers.BertConfig(
        vocab_size=20, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32
    )
    hf = transformers.BertForSequenceClassification(hf_config)  # bert.* + pooler + classifier
    converted = convert_hf_bert_state_dict(hf.state_dict())
    qkv = converted["layers.0.attention.qkv.weight"]
    attn = hf.bert.encoder.layer[0].attention.self
    torch.testing.assert_close(qkv[:16], attn.query.weight)
    torch.testing.assert_close(qkv[16:32], attn.key.weight)
    torch.testing.assert_close(qkv[32:], attn.value.weight)
    BertEncoder(**bert_config_from_hf(hf_config)).load_state_dict(converted, strict=True)


def test_unknown_tensor_is_reported_as_unexpected():
    sd = mosaic_state_dict(40, 24, 48, 2, labels=2)
    sd["bert.encoder.layer.0.attention.rotary.weight"] = torch.zeros(1)
    with pytest.raises(BiolmError, match=r"unexpected 1 \(encoder.layer.0.attention.rotary.weight\)"):
        bert_encoder_from_hf(MOSAIC_CONFIG, sd)


def test_unsupported_activation():
    with pytest.raises(BiolmError, match="hidden_act"):
        bert_config_from_hf({**MOSAIC_CONFIG, "hidden_act": "relu"})
    with pytest.raises(BiolmError, match="missing hidden_size"):
        bert_config_from_hf({key: v for key, v in MOSAIC_CONFIG.items() if key != "hidden_size"})


def tiny_hf_bert() -> transformers.BertForMaskedLM:
    """A standard HF BERT (DNABERT-1 layout: separate query/key/value, MLM head, tied decoder)."""
    config = transformers.BertConfig(
        vocab_size=30, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=64, max_position_embeddings=64, pad_token_id=0, attn_implementation="eager",
    )
    torch.manual_seed(0)
    return transformers.BertForMaskedLM(config).eval()


def padded(vocab: int, lengths: list[int], total: int, pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    ids = torch.randint(5, vocab, (len(lengths), total), generator=torch.Generator().manual_seed(1))
    mask = (torch.arange(total)[None, :] < torch.tensor(lengths)[:, None]).long()
    return ids.masked_fill(mask == 0, pad), mask


def test_from_pretrained_hf_bert_folder_matches_transformers(tmp_path):
    hf = tiny_hf_bert()
    hf.save_pretrained(tmp_path)  # config.json + model.safetensors, exactly as the Hub has them
    assert (tmp_path / "model.safetensors").is_file()
    encoder = BertEncoder.from_pretrained(tmp_path).eval()
    assert encoder.config.position_embedding == "learned" and encoder.config.num_layers == 2
    reference = transformers.BertModel.from_pretrained(tmp_path, add_pooling_layer=False, attn_implementation="eager").eval()
    ids, mask = padded(30, [12, 5], 12, pad=0)
    with torch.no_grad():
        expected = reference(input_ids=ids, attention_mask=mask).last_hidden_state
        got = encoder(ids, mask)
    real = mask.bool()
    torch.testing.assert_close(got[real], expected[real], atol=1e-5, rtol=1e-5)


def test_from_pretrained_reads_pytorch_model_bin(write_hf_folder):
    hf = tiny_hf_bert()
    folder = write_hf_folder(hf.config.to_dict(), hf.state_dict(), weights="pytorch_model.bin")
    encoder = BertEncoder.from_pretrained(folder)
    expected = convert_hf_bert_state_dict(hf.state_dict())
    for name, tensor in encoder.state_dict().items():
        torch.testing.assert_close(tensor, expected[name])


def test_from_pretrained_dnabert2_layout_equals_converter_path(write_hf_folder):
    sd = mosaic_state_dict(40, 24, 48, 2, labels=2)
    # DNABERT-2 ships pytorch_model.bin; its remote-code config fields must be ignored.
    config = {**MOSAIC_CONFIG, "auto_map": {"AutoModel": "bert_layers.BertModel"}, "architectures": ["BertForMaskedLM"]}
    folder = write_hf_folder(config, sd, weights="pytorch_model.bin")
    loaded = BertEncoder.from_pretrained(folder, hidden_dropout=0.0).eval()
    direct = bert_encoder_from_hf(MOSAIC_CONFIG, sd, hidden_dropout=0.0).eval()
    assert loaded.config.mlp == "geglu" and loaded.config.position_embedding == "alibi"
    assert loaded.config.hidden_dropout == 0.0  # run-time options still apply
    ids, mask = padded(40, [9, 4], 9, pad=3)
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids, mask), direct(ids, mask))


def test_mosaic_tensors_without_alibi_config_key_read_as_dnabert2(write_hf_folder):
    config = {key: v for key, v in MOSAIC_CONFIG.items() if key != "alibi_starting_size"}
    folder = write_hf_folder(config, mosaic_state_dict(40, 24, 48, 2, labels=2))
    assert BertEncoder.from_pretrained(folder).config.mlp == "geglu"


def test_mismatch_lists_missing_and_unexpected_with_the_folder(write_hf_folder):
    sd = mosaic_state_dict(40, 24, 48, 2, labels=2)
    del sd["bert.encoder.layer.1.mlp.wo.weight"]
    sd["bert.encoder.layer.2.mlp.wo.weight"] = torch.zeros(24, 48)  # a third layer the config lacks
    sd["bert.embeddings.LayerNorm.bias"] = torch.zeros(25)
    folder = write_hf_folder(MOSAIC_CONFIG, sd)
    with pytest.raises(BiolmError) as err:
        BertEncoder.from_pretrained(folder)
    message = str(err.value)
    assert "\n" not in message and message.startswith(str(folder))
    assert "missing 1 (layers.1.mlp.fc_out.weight)" in message
    assert "unexpected 1 (layers.2.mlp.fc_out.weight)" in message
    assert "wrong shape 1 (embeddings.layer_norm.bias (25,) vs model (24,))" in message


def test_unreadable_folders_are_user_errors(tmp_path, write_hf_folder):
    with pytest.raises(BiolmError, match="no such folder"):
        BertEncoder.from_pretrained(tmp_path / "nope")
    with pytest.raises(BiolmError, match="no config.json"):
        BertEncoder.from_pretrained(tmp_path)
    folder = write_hf_folder(MOSAIC_CONFIG, {})
    (folder / "model.safetensors").unlink()
    with pytest.raises(BiolmError, match="no weight file.*model.safetensors, pytorch_model.bin"):
        BertEncoder.from_pretrained(folder)
    (folder / "pytorch_model.bin").write_bytes(b"not a checkpoint")
    with pytest.raises(BiolmError, match="pytorch_model.bin: not a readable checkpoint"):
        BertEncoder.from_pretrained(folder)


def test_build_sequence_model_with_pretrained(write_hf_folder, caplog):
    sd = mosaic_state_dict(40, 24, 48, 2, labels=2)
    folder = write_hf_folder(MOSAIC_CONFIG, sd)
    cfg = OmegaConf.load(CONFIG_DIR / "bert_tiny_alibi.yaml")
    cfg.pretrained = str(folder)
    cfg.trunk.hidden_dropout = 0.0
    with caplog.at_level("WARNING"):
        model = build_sequence_model(cfg, vocab_size=40, pad_token_id=3, num_outputs=2).eval()
    assert "ignored model.trunk hidden_size=128 (checkpoint: 24)" in caplog.text
    assert model.trunk.hidden_size == 24 and model.head.out.in_features == 24
    assert model.trunk.config.hidden_dropout == 0.0
    direct = bert_encoder_from_hf(MOSAIC_CONFIG, sd)
    for name, tensor in direct.state_dict().items():
        torch.testing.assert_close(model.trunk.state_dict()[name], tensor)
    ids, mask = padded(40, [9, 4], 9, pad=3)
    with torch.no_grad():
        torch.testing.assert_close(model(ids, mask).hidden, direct.eval()(ids, mask))
    lm = build_language_model(cfg, vocab_size=40, pad_token_id=3)
    torch.testing.assert_close(lm.trunk.embeddings.word_embeddings.weight, direct.embeddings.word_embeddings.weight)
    with pytest.raises(BiolmError, match="tokenizer has 41 token ids, the checkpoint 40"):
        build_sequence_model(cfg, vocab_size=41, pad_token_id=3, num_outputs=2)

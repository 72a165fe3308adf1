"""bert_hub: Hugging Face BERT and DNABERT-2 (MosaicBERT) checkpoint layouts -> BertEncoder."""

import pytest
import torch
import transformers

from biolm.errors import BiolmError
from biolm.models import BertEncoder
from biolm.models.bert_hub import (
    bert_config_from_hf,
    bert_encoder_from_hf,
    convert_hf_bert_state_dict,
)


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
    config = {
        "vocab_size": 40, "hidden_size": 24, "num_hidden_layers": 2, "num_attention_heads": 3,
        "intermediate_size": 48, "alibi_starting_size": 512, "hidden_act": "gelu",
        "attention_probs_dropout_prob": 0.0, "pad_token_id": 3,
    }
    sd = mosaic_state_dict(40, 24, 48, 2, labels=2)
    encoder = bert_encoder_from_hf(config, sd)
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


def test_unknown_tensor_is_named():
    with pytest.raises(BiolmError, match="encoder.layer.0.attention.rotary"):
        convert_hf_bert_state_dict({"bert.encoder.layer.0.attention.rotary.weight": torch.zeros(1)})


def test_unsupported_activation():
    with pytest.raises(BiolmError, match="hidden_act"):
        bert_config_from_hf({"hidden_act": "relu"})

"""Tiny public checkpoints written in their real layouts (no network), shared by the api, variants and model tests."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
DNABERT2_TOKENIZER = REPO / "data" / "tokenizers" / "dnabert2_117m" / "tokenizer.json"
DNABERT2_VOCAB = 4096


def dnabert2_config(hidden: int, layers: int, heads: int, inner: int) -> dict:
    """config.json of zhihan1996/DNABERT-2-117M with a tiny shape (MosaicBERT: ALiBi, GEGLU, remote code)."""
    return {
        "architectures": ["BertForMaskedLM"],
        "auto_map": {"AutoConfig": "configuration_bert.BertConfig", "AutoModel": "bert_layers.BertModel",
                     "AutoModelForMaskedLM": "bert_layers.BertForMaskedLM",
                     "AutoModelForSequenceClassification": "bert_layers.BertForSequenceClassification"},
        "alibi_starting_size": 512, "attention_probs_dropout_prob": 0.0, "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
        "hidden_size": hidden, "initializer_range": 0.02, "intermediate_size": inner, "layer_norm_eps": 1e-12,
        "max_position_embeddings": 512, "model_type": "bert", "num_attention_heads": heads, "num_hidden_layers": layers,
        "position_embedding_type": "absolute", "torch_dtype": "float32", "type_vocab_size": 2, "vocab_size": DNABERT2_VOCAB,
    }


def dnabert2_state_dict(hidden: int, layers: int, inner: int, seed: int = 0, mlm_head: bool = True) -> dict[str, torch.Tensor]:
    """Random tensors under DNABERT-2's BertForMaskedLM names: fused Wqkv, GEGLU gated_layers, tied MLM decoder."""
    g = torch.Generator().manual_seed(seed)

    def weight(*shape: int) -> torch.Tensor:
        return 0.2 * torch.randn(shape, generator=g)

    def norm() -> torch.Tensor:
        return 1.0 + 0.1 * torch.randn(hidden, generator=g)

    sd = {
        "bert.embeddings.word_embeddings.weight": weight(DNABERT2_VOCAB, hidden),
        "bert.embeddings.token_type_embeddings.weight": weight(2, hidden),
        "bert.embeddings.LayerNorm.weight": norm(),
        "bert.embeddings.LayerNorm.bias": weight(hidden),
    }
    for i in range(layers):
        p = f"bert.encoder.layer.{i}."
        sd |= {
            p + "attention.self.Wqkv.weight": weight(3 * hidden, hidden),
            p + "attention.self.Wqkv.bias": weight(3 * hidden),
            p + "attention.output.dense.weight": weight(hidden, hidden),
            p + "attention.output.dense.bias": weight(hidden),
            p + "attention.output.LayerNorm.weight": norm(),
            p + "attention.output.LayerNorm.bias": weight(hidden),
            p + "mlp.gated_layers.weight": weight(2 * inner, hidden),
            p + "mlp.wo.weight": weight(hidden, inner),
            p + "mlp.wo.bias": weight(hidden),
            p + "mlp.layernorm.weight": norm(),
            p + "mlp.layernorm.bias": weight(hidden),
        }
    if mlm_head:
        sd |= {
            "cls.predictions.transform.dense.weight": weight(hidden, hidden),
            "cls.predictions.transform.dense.bias": weight(hidden),
            "cls.predictions.transform.LayerNorm.weight": norm(),
            "cls.predictions.transform.LayerNorm.bias": weight(hidden),
            "cls.predictions.decoder.weight": sd["bert.embeddings.word_embeddings.weight"],  # tied, as saved by torch.save
            "cls.predictions.decoder.bias": weight(DNABERT2_VOCAB),
        }
    return sd


def write_tiny_dnabert2(folder: Path, hidden: int = 32, layers: int = 2, heads: int = 2, inner: int = 64, seed: int = 0, mlm_head: bool = True) -> Path:
    """A DNABERT-2 folder as published (config.json, pytorch_model.bin, the real 4096-token tokenizer.json), tiny shape."""
    folder = Path(folder)
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(dnabert2_config(hidden, layers, heads, inner)))
    torch.save(dnabert2_state_dict(hidden, layers, inner, seed, mlm_head), folder / "pytorch_model.bin")
    shutil.copy(DNABERT2_TOKENIZER, folder / "tokenizer.json")
    return folder

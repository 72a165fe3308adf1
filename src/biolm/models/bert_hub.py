"""Import Hugging Face BERT checkpoints into `BertEncoder`.

Two layouts go in, one comes out (`BertEncoder.state_dict()` names):

- Standard `transformers` BERT (DNABERT-1, `BertModel` / `BertForSequenceClassification` /
  `BertForMaskedLM`): separate query/key/value, `intermediate.dense`, `output.dense`.
- MosaicBERT (DNABERT-2 `bert_layers.py`): fused `attention.self.Wqkv`, GEGLU
  `mlp.gated_layers` (no bias), `mlp.wo`, `mlp.layernorm`; ALiBi, so no position table.

Pooler, MLM and classifier weights are dropped: the trunk keeps only the encoder, and
`SequenceHead` is trained fresh. Tensors are `{name: Tensor}`; nothing is downloaded here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from biolm.errors import BiolmError
from biolm.models.bert import BertEncoder

_DROPPED_PREFIXES = ("pooler.", "cls.", "classifier.", "encoder.alibi")
_DROPPED_NAMES = {"embeddings.position_ids", "embeddings.token_type_ids"}
_TF_NAMES = {"gamma": "weight", "beta": "bias"}

# (pattern on the prefix-free HF name, replacement in BertEncoder names)
_RENAMES = [
    (r"^embeddings\.(word_embeddings|position_embeddings|token_type_embeddings)\.weight$",
     r"embeddings.\1.weight"),
    (r"^embeddings\.LayerNorm\.(weight|bias)$", r"embeddings.layer_norm.\1"),
    (r"^encoder\.layer\.(\d+)\.attention\.self\.Wqkv\.(weight|bias)$", r"layers.\1.attention.qkv.\2"),
    (r"^encoder\.layer\.(\d+)\.attention\.output\.dense\.(weight|bias)$", r"layers.\1.attention.out.\2"),
    (r"^encoder\.layer\.(\d+)\.attention\.output\.LayerNorm\.(weight|bias)$",
     r"layers.\1.attention_norm.\2"),
    (r"^encoder\.layer\.(\d+)\.intermediate\.dense\.(weight|bias)$", r"layers.\1.mlp.fc_in.\2"),
    (r"^encoder\.layer\.(\d+)\.output\.dense\.(weight|bias)$", r"layers.\1.mlp.fc_out.\2"),
    (r"^encoder\.layer\.(\d+)\.output\.LayerNorm\.(weight|bias)$", r"layers.\1.mlp_norm.\2"),
    (r"^encoder\.layer\.(\d+)\.mlp\.gated_layers\.weight$", r"layers.\1.mlp.gated.weight"),
    (r"^encoder\.layer\.(\d+)\.mlp\.wo\.(weight|bias)$", r"layers.\1.mlp.fc_out.\2"),
    (r"^encoder\.layer\.(\d+)\.mlp\.layernorm\.(weight|bias)$", r"layers.\1.mlp_norm.\2"),
]
_SPLIT_QKV = re.compile(r"^encoder\.layer\.(\d+)\.attention\.self\.(query|key|value)\.(weight|bias)$")


def _normalise(name: str) -> str:
    """Strip the `bert.` prefix and old TF-style LayerNorm gamma/beta names."""
    name = name.removeprefix("bert.")
    return re.sub(r"LayerNorm\.(gamma|beta)$", lambda m: "LayerNorm." + _TF_NAMES[m[1]], name)


def convert_hf_bert_state_dict(sd: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Map a Hugging Face BERT or MosaicBERT state dict onto `BertEncoder` names.

    Args:
        sd: checkpoint tensors, with or without the `bert.` prefix.

    Returns:
        A state dict for `BertEncoder.load_state_dict` (query, key and value fused into `qkv`).

    Raises:
        BiolmError: a tensor name that belongs to neither layout, or a layer missing q, k or v.
    """
    out: dict[str, Tensor] = {}
    split_qkv: dict[tuple[str, str], dict[str, Tensor]] = {}
    for raw_name, tensor in sd.items():
        name = _normalise(raw_name)
        if name in _DROPPED_NAMES or name.startswith(_DROPPED_PREFIXES):
            continue
        match = _SPLIT_QKV.match(name)
        if match:
            layer, part, kind = match.groups()
            split_qkv.setdefault((layer, kind), {})[part] = tensor
            continue
        for pattern, replacement in _RENAMES:
            new_name, count = re.subn(pattern, replacement, name)
            if count:
                out[new_name] = tensor
                break
        else:
            raise BiolmError(
                f"checkpoint tensor {raw_name!r}: not part of a Hugging Face BERT or "
                "DNABERT-2 (MosaicBERT) encoder"
            )
    for (layer, kind), parts in split_qkv.items():
        if set(parts) != {"query", "key", "value"}:
            raise BiolmError(
                f"checkpoint layer {layer}: attention {kind} has only {sorted(parts)} "
                "(needs query, key and value)"
            )
        # Output rows ordered (q | k | v), each (heads, head_dim): the layout BertSelfAttention views.
        out[f"layers.{layer}.attention.qkv.{kind}"] = torch.cat(
            [parts["query"], parts["key"], parts["value"]], dim=0
        )
    return out


def _get(hf_config: Any, key: str, default: Any = None) -> Any:
    if isinstance(hf_config, Mapping):
        return hf_config.get(key, default)
    return getattr(hf_config, key, default)


def bert_config_from_hf(hf_config: Any) -> dict[str, Any]:
    """`BertEncoder` kwargs from a Hugging Face BERT config (object or config.json dict).

    A config with `alibi_starting_size` (DNABERT-2 / MosaicBERT) maps to ALiBi + GEGLU,
    anything else to learned positions + GELU.

    Args:
        hf_config: a `transformers.BertConfig` or the parsed config.json mapping.

    Returns:
        Keyword arguments for `BertEncoder(**kwargs)`, including `vocab_size` and `pad_token_id`.

    Raises:
        BiolmError: an activation or position scheme that `BertEncoder` does not implement.
    """
    mosaic = _get(hf_config, "alibi_starting_size") is not None
    hidden_act = _get(hf_config, "hidden_act", "gelu")
    if hidden_act != "gelu":
        raise BiolmError(f"checkpoint config hidden_act: {hidden_act!r} is not supported (accepted: gelu)")
    position_type = _get(hf_config, "position_embedding_type", "absolute")
    if not mosaic and position_type != "absolute":
        raise BiolmError(
            f"checkpoint config position_embedding_type: {position_type!r} is not supported "
            "(accepted: absolute, or a DNABERT-2 config with alibi_starting_size)"
        )
    pad_token_id = _get(hf_config, "pad_token_id")
    return {
        "vocab_size": _get(hf_config, "vocab_size"),
        "pad_token_id": 0 if pad_token_id is None else pad_token_id,
        "hidden_size": _get(hf_config, "hidden_size"),
        "num_layers": _get(hf_config, "num_hidden_layers"),
        "num_heads": _get(hf_config, "num_attention_heads"),
        "intermediate_size": _get(hf_config, "intermediate_size"),
        "max_position_embeddings": _get(hf_config, "max_position_embeddings", 512),
        "position_embedding": "alibi" if mosaic else "learned",
        "mlp": "geglu" if mosaic else "gelu",
        "hidden_dropout": _get(hf_config, "hidden_dropout_prob", 0.1),
        "attention_dropout": _get(hf_config, "attention_probs_dropout_prob", 0.0),
        "layer_norm_eps": _get(hf_config, "layer_norm_eps", 1e-12),
        "type_vocab_size": _get(hf_config, "type_vocab_size", 2),
        "initializer_range": _get(hf_config, "initializer_range", 0.02),
    }


def bert_encoder_from_hf(hf_config: Any, sd: Mapping[str, Tensor]) -> BertEncoder:
    """Build a `BertEncoder` and load a Hugging Face checkpoint into it (strict).

    Args:
        hf_config: a `transformers.BertConfig` or the parsed config.json mapping.
        sd: the checkpoint's state dict.

    Returns:
        The encoder with the checkpoint's weights.

    Raises:
        BiolmError: the config or the tensors do not fit `BertEncoder`.
    """
    encoder = BertEncoder(**bert_config_from_hf(hf_config))
    try:
        encoder.load_state_dict(convert_hf_bert_state_dict(sd), strict=True)
    except RuntimeError as exc:
        raise BiolmError(f"checkpoint does not fit its config: {exc}") from exc
    return encoder

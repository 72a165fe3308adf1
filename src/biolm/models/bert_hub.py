"""Import Hugging Face BERT checkpoints into `BertEncoder`.

Three layouts go in, one comes out (`BertEncoder.state_dict()` names):

- Standard `transformers` BERT (DNABERT-1, `BertModel` / `BertForSequenceClassification` /
  `BertForMaskedLM`): separate query/key/value, `intermediate.dense`, `output.dense`.
- MosaicBERT (DNABERT-2 `bert_layers.py`): fused `attention.self.Wqkv`, GEGLU
  `mlp.gated_layers` (no bias), `mlp.wo`, `mlp.layernorm`; ALiBi, so no position table.
- GENA-LM pre-LN BERT (AIRI-Institute/GENA_LM `src/gena_lm/modeling_bert.py`, config
  `pre_layer_norm: true`): the standard names without the two post-LN LayerNorms, plus
  `encoder.layer.i.pre_attention_ln` / `post_attention_ln` and an optional `encoder.last_layer_ln`.

Pooler, MLM and classifier weights are dropped: the trunk keeps only the encoder, and
`SequenceHead` is trained fresh. Tensors are `{name: Tensor}`; nothing is downloaded here.
`bert_encoder_from_pretrained` (= `BertEncoder.from_pretrained`) reads a local checkpoint folder.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import Tensor

from biolm.errors import BiolmError
from biolm.models.bert import BertConfig, BertEncoder
from biolm.models.hub import load_checked, merge_options, read_hf_folder, rename_tensors

_DROPPED_PREFIXES = ("pooler.", "cls.", "classifier.", "encoder.alibi")
_DROPPED_NAMES = {"embeddings.position_ids", "embeddings.token_type_ids"}
_TF_NAMES = {"gamma": "weight", "beta": "bias"}
# BertEncoder options a config may still set on a checkpoint: they change no tensor shape.
RUNTIME_OPTIONS = ("hidden_dropout", "attention_dropout", "gradient_checkpointing", "initializer_range")

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
    (r"^encoder\.layer\.(\d+)\.pre_attention_ln\.(weight|bias)$", r"layers.\1.attention_norm.\2"),
    (r"^encoder\.layer\.(\d+)\.post_attention_ln\.(weight|bias)$", r"layers.\1.mlp_norm.\2"),
    (r"^encoder\.last_layer_ln\.(weight|bias)$", r"final_norm.\1"),
]


def _normalise(name: str) -> str:
    """Strip the `bert.` prefix and old TF-style LayerNorm gamma/beta names."""
    name = name.removeprefix("bert.")
    return re.sub(r"LayerNorm\.(gamma|beta)$", lambda m: "LayerNorm." + _TF_NAMES[m[1]], name)


def convert_hf_bert_state_dict(sd: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Map a Hugging Face BERT, MosaicBERT or GENA-LM state dict onto `BertEncoder` names.

    Args:
        sd: checkpoint tensors, with or without the `bert.` prefix.

    Returns:
        A state dict for `BertEncoder.load_state_dict` (query, key and value fused into `qkv`).
        A name that belongs to neither layout is kept as it is (without `bert.`), so the load
        reports it as unexpected together with whatever is missing.

    Raises:
        BiolmError: a layer with some but not all of query, key and value.
    """
    names = ((_normalise(raw), tensor) for raw, tensor in sd.items())
    return rename_tensors(((n, t) for n, t in names if n not in _DROPPED_NAMES and not n.startswith(_DROPPED_PREFIXES)), _RENAMES)


def _get(hf_config: Any, key: str, default: Any = None) -> Any:
    if isinstance(hf_config, Mapping):
        return hf_config.get(key, default)
    return getattr(hf_config, key, default)


def bert_config_from_hf(hf_config: Any) -> dict[str, Any]:
    """`BertEncoder` kwargs from a Hugging Face BERT config (object or config.json dict).

    A config with `alibi_starting_size` (DNABERT-2 / MosaicBERT) maps to ALiBi + GEGLU,
    anything else to learned positions + GELU. GENA-LM's `pre_layer_norm` selects pre-LN blocks;
    its `last_layer_norm` defaults to `pre_layer_norm` when absent, as GENA-LM's own code reads it.

    Args:
        hf_config: a `transformers.BertConfig` or the parsed config.json mapping.

    Returns:
        Keyword arguments for `BertEncoder(**kwargs)`, including `vocab_size` and `pad_token_id`.

    Raises:
        BiolmError: a missing size, or an activation, position scheme or sparse attention that
            `BertEncoder` does not implement.
    """
    required = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size")
    absent = [key for key in required if _get(hf_config, key) is None]
    if absent:
        raise BiolmError(f"checkpoint config: missing {', '.join(absent)} (a BERT config.json has {', '.join(required)})")
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
    if _get(hf_config, "sparse_config_cls"):
        raise BiolmError("checkpoint config sparse_config_cls: sparse attention (GENA-LM *-sparse models, DeepSpeed) is not supported")
    pre_layer_norm = bool(_get(hf_config, "pre_layer_norm", False))
    last_layer_norm = bool(_get(hf_config, "last_layer_norm", pre_layer_norm))
    if last_layer_norm and not pre_layer_norm:
        raise BiolmError("checkpoint config last_layer_norm: true needs pre_layer_norm: true (GENA-LM refuses it too)")
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
        "pre_layer_norm": pre_layer_norm,
        "last_layer_norm": last_layer_norm,
    }


def bert_encoder_from_hf(
    hf_config: Any, sd: Mapping[str, Tensor], source: str = "checkpoint", **overrides: Any
) -> BertEncoder:
    """Build a `BertEncoder` from a Hugging Face config and load the checkpoint into it (strict).

    A state dict with MosaicBERT's `mlp.gated_layers` is read as DNABERT-2 (ALiBi + GEGLU)
    even when its config lacks `alibi_starting_size`.

    Args:
        hf_config: a `transformers.BertConfig` or the parsed config.json mapping.
        sd: the checkpoint's state dict.
        source: where the checkpoint came from, for error messages.
        **overrides: run-time options (`RUNTIME_OPTIONS`, `pad_token_id`); `vocab_size` must
            match; other keys are ignored (see `biolm.models.hub.merge_options`).

    Returns:
        The encoder with the checkpoint's weights.

    Raises:
        BiolmError: the config or the tensors do not fit `BertEncoder` (missing, unexpected
            and wrongly shaped tensors are listed together).
    """
    if _get(hf_config, "alibi_starting_size") is None and any(".mlp.gated_layers." in name for name in sd):
        hf_config = {**_as_dict(hf_config), "alibi_starting_size": 512}
    try:
        checkpoint_kwargs = bert_config_from_hf(hf_config)
        state_dict = convert_hf_bert_state_dict(sd)
    except BiolmError as exc:
        raise BiolmError(f"{source}: {exc}") from None
    kwargs = merge_options(checkpoint_kwargs, overrides, RUNTIME_OPTIONS, BertConfig, source)
    try:
        return load_checked(BertEncoder(**kwargs), state_dict, source)
    except BiolmError as exc:
        has_final_norm = "final_norm.weight" in state_dict
        if checkpoint_kwargs["last_layer_norm"] == has_final_norm:
            raise
        expected = str(checkpoint_kwargs["last_layer_norm"]).lower()
        said = (f"sets last_layer_norm: {expected}" if _get(hf_config, "last_layer_norm") is not None
                else f"has no last_layer_norm, which GENA-LM reads as pre_layer_norm ({expected})")
        raise BiolmError(f"{exc}; its config {said}, but the weights {'have' if has_final_norm else 'lack'} encoder.last_layer_ln") from None


def bert_encoder_from_pretrained(path: str | Path, **overrides: Any) -> BertEncoder:
    """`BertEncoder` from a local Hugging Face BERT / DNABERT-1 / DNABERT-2 / GENA-LM checkpoint folder.

    Reads `config.json` and `model.safetensors` (or `pytorch_model.bin`); never runs code from
    the folder and never downloads. The architecture comes from config.json.

    Args:
        path: the checkpoint folder.
        **overrides: as for `bert_encoder_from_hf`.

    Returns:
        The encoder with the checkpoint's weights.

    Raises:
        BiolmError: an unreadable folder, or a checkpoint that does not fit its config.
    """
    config, sd = read_hf_folder(path)
    return bert_encoder_from_hf(config, sd, source=str(path), **overrides)


def _as_dict(hf_config: Any) -> dict[str, Any]:
    return dict(hf_config) if isinstance(hf_config, Mapping) else hf_config.to_dict()

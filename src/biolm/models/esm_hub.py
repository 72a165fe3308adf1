"""Import Hugging Face ESM checkpoints (ESM-2, Nucleotide Transformer v1 and v2) into `EsmEncoder`.

In: a config.json and state dict as `EsmForMaskedLM` / `EsmModel` / `EsmFor*Classification`
save them (`esm.` prefix or none), including the NT v2 remote-code layout (gated MLP
`intermediate.dense [2I, H]`, no MLP biases). Out: `EsmEncoder` kwargs and the same tensors
under `EsmEncoder` names (query, key and value fused into `qkv`); the LM head is kept.

Dropped on import, since the forward never reads them: the contact head, pooler and classifier,
the `position_ids` and rotary `inv_freq` buffers, and with rotary positions the position table
that the NT v2 remote code (and older transformers) builds and stores anyway.
`esm_encoder_from_pretrained` (= `EsmEncoder.from_pretrained`) reads a local folder.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import Tensor

from biolm.errors import BiolmError
from biolm.models.esm import EsmConfig, EsmEncoder
from biolm.models.hub import load_checked, merge_options, read_hf_folder, rename_tensors

_DROPPED_PREFIXES = ("contact_head.", "pooler.", "classifier.")
_DROPPED = re.compile(r"^(embeddings\.position_ids|.*rotary_embeddings\.inv_freq)$")
_UNUSED_TABLE = "embeddings.position_embeddings.weight"
# EsmEncoder options a config may still set on a checkpoint: they change no tensor shape.
RUNTIME_OPTIONS = ("hidden_dropout", "attention_dropout", "gradient_checkpointing", "initializer_range")
_POSITIONS = {"absolute": "learned", "rotary": "rotary"}
_TF_NAMES = {"gamma": "weight", "beta": "bias"}

# (pattern on the prefix-free HF name, replacement in EsmEncoder names)
_RENAMES = [
    (r"^encoder\.layer\.(\d+)\.attention\.LayerNorm\.", r"layers.\1.attention_norm."),
    (r"^encoder\.layer\.(\d+)\.attention\.output\.dense\.", r"layers.\1.attention.out."),
    (r"^encoder\.layer\.(\d+)\.intermediate\.dense\.", r"layers.\1.mlp.fc_in."),
    (r"^encoder\.layer\.(\d+)\.output\.dense\.", r"layers.\1.mlp.fc_out."),
    (r"^encoder\.layer\.(\d+)\.LayerNorm\.", r"layers.\1.mlp_norm."),
    (r"^encoder\.emb_layer_norm_after\.", "final_norm."),
    (r"^embeddings\.layer_norm\.", "embeddings.layer_norm."),
]


def convert_hf_esm_state_dict(sd: Mapping[str, Tensor], rotary: bool) -> dict[str, Tensor]:
    """Map a Hugging Face ESM / NT state dict onto `EsmEncoder` names.

    Args:
        sd: checkpoint tensors, with or without the `esm.` prefix.
        rotary: the checkpoint uses rotary positions (its stored position table is dropped).

    Returns:
        A state dict for `EsmEncoder.load_state_dict`. A name of neither layout is kept as it is
        (without `esm.`), so the load reports it as unexpected.

    Raises:
        BiolmError: a layer with some but not all of query, key and value.
    """
    def keep(name: str) -> bool:
        return not (name.startswith(_DROPPED_PREFIXES) or _DROPPED.match(name) or (rotary and name == _UNUSED_TABLE))

    # transformers 5 writes LayerNorm tensors of this family under the old gamma/beta names.
    names = ((re.sub(r"LayerNorm\.(gamma|beta)$", lambda m: "LayerNorm." + _TF_NAMES[m[1]], raw.removeprefix("esm.")), tensor) for raw, tensor in sd.items())
    return rename_tensors(((n, t) for n, t in names if keep(n)), _RENAMES)


def esm_config_from_hf(hf_config: Mapping[str, Any], sd: Mapping[str, Tensor]) -> dict[str, Any]:
    """`EsmEncoder` kwargs from an ESM config.json and its tensors.

    The MLP kind is read from the tensors: an `intermediate.dense` with 2I rows is NT v2's gated
    SiLU MLP (its remote code has no config switch for it); `add_bias_fnn` (NT v2: false) sets
    the MLP biases. The LM head is built when the file has `lm_head.*` tensors.

    Args:
        hf_config: the parsed config.json.
        sd: the checkpoint's state dict.

    Returns:
        Keyword arguments for `EsmEncoder(**kwargs)`, including `vocab_size` and `pad_token_id`.

    Raises:
        BiolmError: a missing size, or a position scheme `EsmEncoder` does not implement.
    """
    required = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size")
    absent = [key for key in required if hf_config.get(key) is None]
    if absent:
        raise BiolmError(f"checkpoint config: missing {', '.join(absent)} (an ESM config.json has {', '.join(required)})")
    position_type = hf_config.get("position_embedding_type", "absolute")
    if position_type not in _POSITIONS:
        raise BiolmError(
            f"checkpoint config position_embedding_type: {position_type!r} is not supported (accepted: {', '.join(_POSITIONS)})"
        )
    inner = hf_config["intermediate_size"]
    fc_in = next((t for name, t in sd.items() if name.endswith("encoder.layer.0.intermediate.dense.weight")), None)
    gated = fc_in is not None and fc_in.shape[0] == 2 * inner
    pad_token_id = hf_config.get("pad_token_id")
    mask_token_id = hf_config.get("mask_token_id")
    return {
        "vocab_size": hf_config["vocab_size"],
        "pad_token_id": 1 if pad_token_id is None else pad_token_id,
        "hidden_size": hf_config["hidden_size"],
        "num_layers": hf_config["num_hidden_layers"],
        "num_heads": hf_config["num_attention_heads"],
        "intermediate_size": inner,
        "max_position_embeddings": hf_config.get("max_position_embeddings", 1026),
        "position_embedding": _POSITIONS[position_type],
        "mlp": "swiglu" if gated else "gelu",
        "mlp_bias": bool(hf_config.get("add_bias_fnn", True)),
        "token_dropout": bool(hf_config.get("token_dropout", False)),
        "mask_token_id": 2 if mask_token_id is None else mask_token_id,
        "embedding_layer_norm": bool(hf_config.get("emb_layer_norm_before") or False),
        "lm_head": any(name.startswith("lm_head.") for name in sd),
        "tie_word_embeddings": bool(hf_config.get("tie_word_embeddings", True)),
        "hidden_dropout": hf_config.get("hidden_dropout_prob", 0.0),
        "attention_dropout": hf_config.get("attention_probs_dropout_prob", 0.0),
        "layer_norm_eps": hf_config.get("layer_norm_eps", 1e-12),
        "initializer_range": hf_config.get("initializer_range", 0.02),
    }


def esm_encoder_from_hf(
    hf_config: Mapping[str, Any], sd: Mapping[str, Tensor], source: str = "checkpoint", **overrides: Any
) -> EsmEncoder:
    """Build an `EsmEncoder` from an ESM config.json mapping and load the checkpoint (strict).

    Args:
        hf_config: the parsed config.json.
        sd: the checkpoint's state dict.
        source: where the checkpoint came from, for error messages.
        **overrides: run-time options (`RUNTIME_OPTIONS`, `pad_token_id`); `vocab_size` must
            match; other keys are ignored (see `biolm.models.hub.merge_options`).
            `lm_head=False` leaves the file's LM head out (fine-tuning never calls it, and DDP
            refuses parameters that get no gradient); `lm_head=True` keeps it if the file has one.

    Returns:
        The encoder (and LM head, if the file has one and it is wanted) with the checkpoint's weights.

    Raises:
        BiolmError: the config or the tensors do not fit `EsmEncoder` (missing, unexpected
            and wrongly shaped tensors are listed together).
    """
    try:
        checkpoint_kwargs = esm_config_from_hf(hf_config, sd)
        state_dict = convert_hf_esm_state_dict(sd, rotary=checkpoint_kwargs["position_embedding"] == "rotary")
    except BiolmError as exc:
        raise BiolmError(f"{source}: {exc}") from None
    overrides = dict(overrides)
    keep_head = bool(overrides.pop("lm_head", True))
    kwargs = merge_options(checkpoint_kwargs, overrides, RUNTIME_OPTIONS, EsmConfig, source)
    if not keep_head:
        kwargs["lm_head"] = False
        state_dict = {name: t for name, t in state_dict.items() if not name.startswith("lm_head.")}
    encoder = EsmEncoder(**kwargs)
    if encoder.lm_head is not None and encoder.config.tie_word_embeddings and "embeddings.word_embeddings.weight" in state_dict:
        # Tied (ESM-2): transformers stores no decoder, or a copy of the embedding; the tie decides.
        state_dict["lm_head.decoder.weight"] = state_dict["embeddings.word_embeddings.weight"]
    return load_checked(encoder, state_dict, source)


def esm_encoder_from_pretrained(path: str | Path, **overrides: Any) -> EsmEncoder:
    """`EsmEncoder` from a local ESM-2 / Nucleotide Transformer v1 or v2 checkpoint folder.

    Reads `config.json` and `model.safetensors` (or `pytorch_model.bin`); never runs code from
    the folder (NT v2's remote `modeling_esm.py` included) and never downloads.

    Args:
        path: the checkpoint folder.
        **overrides: as for `esm_encoder_from_hf`.

    Returns:
        The encoder with the checkpoint's weights.

    Raises:
        BiolmError: an unreadable folder, or a checkpoint that does not fit its config.
    """
    config, sd = read_hf_folder(path)
    return esm_encoder_from_hf(config, sd, source=str(path), **overrides)

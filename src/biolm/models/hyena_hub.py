"""Import of Hugging Face HyenaDNA checkpoints (`LongSafari/hyenadna-*-hf`) into `HyenaEncoder`.

In: a HyenaDNA state dict (`hyena.backbone.*` / `backbone.*` names) and its config.json. Out: the
same tensors under `HyenaEncoder` names, and `HyenaEncoder` kwargs; `hyena_encoder_from_pretrained`
(= `HyenaEncoder.from_pretrained`) reads a local checkpoint folder with both.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any

from torch import Tensor

from biolm.models.hub import load_checked, merge_options, read_hf_folder
from biolm.models.hyena import HyenaConfig, HyenaEncoder

_HF_PREFIXES = ("hyena.backbone.", "backbone.")
# HyenaDNAForSequenceClassification's head: the task trains its own.
_HF_DROPPED_PREFIXES = ("score.",)
# The filter MLP's Sin module is shared by its slots; the -hf safetensors keep only slot 1.
_SHARED_FREQ = re.compile(r"^(layers\.\d+\.mixer\.filter_fn\.implicit_filter\.)1\.freq$")
# HyenaEncoder options a config may still set on a checkpoint: they change no tensor shape.
RUNTIME_OPTIONS = ("embed_dropout", "hyena_dropout", "hyena_filter_dropout", "gradient_checkpointing", "initializer_range")
# The HF port hard-codes the modulation shift (`HyenaExponentialModulation(config.d_model)`,
# default shift=0.05); it is not a config.json field.
HF_MODULATION_SHIFT = 0.05
HYENADNA_PAD_ID = 4  # [PAD] of the HyenaDNA character tokenizer, when config.json has no pad_token_id


def hyena_state_dict_from_hf(sd: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Map a Hugging Face HyenaDNA state dict onto `HyenaEncoder` names.

    `hyena.backbone.X` (HyenaDNAForCausalLM) or `backbone.X` (HyenaDNAModel) becomes `X`;
    `lm_head.weight` is kept (filled from the embedding when absent, i.e. tied), and the shared
    Sin frequency stored once as `implicit_filter.1.freq` fills slots 3 and 5. Only names
    change: the tensors are the checkpoint's own, and the encoder's config (d_model, n_layer,
    max_seq_len, ...) must match the checkpoint's for a strict load. Any other name is kept as
    it is, for the load to report as unexpected.

    Args:
        sd: checkpoint tensors.

    Returns:
        A state dict for `HyenaEncoder.load_state_dict(..., strict=True)`.
    """
    out: dict[str, Tensor] = {}
    for name, tensor in sd.items():
        if name.startswith(_HF_DROPPED_PREFIXES):
            continue
        prefix = next((p for p in _HF_PREFIXES if name.startswith(p)), "")
        out[name.removeprefix(prefix)] = tensor
    for name, tensor in list(out.items()):
        match = _SHARED_FREQ.match(name)
        if match:
            for slot in (3, 5):
                out.setdefault(f"{match[1]}{slot}.freq", tensor)
    if "lm_head.weight" not in out and "embeddings.word_embeddings.weight" in out:
        out["lm_head.weight"] = out["embeddings.word_embeddings.weight"]
    return out


def hyena_config_from_hf(hf_config: Mapping[str, Any]) -> dict[str, Any]:
    """`HyenaEncoder` kwargs from a HyenaDNA config.json (field names are the HF port's).

    Fields it lacks take `HyenaConfig` defaults, which are the HF port's; the modulation shift is
    the HF port's hard-coded 0.05, and the skip term is always on (the port ignores ``use_bias``).
    Not mirrored, as no published checkpoint needs it: the port's block LayerNorms use eps 1e-5 and
    its short filter padding 2 whatever the config (every -hf config has eps 1e-5 and order 3).

    Args:
        hf_config: the parsed config.json.

    Returns:
        Keyword arguments for `HyenaEncoder(**kwargs)`, including `vocab_size` and `pad_token_id`.
    """
    known = {f.name for f in fields(HyenaConfig)} - {"gradient_checkpointing", "causal", "modulation_shift"}
    kwargs = {key: hf_config[key] for key in sorted(known) if key in hf_config}
    pad_token_id = hf_config.get("pad_token_id")
    return {
        "vocab_size": hf_config.get("vocab_size"),
        "pad_token_id": HYENADNA_PAD_ID if pad_token_id is None else pad_token_id,
        **kwargs,
        "modulation_shift": HF_MODULATION_SHIFT,
        "use_bias": True,  # the port's forward adds the `bias * u` skip term whatever config.json says
    }


def hyena_encoder_from_pretrained(path: str | Path, **overrides: Any) -> HyenaEncoder:
    """`HyenaEncoder` from a local HyenaDNA checkpoint folder in the `-hf` layout.

    Reads `config.json` and `model.safetensors` (or `pytorch_model.bin`); never runs code from
    the folder and never downloads. The architecture comes from config.json. With tied word
    embeddings (the default) a stored `lm_head.weight` is replaced by the embedding, as the HF
    port's weight tying does.

    Args:
        path: the checkpoint folder.
        **overrides: run-time options (`RUNTIME_OPTIONS`, `pad_token_id`); `vocab_size` must
            match; other keys are ignored (see `biolm.models.hub.merge_options`).

    Returns:
        The encoder with the checkpoint's weights.

    Raises:
        BiolmError: an unreadable folder, or a checkpoint that does not fit its config (missing,
            unexpected and wrongly shaped tensors are listed together).
    """
    config, sd = read_hf_folder(path)
    kwargs = merge_options(hyena_config_from_hf(config), overrides, RUNTIME_OPTIONS, HyenaConfig, str(path))
    encoder = HyenaEncoder(**kwargs)
    state_dict = hyena_state_dict_from_hf(sd)
    if encoder.config.tie_word_embeddings and "embeddings.word_embeddings.weight" in state_dict:
        state_dict["lm_head.weight"] = state_dict["embeddings.word_embeddings.weight"]
    return load_checked(encoder, state_dict, str(path))

"""Reading a local Hugging Face checkpoint folder and loading it into a native trunk, with checks.

In: a folder with `config.json` and `model.safetensors` (or `pytorch_model.bin`, read with
`torch.load(..., weights_only=True)`). Out: the parsed config and `{name: Tensor}` weights, then
a trunk whose every parameter came from the file. No code from the folder runs (no
`trust_remote_code`). `resolve_pretrained` turns a `model.pretrained` value into a folder: a local
path as it is, a Hub id (``org/name``) through `huggingface_hub.snapshot_download` (the only download). The family modules (`bert_hub`, `hyena_hub`) map names
and configs; this module owns what they share: reading, option merging and the strict load.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from biolm.checkpoints import HUB_ID, resolve_pretrained  # noqa: F401 - re-exported: models import it from here
from biolm.errors import BiolmError

log = logging.getLogger(__name__)

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
_SHOWN = 4  # names listed per kind of mismatch; the count says how many there are
def read_hf_folder(path: str | Path) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """Parse `config.json` and load the weights of a Hugging Face checkpoint folder (CPU tensors).

    Args:
        path: the local folder.

    Returns:
        `(config, state_dict)`.

    Raises:
        BiolmError: no such folder, no `config.json`, no weight file, or an unreadable file.
    """
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise BiolmError(f"{path}: no such folder (expected a local checkpoint folder with config.json and {' or '.join(WEIGHT_FILES)})")
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise BiolmError(f"{folder}: no config.json (a Hugging Face checkpoint folder has config.json and {' or '.join(WEIGHT_FILES)})")
    try:
        config = json.loads(config_file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BiolmError(f"{config_file}: not readable as JSON ({exc})") from None
    weights = next((folder / name for name in WEIGHT_FILES if (folder / name).is_file()), None)
    if weights is None:
        raise BiolmError(f"{folder}: no weight file (accepted: {', '.join(WEIGHT_FILES)}; sharded checkpoints are not supported)")
    try:
        if weights.suffix == ".safetensors":
            from safetensors.torch import load_file

            state_dict = load_file(weights, device="cpu")
        else:
            state_dict = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as exc:  # safetensors and pickle raise many types for a corrupt or foreign file
        raise BiolmError(f"{weights}: not a readable checkpoint ({type(exc).__name__}: {exc})") from None
    if not isinstance(state_dict, Mapping):
        raise BiolmError(f"{weights}: holds a {type(state_dict).__name__}, not a state dict of tensors")
    return config, dict(state_dict)


def merge_options(
    checkpoint: Mapping[str, Any],
    overrides: Mapping[str, Any],
    runtime: Iterable[str],
    config_cls: type,
    source: str,
) -> dict[str, Any]:
    """Trunk kwargs: the checkpoint's, with `overrides` applied to run-time options only.

    Run-time options (dropouts, gradient checkpointing, the pad id) change no tensor shape and
    not the trained function, so a config may set them. The architecture comes from the
    checkpoint: an override of any other option is ignored, and those that differ from the
    checkpoint's value are named in one warning. `vocab_size` must match, since the tokenizer's
    ids index the embedding.

    Args:
        checkpoint: trunk kwargs read from the checkpoint's config (`vocab_size`, `pad_token_id`
            and fields of `config_cls`).
        overrides: options from the caller (e.g. `model.trunk` keys and the tokenizer's sizes).
        runtime: the option names `overrides` may change.
        config_cls: the trunk's Config dataclass (its defaults fill what the checkpoint lacks).
        source: the checkpoint folder, for messages.

    Raises:
        BiolmError: an unknown option, or a `vocab_size` that differs from the checkpoint's.
    """
    if checkpoint.get("vocab_size") is None:
        raise BiolmError(f"{source}: its config has no vocab_size")
    known = {f.name for f in fields(config_cls)}
    unknown = sorted(set(overrides) - known - {"vocab_size", "pad_token_id"})
    if unknown:
        raise BiolmError(f"model.trunk.{unknown[0]}: unknown {config_cls.__name__} option (accepted: {', '.join(sorted(known))})")
    if "vocab_size" in overrides and overrides["vocab_size"] != checkpoint["vocab_size"]:
        raise BiolmError(
            f"model.pretrained={source}: the tokenizer has {overrides['vocab_size']} token ids, the "
            f"checkpoint {checkpoint['vocab_size']}; use the tokenizer the checkpoint was trained with (tokenizer=pretrained reads it from the folder)"
        )
    resolved = asdict(config_cls(**{key: value for key, value in checkpoint.items() if key in known}))
    runtime = set(runtime) | {"pad_token_id"}
    merged = dict(checkpoint)
    ignored = []
    for key, value in overrides.items():
        if key in runtime:
            merged[key] = value
        elif key in resolved and value != resolved[key]:
            ignored.append(f"{key}={value} (checkpoint: {resolved[key]})")
    if ignored:
        log.warning("model.pretrained=%s: the architecture comes from its config.json; ignored model.trunk %s", source, ", ".join(ignored))
    return merged


def load_checked(model: nn.Module, state_dict: Mapping[str, Tensor], source: str) -> nn.Module:
    """Load `state_dict` into `model`, strictly, or raise one error naming every kind of mismatch.

    Persistent buffers the file lacks keep the values the model computed from its config (they
    are functions of it, e.g. Hyena's position grid); every parameter must come from the file.

    Args:
        model: a freshly built trunk.
        state_dict: tensors under the trunk's names.
        source: the folder (or a description), for the message.

    Returns:
        `model`, loaded.

    Raises:
        BiolmError: missing, unexpected or wrongly shaped tensors (first few of each).
    """
    expected = model.state_dict()
    buffers = {name for name, _ in model.named_buffers()}
    missing = [name for name in expected if name not in state_dict and name not in buffers]
    unexpected = [name for name in state_dict if name not in expected]
    wrong_shape = [
        f"{name} {tuple(tensor.shape)} vs model {tuple(expected[name].shape)}"
        for name, tensor in state_dict.items()
        if name in expected and tensor.shape != expected[name].shape
    ]
    problems = [
        f"{kind} {len(names)} ({', '.join(names[:_SHOWN])}{', ...' if len(names) > _SHOWN else ''})"
        for kind, names in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong_shape))
        if names
    ]
    if problems:
        raise BiolmError(
            f"{source}: checkpoint does not fit the {type(model).__name__} its config describes: {'; '.join(problems)}"
        )
    computed = {name: expected[name] for name in buffers & expected.keys() if name not in state_dict}
    model.load_state_dict({**computed, **state_dict}, strict=True)
    return model


# config.json evidence per family, checked in order (the layouts file: NT v2 and DNABERT-2 have no model_type)
FAMILIES = (
    ("biolm.models.hyena.HyenaEncoder", ("hyena",), ("d_model", "n_layer", "max_seq_len")),
    ("biolm.models.esm.EsmEncoder", ("esm",), ("token_dropout", "emb_layer_norm_before")),
    ("biolm.models.bert.BertEncoder", ("bert", "mosaic"), ("num_attention_heads", "intermediate_size", "type_vocab_size")),
)


def detect_family(folder: str | Path) -> str | None:
    """The trunk class (``_target_``) a Hugging Face checkpoint folder holds, from its ``config.json``.

    Evidence, in order: ``model_type``, the ``architectures`` / ``auto_map`` class names, then
    family-specific fields (HyenaDNA: ``d_model``/``n_layer``/``max_seq_len``; ESM and Nucleotide
    Transformer: ``token_dropout``; BERT, DNABERT, DNABERT-2: ``type_vocab_size``...). None when
    nothing matches or the file cannot be read (the family's importer then reports the folder).
    """
    try:
        config = json.loads((Path(folder).expanduser() / "config.json").read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(config, dict):
        return None
    names = " ".join([str(config.get("model_type") or ""), *map(str, config.get("architectures") or []),
                      *map(str, (config.get("auto_map") or {}).values())]).lower()
    for target, words, _ in FAMILIES:
        if any(word in names for word in words):
            return target
    for target, _, keys in FAMILIES:
        if all(key in config for key in keys[:2]):
            return target
    return None


# A Hugging Face BERT/ESM attention stores query, key and value apart; biolm's trunks hold one fused `qkv`.
SPLIT_QKV = re.compile(r"^encoder\.layer\.(\d+)\.attention\.self\.(query|key|value)\.(weight|bias)$")


def rename_tensors(items: Iterable[tuple[str, Tensor]], renames: Iterable[tuple[str, str]]) -> dict[str, Tensor]:
    """Map Hugging Face tensor names onto a biolm trunk's (shared by the BERT and ESM importers).

    Each name takes the first matching ``(pattern, replacement)`` of ``renames``; separate
    ``encoder.layer.i.attention.self.{query,key,value}`` tensors are fused, rows ordered
    (q | k | v), into ``layers.i.attention.qkv``. A name that matches nothing is kept, so the strict
    load reports it as unexpected together with whatever is missing.

    Args:
        items: ``(name, tensor)`` pairs, already stripped of the model prefix and filtered.
        renames: regex patterns and their replacements.

    Raises:
        BiolmError: a layer with some but not all of query, key and value.
    """
    renames = list(renames)
    out: dict[str, Tensor] = {}
    split_qkv: dict[tuple[str, str], dict[str, Tensor]] = {}
    for name, tensor in items:
        match = SPLIT_QKV.match(name)
        if match:
            layer, part, kind = match.groups()
            split_qkv.setdefault((layer, kind), {})[part] = tensor
            continue
        for pattern, replacement in renames:
            new_name, count = re.subn(pattern, replacement, name)
            if count:
                out[new_name] = tensor
                break
        else:
            out[name] = tensor
    for (layer, kind), parts in split_qkv.items():
        if set(parts) != {"query", "key", "value"}:
            raise BiolmError(f"checkpoint layer {layer}: attention {kind} has only {sorted(parts)} (needs query, key and value)")
        out[f"layers.{layer}.attention.qkv.{kind}"] = torch.cat([parts["query"], parts["key"], parts["value"]], dim=0)
    return out

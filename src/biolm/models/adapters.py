"""LoRA adapters (through peft) on the native sequence models.

In: a `SequenceModel` or `TokenModel` (trunk + head) and the ``adapter`` config (``name: none | lora``, ``r``,
``alpha``, ``dropout``, ``bias``, ``target_modules``). Out: a peft ``PeftModel`` with the same
``forward(input_ids, attention_mask)``, in which only the LoRA matrices (and a trainable copy of
the sequence head, peft's ``modules_to_save``) require gradients.

Default target modules come from the trunk class (``lora_target_modules``): the fused
attention projection ``qkv`` for the BERT and ESM families, the Hyena operator's
``in_proj``/``out_proj``, a Hugging Face model peft's default for its model type (a causal LM's
``q_proj``/``v_proj``); other trunks need ``adapter.target_modules``. The same holds for a
`TokenModel` and its per-token head. A LoRA run folder holds ``adapter/`` (peft's
``adapter_model.safetensors`` + ``adapter_config.json``, loadable by peft itself) and
``adapter/base.json``, which names the pretrained run (or the Hugging Face checkpoint folder of
``model.pretrained``) the base weights come from and their SHA-256, checked on every load.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import torch
from omegaconf import DictConfig

from biolm.errors import BiolmError

ADAPTERS = ("none", "lora")
HEAD_MODULE = "head.out"  # the SequenceHead projection (peft matches name endings; "head" alone would catch the trunk's lm_head)


def adapter_name(adapter_cfg: DictConfig | dict | None) -> str:
    """``none`` or ``lora`` (errors name the accepted ones)."""
    name = str((adapter_cfg or {}).get("name", "none"))
    if name not in ADAPTERS:
        raise BiolmError(f"adapter.name={name!r}: accepted: {', '.join(ADAPTERS)}")
    return name


def is_adapted(model: torch.nn.Module) -> bool:
    """Whether ``model`` is a peft-wrapped model."""
    from peft import PeftModel

    return isinstance(model, PeftModel)


def lora_config(model: torch.nn.Module, adapter_cfg: DictConfig | dict):
    """peft ``LoraConfig`` for a model (a `SequenceModel`, a word tagger, a causal LM) from the ``adapter`` config."""
    from peft import LoraConfig

    # a trunk + head model names its targets on the trunk; a model without a trunk (a word tagger) on itself
    owner = getattr(model, "trunk", model)
    targets = adapter_cfg.get("target_modules") or getattr(owner, "lora_target_modules", None) or peft_default_targets(owner)
    if not targets:
        raise BiolmError(
            f"adapter.target_modules: {type(owner).__name__} has no default LoRA targets; "
            "name the linear layers to adapt, e.g. adapter.target_modules=[qkv]"
        )
    bias = str(adapter_cfg.get("bias", "none"))
    if bias not in ("none", "all", "lora_only"):
        raise BiolmError(f"adapter.bias={bias!r}: accepted: none, all, lora_only")
    if int(adapter_cfg["r"]) < 1 or not 0 <= float(adapter_cfg["dropout"]) < 1:
        raise BiolmError(f"adapter: r={adapter_cfg['r']}, dropout={adapter_cfg['dropout']} (accepted: r >= 1, 0 <= dropout < 1)")
    return LoraConfig(
        r=int(adapter_cfg["r"]),
        lora_alpha=float(adapter_cfg["alpha"]),
        lora_dropout=float(adapter_cfg["dropout"]),
        bias=bias,
        target_modules=list(targets),
        modules_to_save=[head] if (head := getattr(model, "head_module", HEAD_MODULE if hasattr(model, "trunk") else None)) else None,
    )


def peft_default_targets(model: torch.nn.Module) -> list[str] | None:
    """peft's default LoRA targets for a Hugging Face model type (llama, qwen2, gpt2, ...: the attention
    query and value projections), None for other models."""
    from peft.utils import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING

    model_type = getattr(getattr(model, "config", None), "model_type", None)
    found = TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING.get(model_type) if isinstance(model_type, str) else None
    return list(found) if found else None


def apply_adapter(model: torch.nn.Module, adapter_cfg: DictConfig | dict | None) -> torch.nn.Module:
    """Wrap ``model`` with LoRA when ``adapter.name`` is ``lora``; return it unchanged for ``none``."""
    if adapter_name(adapter_cfg) == "none":
        return model
    from peft import get_peft_model

    config = lora_config(model, adapter_cfg)
    try:
        adapted = get_peft_model(model, config)
    except ValueError as err:  # peft: a target module that matches nothing
        raise BiolmError(f"adapter.target_modules={list(config.target_modules)}: {err}") from None
    return adapted


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _weights_file(base: Path) -> Path:
    """The weights an adapter's base holds: a biolm run's ``model.safetensors``, or a Hugging Face checkpoint's file."""
    from biolm.models.hub import WEIGHT_FILES

    return next((base / name for name in WEIGHT_FILES if (base / name).is_file()), base / WEIGHT_FILES[0])


def write_base_record(adapter_dir: Path, base_run: Path) -> None:
    """Record which pretrained weights the adapter was trained on (checked by `check_base`): a
    pretraining run (``init_from``) or a Hugging Face checkpoint folder (``model.pretrained``)."""
    adapter_dir.mkdir(parents=True, exist_ok=True)
    weights = _weights_file(Path(base_run))
    record = {"init_from": str(base_run), "init_from_resolved": str(Path(base_run).resolve()), "weights": weights.name, "sha256": file_sha256(weights)}
    (adapter_dir / "base.json").write_text(json.dumps(record, indent=2) + "\n")


def check_base(adapter_dir: Path, checkpoint: str | None = None) -> Path:
    """The base run (or checkpoint folder) of an adapter, after checking its weights are the ones it was trained on.

    Args:
        adapter_dir: the run's ``adapter/`` folder (with ``base.json``).
        checkpoint: the ``model.pretrained`` value the run was trained from (a folder or Hub id), tried
            when the recorded folder is gone (another machine, a cleared Hugging Face cache).

    Raises:
        BiolmError: the base weights are missing or changed since the adapter was trained.
    """
    record = json.loads((adapter_dir / "base.json").read_text())
    name = record.get("weights", "model.safetensors")
    candidates = [Path(record.get("init_from_resolved", record["init_from"])), Path(record["init_from"])]
    base = next((c for c in candidates if (c / name).exists()), None)
    if base is None and checkpoint:
        from biolm.checkpoints import resolve_pretrained

        base = resolve_pretrained(checkpoint)
    base = base or candidates[0]
    weights = base / name
    if not weights.exists():
        source = f"the checkpoint {checkpoint}" if checkpoint else "the run it was trained from"
        raise BiolmError(
            f"{adapter_dir}: its base weights {weights} are missing (the adapter needs {source}; "
            "biolm adapter merge writes a run that does not)"
        )
    if file_sha256(weights) != record["sha256"]:
        raise BiolmError(f"{adapter_dir}: the base weights {weights} changed since the adapter was trained (SHA-256 differs)")
    return base


def save_adapter(model: torch.nn.Module, adapter_dir: Path) -> None:
    """Write peft's adapter files (LoRA weights + head) into ``adapter_dir``, replacing them atomically."""
    adapter_dir = Path(adapter_dir)
    adapter_dir.mkdir(parents=True, exist_ok=True)
    staging = adapter_dir.with_name(f".{adapter_dir.name}.writing")
    shutil.rmtree(staging, ignore_errors=True)
    model.save_pretrained(str(staging), safe_serialization=True)
    for name in ("adapter_model.safetensors", "adapter_config.json"):
        (staging / name).replace(adapter_dir / name)  # each file swapped in atomically
    shutil.rmtree(staging, ignore_errors=True)


def load_adapter(model: torch.nn.Module, adapter_dir: Path) -> torch.nn.Module:
    """Wrap a base `SequenceModel` (base weights already loaded) with the saved adapter, for inference."""
    from peft import PeftModel

    return PeftModel.from_pretrained(model, str(adapter_dir), is_trainable=False)


def adapter_bytes(adapter_dir: Path) -> int:
    """Size of the saved adapter weights."""
    return (Path(adapter_dir) / "adapter_model.safetensors").stat().st_size

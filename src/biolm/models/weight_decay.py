"""AdamW parameter groups: which parameters are decayed, declared by the model itself.

In: a model (`SequenceModel`, `LanguageModel`, or either wrapped by peft for LoRA). Out: a list
of optimiser parameter groups (`params`, `param_names`, `weight_decay`, and `lr` for modules
given their own learning rate), covering every trainable parameter once.

A parameter is not decayed when
- it has fewer than 2 dimensions (biases, LayerNorm scales and shifts),
- it belongs to an `nn.Embedding` (token and position tables; an LM head tied to one too), or
- its name starts with a prefix that a submodule declares through `no_weight_decay()`
  (prefixes relative to that submodule), e.g. `HyenaEncoder`'s implicit-filter MLP and
  positional features.
Everything else is decayed with `weight_decay`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn


def _unwrapped(model: nn.Module) -> nn.Module:
    """The model peft wraps (`base_model.model`); LoRA layers stay inside it, so names are the model's own."""
    get_base_model = getattr(model, "get_base_model", None)
    return get_base_model() if callable(get_base_model) else model


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _no_decay_prefixes(model: nn.Module) -> set[str]:
    """Name prefixes (relative to the unwrapped model) that submodules exempt from weight decay."""
    prefixes = set()
    for module_name, module in _unwrapped(model).named_modules():
        declared = getattr(module, "no_weight_decay", None)
        if callable(declared):
            prefixes |= {f"{module_name}.{prefix}" if module_name else prefix for prefix in declared()}
    return prefixes


def parameter_groups(
    model: nn.Module,
    weight_decay: float,
    lr_by_module: Mapping[str, float] | None = None,
) -> list[dict[str, Any]]:
    """Split the trainable parameters of `model` into AdamW groups.

    Args:
        model: the network, possibly peft-wrapped (its `get_base_model()` is used, so names
            are those of the unwrapped model, e.g. `head.out.modules_to_save.default.weight`).
        weight_decay: decay of the decayed groups.
        lr_by_module: learning rate per submodule name of the unwrapped model, e.g.
            `{"head": 1e-2}` for a new sequence head on a pretrained trunk; other parameters
            take the optimiser's default `lr`.

    Returns:
        Non-empty groups, each with `params`, `param_names`, `weight_decay` (0.0 for exempt
        parameters) and `lr` when the group belongs to a module of `lr_by_module`. Frozen
        parameters (`requires_grad=False`) are left out; tied parameters appear once.
    """
    base = _unwrapped(model)
    lr_by_module = dict(lr_by_module or {})
    exempt_prefixes = _no_decay_prefixes(base)
    embedding_params = {
        id(param) for module in base.modules() if isinstance(module, nn.Embedding) for param in module.parameters()
    }
    groups: dict[tuple[bool, str | None], dict[str, Any]] = {}
    for name, param in base.named_parameters():
        if not param.requires_grad:
            continue
        exempt = (
            param.ndim < 2
            or id(param) in embedding_params
            or any(_under(name, prefix) for prefix in exempt_prefixes)
        )
        module = next((key for key in lr_by_module if _under(name, key)), None)
        group = groups.get((exempt, module))
        if group is None:
            group = {"params": [], "param_names": [], "weight_decay": 0.0 if exempt else weight_decay}
            if module is not None:
                group["lr"] = lr_by_module[module]
            groups[(exempt, module)] = group
        group["params"].append(param)
        group["param_names"].append(name)
    return list(groups.values())

"""Building a model's Config dataclass from the flat ``model.trunk.*`` keys of a Hydra config."""

from __future__ import annotations

from dataclasses import fields
from typing import Any, TypeVar

from biolm.errors import BiolmError

C = TypeVar("C")


def config_from_kwargs(config_cls: type[C], kwargs: dict[str, Any], owner: str) -> C:
    """``config_cls(**kwargs)``, naming an unknown key as a ``model.trunk.<key>`` error.

    Args:
        config_cls: the dataclass (e.g. `BertConfig`).
        kwargs: the trunk options from the config.
        owner: the trunk class name, for the message.
    """
    known = {f.name for f in fields(config_cls)}
    unknown = sorted(set(kwargs) - known)
    if unknown:
        raise BiolmError(f"model.trunk.{unknown[0]}: unknown {owner} option (accepted: {', '.join(sorted(known))})")
    return config_cls(**kwargs)

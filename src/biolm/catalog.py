"""The model families biolm knows (`biolm models`): one row per ``configs/model/*.yaml`` with its
published source and whether ``model.pretrained`` imports it."""

from __future__ import annotations

import logging
import re
from typing import Any

import torch
from omegaconf import OmegaConf

log = logging.getLogger(__name__)
_HUB_ID_IN_PARENTHESES = re.compile(r"\(([A-Za-z0-9][\w.-]*/[\w.-]+)\)")  # "(LongSafari/hyenadna-tiny-1k-seqlen)"


def model_catalog(vocab_size: int) -> list[dict[str, Any]]:
    """The model families biolm knows: one row per configs/model/*.yaml (`biolm models`).

    Args:
        vocab_size: the vocabulary the parameter counts assume (the embedding scales with it).

    Returns:
        Rows with ``name`` (the config, as in ``model=<name>``), ``trunk`` (class name), ``source``
        (the Hub id its first comment names in parentheses, else None), ``parameters`` (trunk + a
        one-output head, counted on the meta device: nothing is allocated; None if it does not build)
        and ``pretrained`` (whether ``model.pretrained=<folder or Hub id>`` can import it).
    """
    from hydra.utils import get_class, instantiate

    from biolm.resources import config_dir

    rows = []
    for path in sorted((config_dir() / "model").glob("*.yaml")):
        cfg = OmegaConf.load(path)
        target = str(OmegaConf.select(cfg, "trunk._target_") or "")
        first_comment = next(iter(path.read_text().splitlines()), "")
        source = _HUB_ID_IN_PARENTHESES.search(first_comment) if first_comment.startswith("#") else None
        try:
            with torch.device("meta"):
                trunk = instantiate(cfg.trunk, vocab_size=vocab_size, pad_token_id=0)
                parameters = sum(p.numel() for p in trunk.parameters()) + trunk.hidden_size + 1
            importer = callable(getattr(get_class(target), "from_pretrained", None))
        except Exception as exc:  # noqa: BLE001 - a config that does not build is listed, not fatal: the contract tests name it
            log.warning("configs/model/%s: does not build (%s)", path.name, (str(exc).splitlines() or [type(exc).__name__])[0][:200])
            parameters, importer = None, False
        rows.append({"name": path.stem, "trunk": target.rsplit(".", 1)[-1], "source": source[1] if source else None,
                     "parameters": parameters, "pretrained": importer})
    return rows

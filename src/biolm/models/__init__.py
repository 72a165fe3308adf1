"""Native model zoo: trunks, heads and the builder that composes them from a model config.

A model config (configs/model/*.yaml) has `trunk` (a `_target_` class built with
`vocab_size` and `pad_token_id` from the tokenizer), `head` (`SequenceHead` options) and
`pretrained` (null, or a Hugging Face checkpoint the trunk is imported from: a local folder, or a
Hub id ``org/name`` downloaded by `biolm.models.hub.resolve_pretrained`).
`build_sequence_model` turns it into a `SequenceModel`:
`(B, L)` ids + `(B, L)` mask -> `ModelOutput` with logits `(B, num_outputs)`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

from hydra.errors import InstantiationException
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf, open_dict
from torch import nn

from biolm.errors import BiolmError, find_user_error
from biolm.models.bert import BertConfig, BertEncoder, alibi_bias, alibi_slopes
from biolm.models.cnn import CnnConfig, CnnEncoder
from biolm.models.esm import EsmConfig, EsmEncoder
from biolm.models.heads import (
    LanguageModel,
    MaskedLMHead,
    ModelOutput,
    SequenceHead,
    SequenceModel,
    SequenceModelOutput,
    load_hf_mlm_head,
)
from biolm.models.hub import detect_family, read_hf_folder, resolve_pretrained
from biolm.models.hyena import (
    HyenaConfig,
    HyenaEncoder,
    HyenaLMHead,
    HyenaOperator,
    fft_long_conv,
)
from biolm.models.hyena_hub import hyena_state_dict_from_hf
from biolm.models.weight_decay import parameter_groups

__all__ = [
    "BertConfig",
    "BertEncoder",
    "CnnConfig",
    "CnnEncoder",
    "EsmConfig",
    "EsmEncoder",
    "HyenaConfig",
    "HyenaEncoder",
    "HyenaLMHead",
    "HyenaOperator",
    "ModelOutput",
    "SequenceHead",
    "SequenceModel",
    "SequenceModelOutput",
    "alibi_bias",
    "alibi_slopes",
    "build_sequence_model",
    "build_language_model",
    "LanguageModel",
    "MaskedLMHead",
    "fft_long_conv",
    "hyena_state_dict_from_hf",
    "parameter_groups",
    "trunk_config",
]

log = logging.getLogger(__name__)


def _build_trunk(cfg: DictConfig, vocab_size: int, pad_token_id: int):
    if cfg.get("trunk") is None or "_target_" not in cfg.trunk:
        raise BiolmError("model.trunk._target_: missing (name the trunk class to build)")
    if cfg.get("pretrained") is not None:
        return _pretrained_trunk(cfg, vocab_size, pad_token_id)
    try:
        return instantiate(cfg.trunk, vocab_size=vocab_size, pad_token_id=pad_token_id)
    except InstantiationException as exc:
        user_error = find_user_error(exc)
        if user_error is not None:
            raise user_error from None
        raise BiolmError(f"model.trunk: could not build {cfg.trunk._target_!r}: {exc}") from exc


def _pretrained_trunk(cfg: DictConfig, vocab_size: int, pad_token_id: int) -> nn.Module:
    """The checkpoint family's `from_pretrained(model.pretrained)`; `model.trunk` passes run-time options.

    The family is read from the checkpoint's config.json (`hub.detect_family`): a folder of another
    family than ``model.trunk._target_`` (often just the default ``model=``) is loaded by its own
    family, without the trunk options, which belong to the other one (logged).
    """
    target = str(cfg.trunk._target_)
    folder = resolve_pretrained(cfg.pretrained)
    detected = detect_family(folder)
    options = OmegaConf.to_container(cfg.trunk, resolve=True)
    options.pop("_target_")
    if detected is not None and detected != target:
        log.info("model.pretrained=%s holds a %s checkpoint (config.json); using it instead of %s", cfg.pretrained, detected.rsplit(".", 1)[-1], target.rsplit(".", 1)[-1])
        target, options = detected, {}
    try:
        trunk_cls = get_class(target)
    except Exception as exc:  # hydra raises ImportError, AttributeError or ValueError
        raise BiolmError(f"model.trunk._target_: cannot import {target!r} ({exc})") from None
    if not callable(getattr(trunk_cls, "from_pretrained", None)):
        raise BiolmError(
            f"model.pretrained: {trunk_cls.__name__} has no checkpoint importer "
            "(importers: BertEncoder, EsmEncoder, HyenaEncoder); set model.pretrained=null to train it from scratch"
        )
    log.info("model.pretrained=%s: %s architecture from its config.json (model.trunk shape keys are ignored)", cfg.pretrained, trunk_cls.__name__)
    return trunk_cls.from_pretrained(str(folder), vocab_size=vocab_size, pad_token_id=pad_token_id, **options)


def trunk_config(trunk: nn.Module) -> dict[str, Any]:
    """The `model.trunk` config that rebuilds `trunk`'s architecture: `_target_` and its Config fields.

    For a trunk imported with `model.pretrained`, saving this (with `pretrained: null`) in a run
    folder lets the run be rebuilt without the checkpoint folder.
    """
    cls = type(trunk)
    return {"_target_": f"{cls.__module__}.{cls.__qualname__}", **asdict(trunk.config)}


def pin_pretrained(model_cfg: DictConfig, trunk: nn.Module) -> None:
    """After a trunk was imported with ``model.pretrained``: write its architecture into
    ``model_cfg.trunk`` (in place) and clear ``pretrained``, so that the run folder saving this
    config rebuilds without the checkpoint folder; ``model.pretrained_from`` records the source."""
    if not model_cfg.get("pretrained"):
        return
    with open_dict(model_cfg):
        model_cfg.pretrained_from = str(model_cfg.pretrained)
        model_cfg.trunk = trunk_config(trunk)
        model_cfg.pretrained = None


def build_language_model(
    model_cfg: DictConfig | Mapping[str, Any], vocab_size: int, pad_token_id: int, require_lm_head: bool = False
) -> LanguageModel:
    """Build trunk + LM head (for masked or causal LM pretraining) from a model config.

    Only ``model_cfg.trunk`` and ``model_cfg.pretrained`` are used; the sequence head settings are
    ignored. With ``pretrained`` set, the trunk is imported as in `build_sequence_model`, and so is
    the checkpoint's LM head: the trunk's own (ESM, HyenaDNA) or a BERT-style ``cls.predictions.*``
    head loaded into the `MaskedLMHead` (DNABERT, DNABERT-2). A checkpoint without one gets a new
    head (logged), or an error with ``require_lm_head`` (zero-shot scores need the trained head).
    """
    cfg = model_cfg if isinstance(model_cfg, DictConfig) else OmegaConf.create(dict(model_cfg))
    model = LanguageModel(_build_trunk(cfg, vocab_size, pad_token_id), vocab_size)
    if cfg.get("pretrained") is not None and model.head is not None:
        _, state_dict = read_hf_folder(resolve_pretrained(cfg.pretrained))
        if not load_hf_mlm_head(model.head, state_dict, str(cfg.pretrained)):
            if require_lm_head:
                raise BiolmError(f"model.pretrained={cfg.pretrained}: the checkpoint has no MLM head (cls.predictions.*) to score with")
            log.warning("model.pretrained=%s has no MLM head (cls.predictions.*): the LM head starts untrained", cfg.pretrained)
    return model


def build_sequence_model(
    model_cfg: DictConfig | Mapping[str, Any],
    vocab_size: int,
    pad_token_id: int,
    num_outputs: int,
) -> SequenceModel:
    """Build trunk + sequence head from a model config.

    With `model_cfg.pretrained` set (a local Hugging Face checkpoint folder), the trunk is
    `<trunk class>.from_pretrained(pretrained)`: its architecture comes from the checkpoint's
    config.json, so shape keys under `trunk` are ignored (a warning names those that differ),
    while run-time options (dropouts, gradient_checkpointing) still apply. The tokenizer's
    vocabulary size must equal the checkpoint's. A causal checkpoint (HyenaDNA) under a config
    that pools ``cls`` pools ``last`` instead, written back into ``model_cfg.head``.

    Args:
        model_cfg: mapping with `trunk` (a `_target_` config), `head` (SequenceHead kwargs) and
            optionally `pretrained`.
        vocab_size: tokenizer vocabulary size.
        pad_token_id: tokenizer pad id.
        num_outputs: number of classes or regression targets.

    Returns:
        The composed `SequenceModel`.

    Raises:
        BiolmError: a missing key, an unknown trunk class or option, a bad head option, or a
            `pretrained` checkpoint that cannot be read or does not fit (or a trunk without an
            importer).
    """
    cfg = model_cfg if isinstance(model_cfg, DictConfig) else OmegaConf.create(dict(model_cfg))
    for key in ("trunk", "head"):
        if cfg.get(key) is None:
            raise BiolmError(f"model.{key}: missing (a model config needs both trunk and head)")
    trunk = _build_trunk(cfg, vocab_size, pad_token_id)
    if isinstance(getattr(trunk, "lm_head", None), nn.Module) and hasattr(trunk.config, "lm_head"):
        # a sequence model never calls the LM head an imported checkpoint brought along: drop it (no unused
        # parameters under DDP, none counted as trainable), and record that in the trunk's config
        trunk.lm_head = None
        trunk.config.lm_head = False
    head_kwargs = OmegaConf.to_container(cfg.head, resolve=True)
    if getattr(trunk, "causal", False) and head_kwargs.get("pooling") == "cls" and cfg.get("pretrained"):
        # the model config was written for another family; the checkpoint's decides (recorded in cfg)
        log.warning("model.pretrained=%s: %s is causal, so model.head.pooling=cls becomes last", cfg.pretrained, type(trunk).__name__)
        head_kwargs["pooling"] = "last"
        with open_dict(cfg):
            cfg.head.pooling = "last"
    if getattr(trunk, "causal", False) and head_kwargs.get("pooling") == "cls":
        raise BiolmError(
            f"model.head.pooling=cls: {type(trunk).__name__} is causal, so its first token has seen nothing of the sequence; "
            "use model.head.pooling=last (or mean)"
        )
    try:
        head = SequenceHead(trunk.hidden_size, num_outputs, **head_kwargs)
    except TypeError as exc:
        raise BiolmError(
            f"model.head: bad option in {sorted(head_kwargs)} (accepted: pooling, dropout)"
        ) from exc
    return SequenceModel(trunk, head)

"""Native model zoo: trunks, heads and the builder that composes them from a model config.

A model config (configs/model/*.yaml) has two keys: `trunk` (a `_target_` class built with
`vocab_size` and `pad_token_id` from the tokenizer) and `head` (`SequenceHead` options).
`build_sequence_model` turns it into a `SequenceModel`:
`(B, L)` ids + `(B, L)` mask -> logits `(B, num_outputs)`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from biolm.errors import BiolmError, find_user_error
from biolm.models.bert import BertConfig, BertEncoder, alibi_bias, alibi_slopes
from biolm.models.cnn import CnnConfig, CnnEncoder
from biolm.models.heads import (
    LanguageModel,
    MaskedLMHead,
    SequenceHead,
    SequenceModel,
    SequenceModelOutput,
)
from biolm.models.hyena import (
    HyenaConfig,
    HyenaEncoder,
    HyenaLMHead,
    HyenaOperator,
    fft_long_conv,
)
from biolm.models.hyena_hub import hyena_state_dict_from_hf

__all__ = [
    "BertConfig",
    "BertEncoder",
    "CnnConfig",
    "CnnEncoder",
    "HyenaConfig",
    "HyenaEncoder",
    "HyenaLMHead",
    "HyenaOperator",
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
]


def _build_trunk(cfg: DictConfig, vocab_size: int, pad_token_id: int):
    if cfg.get("trunk") is None or "_target_" not in cfg.trunk:
        raise BiolmError("model.trunk._target_: missing (name the trunk class to build)")
    try:
        return instantiate(cfg.trunk, vocab_size=vocab_size, pad_token_id=pad_token_id)
    except InstantiationException as exc:
        user_error = find_user_error(exc)
        if user_error is not None:
            raise user_error from None
        raise BiolmError(f"model.trunk: could not build {cfg.trunk._target_!r}: {exc}") from exc


def build_language_model(model_cfg: DictConfig | Mapping[str, Any], vocab_size: int, pad_token_id: int) -> LanguageModel:
    """Build trunk + LM head (for masked or causal LM pretraining) from a model config.

    Only ``model_cfg.trunk`` is used; the sequence head settings are ignored.
    """
    cfg = model_cfg if isinstance(model_cfg, DictConfig) else OmegaConf.create(dict(model_cfg))
    return LanguageModel(_build_trunk(cfg, vocab_size, pad_token_id), vocab_size)


def build_sequence_model(
    model_cfg: DictConfig | Mapping[str, Any],
    vocab_size: int,
    pad_token_id: int,
    num_outputs: int,
) -> SequenceModel:
    """Build trunk + sequence head from a model config.

    Args:
        model_cfg: mapping with `trunk` (a `_target_` config) and `head` (SequenceHead kwargs).
        vocab_size: tokenizer vocabulary size.
        pad_token_id: tokenizer pad id.
        num_outputs: number of classes or regression targets.

    Returns:
        The composed `SequenceModel`.

    Raises:
        BiolmError: a missing key, an unknown trunk class or option, or a bad head option.
    """
    cfg = model_cfg if isinstance(model_cfg, DictConfig) else OmegaConf.create(dict(model_cfg))
    for key in ("trunk", "head"):
        if cfg.get(key) is None:
            raise BiolmError(f"model.{key}: missing (a model config needs both trunk and head)")
    trunk = _build_trunk(cfg, vocab_size, pad_token_id)
    head_kwargs = OmegaConf.to_container(cfg.head, resolve=True)
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

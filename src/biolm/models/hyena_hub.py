"""Import of Hugging Face HyenaDNA checkpoints (`LongSafari/hyenadna-*-hf`) into `HyenaEncoder`.

In: a HyenaDNA state dict (`hyena.backbone.*` / `backbone.*` names). Out: the same tensors under
`HyenaEncoder` names, ready for a strict `load_state_dict`.
"""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor

from biolm.errors import BiolmError

_HF_PREFIXES = ("hyena.backbone.", "backbone.")
# HyenaDNAForSequenceClassification's head: the task trains its own.
_HF_DROPPED_PREFIXES = ("score.",)


def hyena_state_dict_from_hf(sd: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Map a Hugging Face HyenaDNA state dict onto `HyenaEncoder` names.

    `hyena.backbone.X` (HyenaDNAForCausalLM) or `backbone.X` (HyenaDNAModel) becomes `X`;
    `lm_head.weight` is kept (filled from the embedding when absent, i.e. tied). Only names
    change: the tensors are the checkpoint's own, and the encoder's config (d_model, n_layer,
    max_seq_len, ...) must match the checkpoint's for a strict load.

    Args:
        sd: checkpoint tensors.

    Returns:
        A state dict for `HyenaEncoder.load_state_dict(..., strict=True)`.

    Raises:
        BiolmError: a tensor name outside the HyenaDNA layout.
    """
    out: dict[str, Tensor] = {}
    for name, tensor in sd.items():
        if name.startswith(_HF_DROPPED_PREFIXES):
            continue
        if name == "lm_head.weight":
            out[name] = tensor
            continue
        prefix = next((p for p in _HF_PREFIXES if name.startswith(p)), None)
        if prefix is None:
            raise BiolmError(
                f"HyenaDNA checkpoint: unexpected tensor {name!r} (accepted: names under "
                f"{', '.join(_HF_PREFIXES)} and lm_head.weight)"
            )
        out[name.removeprefix(prefix)] = tensor
    if "lm_head.weight" not in out and "embeddings.word_embeddings.weight" in out:
        out["lm_head.weight"] = out["embeddings.word_embeddings.weight"]
    return out

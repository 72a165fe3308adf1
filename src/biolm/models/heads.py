"""Heads and trunk + head composition; both compositions return one `ModelOutput`.

`SequenceHead`: `(B, L, D)` hidden states + `(B, L)` mask -> pooled `(B, D)` -> logits
`(B, num_outputs)` (class scores, or values for regression). `SequenceModel` wires a trunk
(any module with `hidden_size`, `max_tokens` and `forward(input_ids, attention_mask)`) to a head;
`LanguageModel` wires a trunk to a per-token LM head: `(B, L)` ids -> `(B, L, V)` logits.
The task computes the loss.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from biolm.errors import BiolmError

POOLINGS = ("cls", "mean", "max", "last")


@dataclass
class ModelOutput:
    """What every trunk + head module (`SequenceModel`, `LanguageModel`) returns.

    Attributes:
        logits: `SequenceModel`: `(B, num_outputs)` class scores or regression values.
            `LanguageModel`: `(B, L, V)` token logits, or `(N, V)` at N selected positions.
        hidden: `(B, L, D)` trunk hidden states (all positions).
        pooled: `(B, D)` pooled sequence representation before head dropout (`SequenceModel`
            only; None from a `LanguageModel`).
        loss: filled in by the task, None from the model.
    """

    logits: Tensor
    hidden: Tensor
    pooled: Tensor | None = None
    loss: Tensor | None = None


SequenceModelOutput = ModelOutput  # the earlier name, still imported outside biolm.models


def pool(hidden: Tensor, attention_mask: Tensor, pooling: str) -> Tensor:
    """Pool `(B, L, D)` hidden states over real tokens to `(B, D)`.

    Args:
        hidden: `(B, L, D)` hidden states.
        attention_mask: `(B, L)` bool or 0/1, 1 = real token.
        pooling: "cls" (position 0), "mean" or "max" (both over real tokens only), or
            "last" (the last real token: for causal trunks, the only one that saw the whole
            sequence).

    Returns:
        `(B, D)` pooled states.
    """
    if pooling == "cls":
        return hidden[:, 0]
    if pooling == "last":
        # Highest masked-in index per row: right or left padding alike; an all-pad row gives 0.
        positions = torch.arange(hidden.shape[1], device=hidden.device)
        last = (attention_mask.bool() * positions).amax(dim=1)  # (B,)
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
    keep = attention_mask.bool()[..., None]  # (B, L, 1)
    if pooling == "mean":
        # where() rather than multiply: a NaN at a pad position must not leak into the sum.
        total = torch.where(keep, hidden, 0.0).sum(dim=1)
        return total / keep.sum(dim=1).clamp(min=1).to(hidden.dtype)
    if pooling == "max":
        return torch.where(keep, hidden, torch.finfo(hidden.dtype).min).amax(dim=1)
    raise BiolmError(
        f"model.head.pooling: unknown value {pooling!r} (accepted: {', '.join(POOLINGS)})"
    )


class SequenceHead(nn.Module):
    """Pool, dropout, linear: `(B, L, D)` -> `(B, num_outputs)` logits and `(B, D)` pooled.

    Args:
        hidden_size: trunk width D.
        num_outputs: number of classes (or regression targets).
        pooling: "cls", "mean", "max" or "last".
        dropout: dropout before the output projection.
    """

    def __init__(self, hidden_size: int, num_outputs: int, pooling: str = "cls", dropout: float = 0.1):
        super().__init__()
        if pooling not in POOLINGS:
            raise BiolmError(
                f"model.head.pooling: unknown value {pooling!r} (accepted: {', '.join(POOLINGS)})"
            )
        self.pooling = pooling
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(hidden_size, num_outputs)

    def forward(self, hidden: Tensor, attention_mask: Tensor) -> tuple[Tensor, Tensor]:
        """Return `(logits (B, num_outputs), pooled (B, D))`."""
        pooled = pool(hidden, attention_mask, self.pooling)
        return self.out(self.dropout(pooled)), pooled


class SequenceModel(nn.Module):
    """Trunk + `SequenceHead`: `(B, L)` ids + mask -> `ModelOutput`.

    Args:
        trunk: encoder with `hidden_size`, `max_tokens` and `forward(input_ids, attention_mask)`.
        head: the sequence head.
    """

    def __init__(self, trunk: nn.Module, head: SequenceHead):
        super().__init__()
        self.trunk = trunk
        self.head = head

    @property
    def max_tokens(self) -> int | None:
        """Longest input the trunk accepts in tokens (None: no hard limit)."""
        return self.trunk.max_tokens

    def forward(self, input_ids: Tensor, attention_mask: Tensor, logits_only: bool = False) -> ModelOutput:
        """Run trunk and head.

        Args:
            input_ids: `(B, L)` token ids.
            attention_mask: `(B, L)` bool or 0/1, 1 = real token.
            logits_only: the caller reads the logits alone (prediction): a CLS-pooled head over a trunk that
                can compute its first position alone (``first_token_only``, BERT) skips the rest of the last
                layer. The logits are the same; ``hidden`` is then `(B, 1, D)`.

        Returns:
            `ModelOutput` with logits `(B, num_outputs)`, hidden and pooled; loss is None.
        """
        if logits_only and self.head.pooling == "cls" and getattr(self.trunk, "first_token_only", False):
            hidden = self.trunk(input_ids, attention_mask, first_token_only=True)  # (B, 1, D)
            logits, pooled = self.head(hidden, attention_mask[:, :1])
            return ModelOutput(logits=logits, hidden=hidden, pooled=pooled)
        hidden = self.trunk(input_ids, attention_mask)
        logits, pooled = self.head(hidden, attention_mask)
        return ModelOutput(logits=logits, hidden=hidden, pooled=pooled)


class MaskedLMHead(nn.Module):
    """BERT's LM head: dense -> GELU -> LayerNorm -> decoder to the vocabulary.

    `(B, L, D)` hidden -> `(B, L, V)` logits. The decoder weight is tied to the input embedding
    when one is given (as BERT, DNABERT and DNABERT-2 do); names follow `cls.predictions.*`
    of those checkpoints after dropping the prefix.
    """

    def __init__(self, hidden_size: int, vocab_size: int, tied_embedding: nn.Embedding | None = None, layer_norm_eps: float = 1e-12):
        super().__init__()
        self.transform = nn.Linear(hidden_size, hidden_size)
        self.norm = nn.LayerNorm(hidden_size, eps=layer_norm_eps)
        self.decoder = nn.Linear(hidden_size, vocab_size)
        if tied_embedding is not None:
            self.decoder.weight = tied_embedding.weight

    def forward(self, hidden: Tensor) -> Tensor:
        return self.decoder(self.norm(nn.functional.gelu(self.transform(hidden))))


# A BERT / MosaicBERT (DNABERT, DNABERT-2) checkpoint's MLM head (`cls.predictions.*`) -> `MaskedLMHead` names
HF_MLM_HEAD_NAMES = {
    "cls.predictions.transform.dense.weight": "transform.weight",
    "cls.predictions.transform.dense.bias": "transform.bias",
    "cls.predictions.transform.LayerNorm.weight": "norm.weight",
    "cls.predictions.transform.LayerNorm.bias": "norm.bias",
    "cls.predictions.transform.LayerNorm.gamma": "norm.weight",
    "cls.predictions.transform.LayerNorm.beta": "norm.bias",
    "cls.predictions.decoder.weight": "decoder.weight",
    "cls.predictions.decoder.bias": "decoder.bias",
    "cls.predictions.bias": "decoder.bias",
}


def load_hf_mlm_head(head: MaskedLMHead, state_dict: Mapping[str, Tensor], source: str) -> bool:
    """Load a checkpoint's ``cls.predictions.*`` tensors into ``head`` (strict); False when it has none.

    The decoder is tied to the input embedding (as in BERT, DNABERT and DNABERT-2): a stored decoder
    weight must equal that embedding.

    Raises:
        BiolmError: some head tensors missing, wrongly shaped, or an untied decoder.
    """
    found = {HF_MLM_HEAD_NAMES[name]: tensor for name, tensor in state_dict.items() if name in HF_MLM_HEAD_NAMES}
    if not found:
        return False
    tied = head.decoder.weight
    decoder = found.pop("decoder.weight", None)
    if decoder is not None and (decoder.shape != tied.shape or not torch.equal(decoder.to(tied.dtype), tied.detach())):
        raise BiolmError(f"{source}: its MLM decoder is not tied to the input embedding; biolm's MaskedLMHead is")
    expected = {name: t.shape for name, t in head.state_dict().items() if name != "decoder.weight"}
    wrong = sorted(name for name in expected if name not in found or found[name].shape != expected[name])
    if wrong:
        raise BiolmError(f"{source}: its MLM head (cls.predictions.*) does not fit: {', '.join(wrong)} missing or wrongly shaped")
    head.load_state_dict({**found, "decoder.weight": tied.detach()}, strict=True)
    return True


class LanguageModel(nn.Module):
    """Trunk + per-token LM head: `(B, L)` ids + mask -> `ModelOutput` with `(B, L, V)` logits.

    A trunk that brings its own LM head (``lm_logits``, e.g. HyenaDNA's tied ``lm_head``) uses it;
    any other trunk gets a `MaskedLMHead` tied to ``trunk.embeddings.word_embeddings``, with the
    trunk's ``layer_norm_eps`` when it has one (as transformers' BERT head does).
    """

    def __init__(self, trunk: nn.Module, vocab_size: int):
        super().__init__()
        self.trunk = trunk
        self.vocab_size = vocab_size
        if hasattr(trunk, "lm_logits"):
            self.head = None
        else:
            embedding = getattr(getattr(trunk, "embeddings", None), "word_embeddings", None)
            # BERT's head LayerNorm takes the model's epsilon (GENA-LM large: 1e-5; BERT, DNABERT, DNABERT-2: 1e-12)
            eps = getattr(getattr(trunk, "config", None), "layer_norm_eps", 1e-12)
            self.head = MaskedLMHead(trunk.hidden_size, vocab_size, embedding, layer_norm_eps=eps)

    @property
    def max_tokens(self) -> int | None:
        """Longest input the trunk accepts in tokens (None: no hard limit)."""
        return self.trunk.max_tokens

    def forward(self, input_ids: Tensor, attention_mask: Tensor, positions: Tensor | None = None) -> ModelOutput:
        """`(B, L)` ids + mask -> `ModelOutput` with logits `(B, L, V)`, or `(N, V)` at the N True
        ``positions`` `(B, L)`; `hidden` is `(B, L, D)` either way.

        Scoring only the predicted positions (MLM's masked 15%) spares the vocabulary projection
        of every other token, most of the cost with 4096 k-mers or BPE tokens.
        """
        hidden = self.trunk(input_ids, attention_mask)
        scored = hidden if positions is None else hidden[positions]  # (B, L, D) or (N, D)
        logits = self.trunk.lm_logits(scored) if self.head is None else self.head(scored)
        return ModelOutput(logits=logits[..., : self.vocab_size], hidden=hidden)

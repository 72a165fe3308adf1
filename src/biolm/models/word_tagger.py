"""The contract of a word-level sequence tagger (named-entity recognition and other IOB2 tagging).

A tagger reads one sentence as a list of words and scores one tag per word. It owns how words
become tensors (a word/character vocabulary, or a Hugging Face sub-word tokenizer), so the NER
task (`biolm.text.ner`) trains and decodes every tagger the same way:

    item = tagger.encode(words)                   # one sentence -> features (no batch dimension)
    batch = tagger.collate([item, ...])           # padded tensors, incl. "word_mask" (B, T_words) bool
    loss = tagger.loss(batch, tags)               # tags (B, T_words) long, -100 on padding -> scalar
    paths = tagger.decode(batch)                  # list (B) of lists of tag ids, one per real word
    spans = tagger.windows(words)                 # [(start, end), ...] word ranges that fit the model

Implementations: `biolm.models.bilstm_crf.BiLstmCrf` (word + character features, BiLSTM, CRF) and
`biolm.models.hf_tagger.HfTokenTagger` (any local Hugging Face encoder, first sub-token per word).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn


def repair_iob2_names(tags: list[str]) -> list[str]:
    """IOB2 tag names made valid: an ``I-X`` that does not continue ``X`` (after ``O``, another type, or
    first) becomes ``B-X``, the usual post-processing of per-word argmax or merged windows."""
    repaired: list[str] = []
    for tag in tags:
        previous = repaired[-1] if repaired else "O"
        repaired.append("B-" + tag[2:] if tag.startswith("I-") and previous[2:] != tag[2:] else tag)  # "O"[2:] is no type
    return repaired


class WordTagger(nn.Module):
    """Base class of the word-level taggers (see the module docstring)."""

    #: tag names by id (IOB2: ``O``, ``B-Disease``, ``I-Disease``, ...), set by the subclass
    tags: list[str]

    def encode(self, words: list[str]) -> dict:
        """One sentence (``words``, non-empty strings) -> its features, without a batch dimension."""
        raise NotImplementedError

    def collate(self, items: list[dict]) -> dict[str, torch.Tensor]:
        """Encoded sentences -> a padded batch; always holds ``word_mask`` ``(B, T_words)`` bool."""
        raise NotImplementedError

    def loss(self, batch: dict[str, torch.Tensor], tags: torch.Tensor) -> torch.Tensor:
        """Mean loss (per sentence for a CRF, per word for a token classifier); ``tags`` ``(B, T_words)`` long, -100 on padding."""
        raise NotImplementedError

    def decode(self, batch: dict[str, torch.Tensor]) -> list[list[int]]:
        """Best tag ids per sentence, one per real word."""
        raise NotImplementedError

    def windows(self, words: list[str]) -> list[tuple[int, int]]:
        """Word ranges ``[start, end)`` that each fit the model; the default is the whole sentence."""
        return [(0, len(words))]

    def save_assets(self, folder: Path) -> None:
        """Write what `from_assets` needs besides the weights (vocabularies, tokenizer, encoder config)."""
        raise NotImplementedError

    @classmethod
    def from_assets(cls, folder: Path, tags: list[str], **options) -> WordTagger:
        """Rebuild the architecture from `save_assets`'s files (weights are loaded by the caller)."""
        raise NotImplementedError

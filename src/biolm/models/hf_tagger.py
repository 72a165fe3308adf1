"""`HfTokenTagger`: a `WordTagger` on any local Hugging Face encoder, one tag per word from its first sub-token.

In: a sentence as words. `encode` runs the checkpoint's fast tokenizer on the words
(``is_split_into_words=True``, special tokens added, no truncation) and records where each word's
first sub-token sits. Out: ``emissions`` ``(batch, words, n_tags)``, the token-classification logits
``(batch, sub_tokens, n_tags)`` gathered at those positions.

    item = tagger.encode(words)      # {"input_ids": (S,), "first_subtoken": (T_words,)}
    batch = tagger.collate(items)    # input_ids, attention_mask (B, S); first_subtoken, word_mask (B, T_words)
    tagger.emissions(batch)          # (B, T_words, n_tags)

Gathering the first sub-token's logits is the usual "label the first sub-token, -100 on the others"
layout of Hugging Face's token classification, written per word: the cross-entropy over real words
equals `BertForTokenClassification`'s own loss on labels laid out that way.

Sentences longer than ``max_length`` sub-tokens are cut by `windows` into word ranges that fit,
consecutive ones sharing ``stride_words`` words (Hugging Face's stride for long documents, counted
in words so that no word is split across windows).

The encoder weights come from the checkpoint folder; the classifier head (``classifier``) is always
new. `save_assets` writes the encoder config and tokenizer (no weights) so `from_assets` can rebuild
the architecture for a caller that then loads ``state_dict()``. Remote code is never run.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torch.nn.utils.rnn import pad_sequence
from transformers import AutoConfig, AutoModelForTokenClassification, AutoTokenizer, PreTrainedModel
from transformers.utils import logging as hf_logging

from biolm.atomic import atomic_path
from biolm.errors import BiolmError
from biolm.models.word_tagger import WordTagger, repair_iob2_names

log = logging.getLogger(__name__)

ENCODER_FOLDER = "encoder"  # save_assets: HF config + tokenizer files
SETTINGS_FILE = "tagger.json"  # save_assets: max_length, stride_words
IGNORE_INDEX = -100
_ASSET_OPTIONS = ("max_length", "stride_words", "dropout")
_NO_LIMIT = 1_000_000  # tokenizers without a known limit report a huge model_max_length


def repair_iob2(path: list[int], tags: list[str]) -> list[int]:
    """Turn a per-word argmax into valid IOB2: an ``I-X`` that does not continue ``X`` becomes ``B-X``.

    Args:
        path: tag ids, one per word.
        tags: tag names by id.

    Returns:
        The repaired tag ids. An ``I-X`` is kept after ``B-X`` or ``I-X`` and otherwise replaced by
        ``B-X`` (left as is when ``B-X`` is not a tag); every other tag is kept.
    """
    ids = {name: tag_id for tag_id, name in enumerate(tags)}
    names = repair_iob2_names([tags[tag_id] for tag_id in path])
    return [ids.get(name, tag_id) for name, tag_id in zip(names, path, strict=True)]


class HfTokenTagger(WordTagger):
    """A Hugging Face ``AutoModelForTokenClassification`` read word by word (see the module docstring).

    Build it with `from_pretrained` (a checkpoint folder) or `from_assets` (a run's saved assets).

    Args:
        model: the token-classification model, ``config.num_labels == len(tags)``.
        tokenizer: its fast tokenizer (``word_ids()`` maps sub-tokens to words).
        tags: tag names by id.
        max_length: most sub-tokens per encoded sentence, special tokens included.
        stride_words: words shared by consecutive `windows`.
    """

    lora_target_modules = ("query", "value")  # default LoRA targets: BERT-family attention projections
    head_module = "classifier"  # the new head: trainable in full under LoRA (peft's modules_to_save)

    def __init__(self, model: PreTrainedModel, tokenizer, tags: list[str], max_length: int = 256, stride_words: int = 32):
        super().__init__()
        if not getattr(tokenizer, "is_fast", False):
            raise BiolmError(
                f"{type(tokenizer).__name__} is a slow tokenizer: HfTokenTagger needs a fast one (word_ids()); "
                "use a checkpoint with tokenizer.json or one that transformers can convert"
            )
        if tokenizer.pad_token_id is None:
            raise BiolmError(f"{type(tokenizer).__name__} has no padding token: HfTokenTagger needs one to batch sentences")
        if len(tags) != model.config.num_labels:
            raise BiolmError(f"{len(tags)} tags for a model with {model.config.num_labels} labels")
        self.model = model
        self.tokenizer = tokenizer
        self.tags = list(tags)
        self.special_tokens = tokenizer.num_special_tokens_to_add(pair=False)
        limit = _encoder_limit(model, tokenizer)
        if not self.special_tokens < max_length <= limit:
            raise BiolmError(f"max_length={max_length}: accepted {self.special_tokens + 1} to {limit} for this encoder")
        if stride_words < 0:
            raise BiolmError(f"stride_words={stride_words}: accepted 0 or more")
        self.max_length = max_length
        self.stride_words = stride_words

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        tags: list[str],
        *,
        max_length: int = 256,
        stride_words: int = 32,
        dropout: float | None = None,
    ) -> HfTokenTagger:
        """Load a local checkpoint's encoder and tokenizer, with a new classifier head for ``tags``.

        Args:
            path: a Hugging Face checkpoint folder (``config.json``, weights, fast tokenizer files).
            tags: tag names by id (IOB2: ``O``, ``B-X``, ``I-X``, ...).
            max_length: most sub-tokens per encoded sentence, special tokens included.
            stride_words: words shared by consecutive `windows`.
            dropout: the head's dropout (``config.classifier_dropout``); None keeps the checkpoint's.

        Returns:
            The tagger; its head is freshly initialised whatever the checkpoint holds.

        Raises:
            BiolmError: the folder or its config.json is missing, the checkpoint cannot be read as a
                token classifier, encoder weights are missing from it, or its tokenizer is slow.
        """
        folder = _checkpoint_folder(path)
        options = _label_options(tags) | _dropout_option(dropout)
        with quiet_transformers(), _as_user_error(folder):
            tokenizer = _load_tokenizer(folder)
            model, info = AutoModelForTokenClassification.from_pretrained(
                folder, local_files_only=True, output_loading_info=True, ignore_mismatched_sizes=True, **options
            )
        new = set(info["missing_keys"]) | {name for name, *_ in info["mismatched_keys"]}
        missing = sorted(name for name in new if not name.startswith(cls.head_module + "."))
        if missing:
            raise BiolmError(f"{folder}: {len(missing)} encoder weights missing from the checkpoint (first: {missing[0]})")
        _reset_head(model.get_submodule(cls.head_module), model.config)
        tagger = cls(model, tokenizer, tags, max_length=max_length, stride_words=stride_words)
        log.info("%s: %s with a new %d-tag head", folder, type(model).__name__, len(tags))
        return tagger

    @classmethod
    def from_assets(cls, folder: Path, tags: list[str], **options) -> HfTokenTagger:
        """Rebuild the architecture from `save_assets`'s files; the caller loads the weights.

        Args:
            folder: the folder `save_assets` wrote.
            tags: tag names by id; must be the saved config's labels.
            **options: ``max_length``, ``stride_words`` (override the saved ones), ``dropout``.

        Raises:
            BiolmError: a file is missing, the tags differ from the saved ones, or an option is unknown.
        """
        folder = Path(folder)
        unknown = sorted(set(options) - set(_ASSET_OPTIONS))
        if unknown:
            raise BiolmError(f"HfTokenTagger.from_assets: unknown option {unknown[0]!r} (accepted: {', '.join(_ASSET_OPTIONS)})")
        settings_path = folder / SETTINGS_FILE
        if not settings_path.is_file():
            raise BiolmError(f"{settings_path}: missing (written by HfTokenTagger.save_assets)")
        settings = json.loads(settings_path.read_text())
        dropout = options.pop("dropout", None)
        settings.update(options)
        encoder = _checkpoint_folder(folder / ENCODER_FOLDER)
        with _as_user_error(encoder):
            config = AutoConfig.from_pretrained(encoder, local_files_only=True, **_dropout_option(dropout))
            saved = [config.id2label[i] for i in range(config.num_labels)]
            if saved != list(tags):
                raise BiolmError(f"{encoder}: saved for tags {saved}, asked for {list(tags)}")
            model = AutoModelForTokenClassification.from_config(config)
            tokenizer = _load_tokenizer(encoder)
        return cls(model, tokenizer, tags, max_length=settings["max_length"], stride_words=settings["stride_words"])

    def save_assets(self, folder: Path) -> None:
        """Write ``folder/encoder/`` (HF config with the tag names, tokenizer files; no weights) and ``folder/tagger.json``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{ENCODER_FOLDER}.", dir=folder))
        try:
            self.model.config.save_pretrained(staging)
            self.tokenizer.save_pretrained(staging)
            target = folder / ENCODER_FOLDER
            if target.exists():
                shutil.rmtree(target)
            staging.rename(target)
        finally:
            if staging.exists():
                shutil.rmtree(staging)
        with atomic_path(folder / SETTINGS_FILE) as tmp:
            tmp.write_text(json.dumps({"max_length": self.max_length, "stride_words": self.stride_words}, indent=2) + "\n")

    @classmethod
    def for_training(cls, tags: list[str], train_words: list[list[str]], path: str | Path, **options) -> HfTokenTagger:
        """`from_pretrained` in the form the NER recipe instantiates (the training words are not needed)."""
        return cls.from_pretrained(path, tags, **options)

    def encode(self, words: list[str]) -> dict[str, Tensor]:
        """One sentence -> ``input_ids`` ``(S,)`` and ``first_subtoken`` ``(T_words,)`` (positions in input_ids).

        A word the tokenizer turns into no sub-token (a lone control character, for example) takes
        the previous word's position, or position 0 (``[CLS]`` for BERT-family tokenizers) when it
        opens the sentence: it is then tagged like that word.

        Raises:
            BiolmError: the sentence is empty or longer than ``max_length`` sub-tokens (split it with `windows` first).
        """
        if not words:
            raise BiolmError("HfTokenTagger.encode: empty sentence (expected at least one word)")
        pieces = self._tokenize(words, add_special_tokens=True)
        if len(words) == 1 and len(pieces["input_ids"]) > self.max_length:  # one over-long word: its first sub-tokens speak for it
            pieces = self.tokenizer(words, is_split_into_words=True, truncation=True, max_length=self.max_length, verbose=False)
        input_ids = pieces["input_ids"]
        if len(input_ids) > self.max_length:
            raise BiolmError(
                f"a sentence of {len(words)} words is {len(input_ids)} sub-tokens, more than max_length={self.max_length}: "
                "split it with windows() first"
            )
        first = [-1] * len(words)
        for position, word in enumerate(pieces.word_ids()):
            if word is not None and first[word] < 0:
                first[word] = position
        previous = 0
        for word, position in enumerate(first):
            if position < 0:
                first[word] = previous
            else:
                previous = position
        return {"input_ids": torch.tensor(input_ids, dtype=torch.long), "first_subtoken": torch.tensor(first, dtype=torch.long)}

    def windows(self, words: list[str]) -> list[tuple[int, int]]:
        """Word ranges ``[start, end)`` whose sub-tokens (plus special tokens) fit ``max_length``.

        Each window is as long as fits; the next starts ``stride_words`` words before its end (but
        always at least one word later), so consecutive windows overlap by ``stride_words`` words.

        A word alone longer than ``max_length`` allows gets a window of its own, in which `encode` keeps
        its first sub-tokens (a long sequence or URL under a byte-level tokenizer must not stop a whole batch).
        """
        if not words:
            return [(0, 0)]
        counts = [0] * len(words)
        for word in self._tokenize(words, add_special_tokens=False).word_ids():
            if word is not None:
                counts[word] += 1
        budget = self.max_length - self.special_tokens
        spans: list[tuple[int, int]] = []
        start = 0
        while True:
            end, used = start, 0
            while end < len(words) and used + counts[end] <= budget:
                used += counts[end]
                end += 1
            if end == start:
                log.warning("word %d (%r) is %d sub-tokens, more than max_length=%d leaves; tagged from its first ones",
                            start, words[start][:40], counts[start], self.max_length)
                end = start + 1
            spans.append((start, end))
            if end == len(words):
                return spans
            start = max(end - self.stride_words, start + 1)

    def collate(self, items: list[dict]) -> dict[str, Tensor]:
        """Encoded sentences -> ``input_ids``, ``attention_mask`` ``(B, S)``; ``first_subtoken``, ``word_mask`` ``(B, T_words)``.

        ``input_ids`` is padded with the tokenizer's padding token, ``first_subtoken`` with 0.
        """
        input_ids = [item["input_ids"] for item in items]
        first = [item["first_subtoken"] for item in items]
        token_lengths = torch.tensor([len(ids) for ids in input_ids])
        word_lengths = torch.tensor([len(positions) for positions in first])
        padded_ids = pad_sequence(input_ids, batch_first=True, padding_value=self.tokenizer.pad_token_id)  # (B, S)
        padded_first = pad_sequence(first, batch_first=True, padding_value=0)  # (B, T_words)
        return {
            "input_ids": padded_ids,
            "attention_mask": (torch.arange(padded_ids.size(1)) < token_lengths[:, None]).long(),
            "first_subtoken": padded_first,
            "word_mask": torch.arange(padded_first.size(1)) < word_lengths[:, None],
        }

    def emissions(self, batch: dict[str, Tensor]) -> Tensor:
        """Per-word logits ``(B, T_words, n_tags)``: the model's ``(B, S, n_tags)`` at each word's first sub-token."""
        logits = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits  # (B, S, n_tags)
        index = batch["first_subtoken"].unsqueeze(-1).expand(-1, -1, logits.size(-1))  # (B, T_words, n_tags)
        return logits.gather(1, index)

    def loss(self, batch: dict[str, Tensor], tags: Tensor) -> Tensor:
        """Cross-entropy averaged over the batch's real words; ``tags`` ``(B, T_words)``, -100 (and padding) ignored."""
        tags = tags.masked_fill(~batch["word_mask"], IGNORE_INDEX)
        emissions = self.emissions(batch)
        return F.cross_entropy(emissions.flatten(0, 1), tags.flatten(), ignore_index=IGNORE_INDEX)  # (B*T, n_tags) vs (B*T,)

    def decode(self, batch: dict[str, Tensor]) -> list[list[int]]:
        """Argmax tag per real word, repaired to valid IOB2 by `repair_iob2` (call in eval mode)."""
        with torch.no_grad():
            best = self.emissions(batch).argmax(-1)  # (B, T_words)
        lengths = batch["word_mask"].sum(1).tolist()
        return [repair_iob2(row[:n].tolist(), self.tags) for row, n in zip(best, lengths, strict=True)]

    def _tokenize(self, words: list[str], add_special_tokens: bool):
        """Run the tokenizer on pre-split words, untruncated and without the over-length warning."""
        return self.tokenizer(words, is_split_into_words=True, truncation=False, add_special_tokens=add_special_tokens, verbose=False)


def _checkpoint_folder(path: str | Path) -> Path:
    """The folder, checked to exist and hold config.json (before transformers would look on the Hub)."""
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise BiolmError(f"{folder}: no such folder (expected a local Hugging Face checkpoint folder with config.json)")
    if not (folder / "config.json").is_file():
        raise BiolmError(f"{folder}: no config.json (expected a local Hugging Face checkpoint folder)")
    return folder


def _load_tokenizer(folder: Path):
    """The folder's tokenizer; byte-level BPE ones (RoBERTa, GPT-2 style) reloaded with ``add_prefix_space=True``.

    Without it a byte-level tokenizer reads each pre-split word as if it continued the previous one
    ("gene", not "Ġgene"), unlike the running text the encoder was trained on.
    """
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if getattr(tokenizer, "add_prefix_space", None) is False and "ByteLevel" in repr(getattr(backend, "pre_tokenizer", None)):
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True, add_prefix_space=True)
    return tokenizer


def _label_options(tags: list[str]) -> dict:
    """Config overrides that size the head for ``tags`` and name its outputs."""
    if not tags or len(set(tags)) != len(tags):
        raise BiolmError(f"tags={list(tags)}: expected a non-empty list of distinct names")
    return {"num_labels": len(tags), "id2label": dict(enumerate(tags)), "label2id": {name: i for i, name in enumerate(tags)}}


def _dropout_option(dropout: float | None) -> dict:
    """``classifier_dropout`` override (BERT, RoBERTa, ELECTRA, ... token-classification heads read it)."""
    if dropout is None:
        return {}
    if not 0 <= dropout < 1:
        raise BiolmError(f"dropout={dropout}: accepted 0 <= dropout < 1")
    return {"classifier_dropout": float(dropout)}


def _encoder_limit(model: PreTrainedModel, tokenizer) -> int:
    """Most sub-tokens the encoder takes: the tokenizer's model_max_length, else the position table's size."""
    limit = tokenizer.model_max_length
    if not limit or limit >= _NO_LIMIT:
        limit = getattr(model.config, "max_position_embeddings", None) or _NO_LIMIT
    return int(limit)


def _reset_head(head: nn.Module, config) -> None:
    """Re-initialise the head as transformers does for a missing one (a checkpoint's own head is for other labels)."""
    if isinstance(head, nn.Linear):
        nn.init.normal_(head.weight, std=getattr(config, "initializer_range", 0.02))
        if head.bias is not None:
            nn.init.zeros_(head.bias)


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence transformers' load report ("newly initialized" head) and progress bar, restoring both after."""
    verbosity = hf_logging.get_verbosity()
    progress = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if progress:
            hf_logging.enable_progress_bar()


@contextlib.contextmanager
def _as_user_error(folder: Path) -> Iterator[None]:
    """transformers' errors on an unreadable checkpoint (unknown model type, no weights) -> BiolmError naming the folder."""
    try:
        yield
    except (OSError, ValueError) as exc:
        raise BiolmError(f"{folder}: cannot load as a Hugging Face token classifier: {exc}") from exc

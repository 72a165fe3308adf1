"""BiLSTM-CRF word tagger (Lample et al. 2016) with character CNN features (Ma & Hovy 2016).

In: a sentence as a list of words. Out: one IOB2 tag id per word.

    encode(words)   -> word_ids (T,) long, char_ids (T, C) long      C = longest word, <= max_word_chars
    collate(items)  -> word_ids (B, T), char_ids (B, T, C), word_mask (B, T) bool
    emissions(batch):
        word embedding                              (B, T, word_dim)
        char embedding -> Conv1d -> max over chars  (B, T, char_filters)
        concat -> dropout -> BiLSTM (packed)        (B, T, 2 * hidden)
        dropout -> linear                           (B, T, n_tags)
    loss(batch, tags) -> mean CRF negative log-likelihood per sentence; decode(batch) -> Viterbi paths

Vocabularies live in the tagger: ``words`` and ``chars`` list tokens by id with ``<pad>`` = 0 and
``<unk>`` = 1. A word is looked up normalised: every digit becomes ``0`` (``"IL-12"`` -> ``"il-00"``),
then it is lowercased when ``lowercase`` is set; characters are taken from the raw word (case and
digits kept), truncated to ``max_word_chars``.

The CRF is `torchcrf.CRF` (pytorch-crf) with IOB2 validity imposed: ``I-X`` may only follow ``B-X``
or ``I-X`` and may not start a sentence (see `Iob2Crf`).
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
from torchcrf import CRF

from biolm.atomic import atomic_path
from biolm.errors import BiolmError
from biolm.models.word_tagger import WordTagger

logger = logging.getLogger(__name__)

PAD, UNK = "<pad>", "<unk>"
#: score added to a disallowed transition: exp(-10000) is 0 in float32, yet -10000 * 0 stays 0
#: where pytorch-crf multiplies a transition by a padding mask (-inf would give NaN there)
DISALLOWED = -10000.0
_DIGIT = re.compile(r"\d")


@dataclass
class BiLstmCrfConfig:
    """Hyper-parameters of a `BiLstmCrf` (saved in ``vocab.json`` under ``hyper``).

    Attributes:
        lowercase: lowercase words (after mapping digits to 0) before the vocabulary lookup.
        word_dim: word embedding width.
        char_dim: character embedding width.
        char_filters: character CNN filters (width of the per-word character feature).
        char_kernel: character CNN kernel width, in characters.
        hidden: LSTM width per direction.
        layers: stacked bidirectional LSTM layers.
        dropout: dropout on the character embeddings, the word features and the LSTM output.
        unk_replace: training-only probability of replacing a word id by ``<unk>``.
        max_word_chars: characters kept per word.
    """

    lowercase: bool = True
    word_dim: int = 100
    char_dim: int = 30
    char_filters: int = 50
    char_kernel: int = 3
    hidden: int = 200
    layers: int = 1
    dropout: float = 0.5
    unk_replace: float = 0.0
    max_word_chars: int = 30

    def __post_init__(self) -> None:
        for name in ("word_dim", "char_dim", "char_filters", "char_kernel", "hidden", "layers", "max_word_chars"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise BiolmError(f"BiLstmCrf {name}: {value!r} is not allowed (accepted: an integer >= 1)")
        if not 0.0 <= self.dropout < 1.0:
            raise BiolmError(f"BiLstmCrf dropout: {self.dropout!r} is not allowed (accepted: 0 <= dropout < 1)")
        if not 0.0 <= self.unk_replace <= 1.0:
            raise BiolmError(f"BiLstmCrf unk_replace: {self.unk_replace!r} is not allowed (accepted: 0 <= unk_replace <= 1)")


def _config(hyper: dict[str, Any]) -> BiLstmCrfConfig:
    """`BiLstmCrfConfig` from keyword options, naming an unknown key."""
    known = [f.name for f in fields(BiLstmCrfConfig)]
    unknown = sorted(set(hyper) - set(known))
    if unknown:
        raise BiolmError(f"BiLstmCrf: unknown option {unknown[0]!r} (accepted: {', '.join(known)})")
    return BiLstmCrfConfig(**hyper)


def normalise_word(word: str, lowercase: bool = True) -> str:
    """The vocabulary key of a word: every digit becomes ``0``, then lowercased if ``lowercase``."""
    word = _DIGIT.sub("0", word)
    return word.lower() if lowercase else word


def iob2_rules(tags: list[str]) -> tuple[Tensor, Tensor, Tensor]:
    """Check IOB2 tag names and return which tag sequences they allow.

    Args:
        tags: tag names by id; ``O`` plus ``B-<type>`` / ``I-<type>``, every ``I-X`` with its ``B-X``.

    Returns:
        ``allowed`` (n, n) bool (``allowed[i, j]``: tag j may follow tag i), ``start_allowed`` (n,)
        bool, and ``begin_of`` (n,) long (the id of ``B-X`` for ``I-X``, the tag itself otherwise).
    """
    accepted = "'O' plus 'B-<type>' / 'I-<type>' names, each I-<type> with its B-<type>"
    if len(set(tags)) != len(tags):
        raise BiolmError(f"tags: {tags} repeat a name (accepted: {accepted})")
    if "O" not in tags:
        raise BiolmError(f"tags: {tags} lack 'O' (accepted: {accepted})")
    for tag in tags:
        if tag != "O" and not re.fullmatch(r"[BI]-\S.*", tag):
            raise BiolmError(f"tags: {tag!r} is not an IOB2 tag name (accepted: {accepted})")
    index = {tag: i for i, tag in enumerate(tags)}
    n = len(tags)
    allowed = torch.ones(n, n, dtype=torch.bool)
    start_allowed = torch.ones(n, dtype=torch.bool)
    begin_of = torch.arange(n)
    for j, tag in enumerate(tags):
        if not tag.startswith("I-"):
            continue
        kind = tag[2:]
        if f"B-{kind}" not in index:
            raise BiolmError(f"tags: {tag!r} has no 'B-{kind}' (accepted: {accepted})")
        begin_of[j] = index[f"B-{kind}"]
        start_allowed[j] = False
        allowed[:, j] = False
        allowed[index[f"B-{kind}"], j] = True
        allowed[j, j] = True
    return allowed, start_allowed, begin_of


class _AddPenalty(nn.Module):
    """Parametrization ``raw -> raw + penalty``, with ``penalty`` 0 or `DISALLOWED` per entry."""

    def __init__(self, penalty: Tensor):
        super().__init__()
        self.register_buffer("penalty", penalty, persistent=False)

    def forward(self, raw: Tensor) -> Tensor:
        return raw + self.penalty


class Iob2Crf(CRF):
    """`torchcrf.CRF` (batch first) whose transitions forbid invalid IOB2 paths.

    ``transitions`` and ``start_transitions`` are torch parametrizations
    (`torch.nn.utils.parametrize`): each read returns the learnt raw value plus `DISALLOWED` on
    the forbidden entries. pytorch-crf reads those attributes in the gold-path score, the
    partition function and Viterbi alike, so one mask constrains the loss and the decoding
    without copying any of its code, and no training loop has to re-clamp parameters after an
    optimiser step (the alternative): the optimiser only ever sees the raw values, whose forbidden
    entries get zero gradient. The cost: the state dict holds ``parametrizations.<name>.original``,
    and the module is saved by ``state_dict`` only (parametrized modules cannot be pickled whole).

    Args:
        tags: IOB2 tag names by id (see `iob2_rules`).
    """

    def __init__(self, tags: list[str]):
        allowed, start_allowed, begin_of = iob2_rules(tags)
        super().__init__(len(tags), batch_first=True)
        self.outside_id = tags.index("O")
        self.register_buffer("allowed", allowed, persistent=False)
        self.register_buffer("start_allowed", start_allowed, persistent=False)
        self.register_buffer("begin_of", begin_of, persistent=False)
        parametrize.register_parametrization(self, "transitions", _AddPenalty((~allowed).float() * DISALLOWED))
        parametrize.register_parametrization(self, "start_transitions", _AddPenalty((~start_allowed).float() * DISALLOWED))

    def repair(self, tags: Tensor, mask: Tensor) -> Tensor:
        """Gold tags made IOB2-valid: padding becomes ``O``, an ``I-X`` that may not stand becomes ``B-X``.

        Args:
            tags: ``(B, T)`` tag ids (any value on padding).
            mask: ``(B, T)`` bool, True on real words.
        """
        tags = tags.masked_fill(~mask, self.outside_id)
        valid = torch.empty_like(mask)
        valid[:, 0] = self.start_allowed[tags[:, 0]]
        valid[:, 1:] = self.allowed[tags[:, :-1], tags[:, 1:]]
        # one pass suffices: a repaired tag keeps its entity type, so what follows it stays valid or invalid
        return torch.where(valid, tags, self.begin_of[tags])

    def nll(self, emissions: Tensor, tags: Tensor, mask: Tensor) -> Tensor:
        """Negative log-likelihood per sentence, ``(B,)``, of the repaired gold ``tags``.

        Args:
            emissions: ``(B, T, n_tags)`` scores.
            tags: ``(B, T)`` gold tag ids (any value on padding; invalid IOB2 is repaired, see `repair`).
            mask: ``(B, T)`` bool, True on real words; every sentence has a first word.
        """
        with parametrize.cached():
            return -self(emissions.float(), self.repair(tags, mask), mask, reduction="none")

    def decode(self, emissions: Tensor, mask: Tensor | None = None) -> list[list[int]]:
        """Viterbi paths (valid IOB2), one list of tag ids per sentence, of its real length."""
        with parametrize.cached():
            return super().decode(emissions.float(), mask)


class BiLstmCrf(WordTagger):
    """Word + character-CNN features, BiLSTM, IOB2-constrained CRF (see the module docstring).

    Args:
        words: word vocabulary by id: ``<pad>``, ``<unk>``, then normalised words (see `normalise_word`).
        chars: character vocabulary by id: ``<pad>``, ``<unk>``, then characters.
        tags: IOB2 tag names by id, including ``O``.
        **hyper: `BiLstmCrfConfig` fields.
    """

    def __init__(self, words: list[str], chars: list[str], tags: list[str], **hyper: Any):
        super().__init__()
        self.config = c = _config(hyper)
        for name, vocab in (("words", words), ("chars", chars)):
            if list(vocab[:2]) != [PAD, UNK]:
                raise BiolmError(f"BiLstmCrf {name}: must start with {PAD!r}, {UNK!r} (ids 0 and 1); got {list(vocab[:2])}")
            if len(vocab) <= 2:
                raise BiolmError(f"BiLstmCrf {name}: the vocabulary is empty (no training {name} besides {PAD!r}, {UNK!r})")
            if len(set(vocab)) != len(vocab):
                raise BiolmError(f"BiLstmCrf {name}: the vocabulary repeats an entry")
        self.crf = Iob2Crf(list(tags))
        self.tags = list(tags)
        self.words, self.chars = list(words), list(chars)
        self.word_index = {word: i for i, word in enumerate(self.words)}
        self.char_index = {char: i for i, char in enumerate(self.chars)}
        self.word_embedding = nn.Embedding(len(words), c.word_dim, padding_idx=0)
        self.char_embedding = nn.Embedding(len(chars), c.char_dim, padding_idx=0)
        self.char_cnn = nn.Conv1d(c.char_dim, c.char_filters, c.char_kernel, padding="same")
        self.dropout = nn.Dropout(c.dropout)
        self.lstm = nn.LSTM(c.word_dim + c.char_filters, c.hidden, c.layers, batch_first=True, bidirectional=True,
                            dropout=c.dropout if c.layers > 1 else 0.0)
        self.output = nn.Linear(2 * c.hidden, len(tags))

    @classmethod
    def build(cls, train_sentences: list[list[str]], tags: list[str], *, min_count: int = 1,
              word_vectors: dict[str, list[float]] | None = None, **hyper: Any) -> BiLstmCrf:
        """A fresh tagger whose vocabularies come from the training sentences.

        Args:
            train_sentences: sentences as lists of words.
            tags: IOB2 tag names by id, including ``O``.
            min_count: a normalised word enters the vocabulary when seen at least this often.
            word_vectors: pre-trained vectors by word (each of length ``word_dim``); a vector
                initialises the row of the vocabulary word its key normalises to, an exact key first.
            **hyper: `BiLstmCrfConfig` fields.
        """
        config = _config(hyper)
        if min_count < 1:
            raise BiolmError(f"BiLstmCrf min_count: {min_count!r} is not allowed (accepted: an integer >= 1)")
        word_counts = Counter(normalise_word(w, config.lowercase) for sentence in train_sentences for w in sentence)
        char_counts = Counter(ch for sentence in train_sentences for w in sentence for ch in w)
        words = [w for w, n in sorted(word_counts.items(), key=lambda item: (-item[1], item[0])) if n >= min_count and w not in (PAD, UNK)]
        chars = [ch for ch, _ in sorted(char_counts.items(), key=lambda item: (-item[1], item[0]))]
        tagger = cls([PAD, UNK, *words], [PAD, UNK, *chars], tags, **asdict(config))
        if word_vectors:
            tagger._init_word_vectors(word_vectors)
        return tagger

    @classmethod
    def for_training(cls, tags: list[str], train_words: list[list[str]], word_vectors_from: str | None = None, **options: Any) -> BiLstmCrf:
        """`build` in the form the NER recipe instantiates (``model.tagger`` config + the run's tags and words).

        ``word_vectors_from``: a Hugging Face encoder folder whose input embeddings initialise the word
        vectors (`biolm.models.word_vectors.subword_mean_vectors`), or None for random ones.
        """
        if word_vectors_from:
            from biolm.models.word_vectors import subword_mean_vectors

            config = _config({k: v for k, v in options.items() if k not in ("min_count", "word_vectors")})
            words = sorted({normalise_word(w, config.lowercase) for sentence in train_words for w in sentence})
            options["word_vectors"] = subword_mean_vectors(word_vectors_from, words, config.word_dim)
        return cls.build(train_words, tags, **options)

    def _init_word_vectors(self, word_vectors: dict[str, list[float]]) -> None:
        """Copy pre-trained vectors into the rows of the vocabulary words they cover."""
        by_key: dict[str, list[float]] = {}
        for key, vector in word_vectors.items():
            if len(vector) != self.config.word_dim:
                raise BiolmError(f"word_vectors[{key!r}]: {len(vector)} values (accepted: word_dim = {self.config.word_dim})")
            norm = normalise_word(key, self.config.lowercase)
            if key == norm or norm not in by_key:
                by_key[norm] = vector
        rows = [(i, by_key[w]) for i, w in enumerate(self.words) if i > 1 and w in by_key]
        if rows:
            with torch.no_grad():
                ids = torch.tensor([i for i, _ in rows])
                self.word_embedding.weight[ids] = torch.tensor([v for _, v in rows], dtype=self.word_embedding.weight.dtype)
        logger.info("word_vectors cover %d of %d vocabulary words", len(rows), len(self.words) - 2)

    def encode(self, words: list[str]) -> dict:
        """One sentence -> ``word_ids`` ``(T,)`` and ``char_ids`` ``(T, C)`` (C: longest kept word)."""
        if not words or not all(isinstance(w, str) and w for w in words):
            raise BiolmError(f"sentence {words!r}: accepted is a non-empty list of non-empty words")
        lowercase, width = self.config.lowercase, self.config.max_word_chars
        word_ids = torch.tensor([self.word_index.get(normalise_word(w, lowercase), 1) or 1 for w in words])  # a literal "<pad>" word reads as <unk>
        char_ids = torch.zeros(len(words), min(width, max(len(w) for w in words)), dtype=torch.long)
        for i, word in enumerate(words):
            ids = [self.char_index.get(ch, 1) for ch in word[:width]]
            char_ids[i, : len(ids)] = torch.tensor(ids)
        return {"word_ids": word_ids, "char_ids": char_ids}

    def collate(self, items: list[dict]) -> dict[str, Tensor]:
        """Encoded sentences -> ``word_ids`` ``(B, T)``, ``char_ids`` ``(B, T, C)``, ``word_mask`` ``(B, T)`` bool."""
        if not items:
            raise BiolmError("collate: no sentences to batch")
        n_words = max(item["word_ids"].shape[0] for item in items)
        n_chars = max(item["char_ids"].shape[1] for item in items)
        word_ids = torch.zeros(len(items), n_words, dtype=torch.long)
        char_ids = torch.zeros(len(items), n_words, n_chars, dtype=torch.long)
        word_mask = torch.zeros(len(items), n_words, dtype=torch.bool)
        for b, item in enumerate(items):
            t, c = item["char_ids"].shape
            word_ids[b, :t] = item["word_ids"]
            char_ids[b, :t, :c] = item["char_ids"]
            word_mask[b, :t] = True  # from the length: a word never reads as padding
        return {"word_ids": word_ids, "char_ids": char_ids, "word_mask": word_mask}

    def _char_features(self, char_ids: Tensor) -> Tensor:
        """``(B, T, C)`` char ids -> ``(B, T, char_filters)``, max-pooled over real characters only."""
        b, t, c = char_ids.shape
        flat = char_ids.reshape(b * t, c)
        present = flat != 0  # (B*T, C)
        conv = self.char_cnn(self.dropout(self.char_embedding(flat)).transpose(1, 2))  # (B*T, F, C)
        # masking keeps a word's feature independent of how far the batch pads C
        conv = conv.masked_fill(~present[:, None, :], torch.finfo(conv.dtype).min)
        pooled = conv.max(dim=2).values.masked_fill(~present.any(dim=1, keepdim=True), 0.0)  # (B*T, F)
        return pooled.reshape(b, t, -1)

    def emissions(self, batch: dict[str, Tensor]) -> Tensor:
        """Batch -> tag scores ``(B, T, n_tags)`` (zero-padded LSTM states on padding)."""
        word_ids, mask = batch["word_ids"], batch["word_mask"]
        if self.training and self.config.unk_replace > 0:
            replace = (torch.rand(word_ids.shape, device=word_ids.device) < self.config.unk_replace) & mask
            word_ids = word_ids.masked_fill(replace, 1)
        features = torch.cat([self.word_embedding(word_ids), self._char_features(batch["char_ids"])], dim=-1)
        lengths = mask.sum(dim=1).clamp(min=1).cpu()
        packed = pack_padded_sequence(self.dropout(features), lengths, batch_first=True, enforce_sorted=False)
        hidden, _ = pad_packed_sequence(self.lstm(packed)[0], batch_first=True, total_length=word_ids.shape[1])
        return self.output(self.dropout(hidden))

    def forward(self, batch: dict[str, Tensor]) -> Tensor:
        """Same as `emissions`: ``(B, T, n_tags)``."""
        return self.emissions(batch)

    def loss(self, batch: dict[str, Tensor], tags: Tensor) -> Tensor:
        """Mean CRF negative log-likelihood per sentence; ``tags`` ``(B, T)`` with -100 on padding.

        Gold tags that break IOB2 (an ``I-X`` after ``O``) are read as IOB1 and turned into ``B-X``.
        """
        mask = batch["word_mask"]
        if tags.shape != mask.shape:
            raise BiolmError(f"tags: shape {tuple(tags.shape)} does not match the batch's word_mask {tuple(mask.shape)}")
        real = tags[mask]
        if bool(((real < 0) | (real >= len(self.tags))).any()):
            raise BiolmError(f"tags: ids outside 0..{len(self.tags) - 1} on real words (-100 is for padding only)")
        return self.crf.nll(self.emissions(batch), tags, mask).mean()

    def decode(self, batch: dict[str, Tensor]) -> list[list[int]]:
        """Viterbi tag ids per sentence, one per real word, always valid IOB2."""
        with torch.no_grad():
            return self.crf.decode(self.emissions(batch), batch["word_mask"])

    def save_assets(self, folder: Path) -> None:
        """Write ``folder/vocab.json``: words, chars, tags and hyper-parameters (atomically)."""
        assets = {"words": self.words, "chars": self.chars, "tags": self.tags, "hyper": asdict(self.config)}
        with atomic_path(Path(folder) / "vocab.json") as tmp:
            tmp.write_text(json.dumps(assets, ensure_ascii=False), encoding="utf-8")

    @classmethod
    def from_assets(cls, folder: Path, tags: list[str], **options: Any) -> BiLstmCrf:
        """Rebuild the saved architecture from ``folder/vocab.json`` (weights are loaded by the caller).

        Args:
            folder: where `save_assets` wrote.
            tags: the run's tag names; must equal the saved ones.
            **options: `BiLstmCrfConfig` fields; accepted only when equal to the saved values
                (the weights fix the architecture, so nothing can be overridden).
        """
        path = Path(folder) / "vocab.json"
        try:
            assets = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise BiolmError(f"{path}: not found (BiLstmCrf.save_assets writes it)") from None
        except json.JSONDecodeError as exc:
            raise BiolmError(f"{path}: not valid JSON ({exc})") from None
        missing = [key for key in ("words", "chars", "tags", "hyper") if key not in assets]
        if missing:
            raise BiolmError(f"{path}: missing {missing[0]!r} (accepted: keys words, chars, tags, hyper)")
        if list(tags) != assets["tags"]:
            raise BiolmError(f"{path}: saved tags {assets['tags']} differ from the given {list(tags)}")
        hyper = _config(assets["hyper"])
        _config(options)  # names an unknown key
        for key, value in options.items():
            if value != getattr(hyper, key):
                raise BiolmError(f"BiLstmCrf {key}: {value!r} differs from the saved {getattr(hyper, key)!r} in {path} (options cannot override it)")
        return cls(assets["words"], assets["chars"], assets["tags"], **asdict(hyper))


__all__ = ["BiLstmCrf", "BiLstmCrfConfig", "Iob2Crf", "iob2_rules", "normalise_word"]

"""Biomedical NER corpora -> one in-memory form: a list of `Sentence`.

In: a corpus file or folder in one of three layouts:

- CoNLL/BIO columns (``.tsv``, ``.conll``, ``.bio``, ``.iob``, ``.txt``, optionally ``.gz``): one
  ``token<TAB>tag`` per line, a blank line between sentences, ``-DOCSTART-`` lines between documents;
- JSONL (``.jsonl``, ``.jsonl.gz``): one document per line, ``{"text": ..., "spans": [{"start", "end",
  "label"}, ...], "id": ...}`` with character offsets into ``text``;
- brat / BioNLP standoff: ``doc.txt`` with ``doc.ann`` (or ``doc.a1``) beside it, or a folder of them.

Out: ``list[Sentence]``; each sentence holds its text (str, n_chars), its tokens (n_tokens words), the
character ``[start, end)`` offset of every token in that text (n_tokens pairs), IOB2 tags (n_tokens, or
None when unlabelled), the document id, the sentence's start in its document (characters) and where it
came from (``path:line``). `tags_to_spans` / `spans_to_tags` convert between IOB2 tags and character
spans (strict IOB2, as ``seqeval`` ``mode="strict", scheme=IOB2`` counts entities); `write_conll`
writes sentences back as BIO columns.

Raw text (JSONL, standoff) is split into sentences and tokens by `split_text`. Every user mistake
(missing file, bad column count, a tag outside IOB2, bad JSON, a span outside its text, annotated
text that differs from the document) raises `CorpusError` naming ``path:line`` and what is accepted.
"""

from __future__ import annotations

import bisect
import gzip
import json
import logging
import os
import re
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from biolm.atomic import atomic_path
from biolm.errors import BiolmError

logger = logging.getLogger(__name__)

IOB2_RULE = "tags must be IOB2 (O, B-<type>, I-<type>)"
STANDOFF_SUFFIXES = (".ann", ".a1")  # the first one present beside a .txt is read (with .a1, also its .a2)
_TOKEN = re.compile(r"\w+|[^\w\s]")
_SENTENCE_END = re.compile(r"[.!?](?=\s+(\S))")  # group 1: the first character of the next sentence
_LINE = re.compile(r"[^\r\n]+")
_WHITESPACE = re.compile(r"\s")
_OPENERS = "([{\"'“‘«"
# Words that end in a period without ending a sentence (compared lower-case, without the period).
_ABBREVIATIONS = frozenset(
    {"e.g", "i.e", "al", "fig", "figs", "ref", "refs", "eq", "eqs", "vs", "cf", "ca", "approx", "dr", "mr", "mrs", "ms", "prof", "no", "nos", "vol", "pp"}
    | {"resp", "sp", "spp", "st", "viz"}
)


class CorpusError(BiolmError):
    """A user mistake in a corpus file; the message names the file and line and what is accepted."""


@dataclass(frozen=True)
class Span:
    """An entity: character offsets ``[start, end)`` into `Sentence.text`, its type and its text."""

    start: int
    end: int
    label: str
    text: str


@dataclass
class Sentence:
    """One sentence: words, their character offsets in `text`, and optional IOB2 tags.

    Attributes:
        text: the sentence text.
        tokens: the words (n_tokens).
        offsets: character ``[start, end)`` of each token in `text` (n_tokens).
        tags: IOB2 tags, one per token; None when unlabelled.
        doc_id: the document the sentence belongs to, if known.
        where: ``path:line`` of the sentence's first line, for messages.
        start: character offset of `text` in its document (document offset = start + offset).
    """

    text: str
    tokens: list[str]
    offsets: list[tuple[int, int]]
    tags: list[str] | None = None
    doc_id: str | None = None
    where: str = ""
    start: int = 0

    def spans(self) -> list[Span]:
        """The entities of `tags` (strict IOB2, see `tags_to_spans`); ``[]`` when unlabelled."""
        if self.tags is None:
            return []
        return tags_to_spans(self.tags, self.offsets, self.text)


def tags_to_spans(tags: Sequence[str], offsets: Sequence[tuple[int, int]], text: str) -> list[Span]:
    """Entities of an IOB2 tag sequence, as character spans.

    Strict IOB2: an entity starts at ``B-X`` and continues over the ``I-X`` that follow it; an ``I-X``
    that does not continue an ``X`` entity is not an entity (as ``seqeval`` ``mode="strict"`` counts).

    Args:
        tags: one IOB2 tag per token.
        offsets: character ``[start, end)`` of each token in ``text``.
        text: the sentence text.

    Returns:
        The spans in order; each covers ``text[offsets[first][0]:offsets[last][1]]``.

    Raises:
        ValueError: ``tags`` and ``offsets`` differ in length, or a tag is not IOB2.
    """
    if len(tags) != len(offsets):
        raise ValueError(f"{len(tags)} tags for {len(offsets)} tokens")
    spans = []
    label = None  # type of the entity being read, None outside one
    first = 0
    for i, tag in enumerate([*tags, "O"]):
        if label is not None and tag != f"I-{label}":
            start, end = offsets[first][0], offsets[i - 1][1]
            spans.append(Span(start, end, label, text[start:end]))
            label = None
        if tag.startswith("B-") and len(tag) > 2:
            label, first = tag[2:], i
        elif tag != "O" and not (tag.startswith("I-") and len(tag) > 2):
            raise ValueError(f"tag {tag!r} at token {i}: {IOB2_RULE}")
    return spans


def spans_to_tags(spans: Iterable[Span] | Iterable[tuple[int, int, str]], offsets: Sequence[tuple[int, int]]) -> list[str]:
    """IOB2 tags for tokens from character spans.

    A span tags every token it overlaps: ``B-`` on the first, ``I-`` on the rest. When spans overlap,
    the earlier-starting one wins and the later one is dropped whole (callers resolve overlaps first).
    Spans that cover no token are dropped.

    Args:
        spans: `Span` objects or ``(start, end, label)`` tuples, character offsets like ``offsets``.
        offsets: character ``[start, end)`` of each token, in text order.

    Returns:
        One tag per token.
    """
    tags = ["O"] * len(offsets)
    token_ends = [end for _, end in offsets]
    triples = [(s.start, s.end, s.label) if isinstance(s, Span) else tuple(s) for s in spans]
    for start, end, label in sorted(triples, key=lambda triple: triple[0]):
        first = bisect.bisect_right(token_ends, start)  # first token ending after the span starts
        last = first
        while last < len(offsets) and offsets[last][0] < end:
            last += 1
        if last == first or any(tag != "O" for tag in tags[first:last]):
            continue
        tags[first] = f"B-{label}"
        tags[first + 1 : last] = [f"I-{label}"] * (last - first - 1)
    return tags


def entity_types(sentences: Iterable[Sentence]) -> list[str]:
    """Sorted entity types present in the sentences' tags (unlabelled sentences add none)."""
    return sorted({tag[2:] for sentence in sentences for tag in sentence.tags or () if tag != "O"})


def tag_set(types: Sequence[str]) -> list[str]:
    """The IOB2 label list for entity types: ``["O", "B-A", "I-A", "B-B", "I-B", ...]`` in the given order."""
    return ["O"] + [f"{prefix}-{kind}" for kind in types for prefix in ("B", "I")]


def tokenize(text: str) -> tuple[list[str], list[tuple[int, int]]]:
    """Words of ``text`` by the regex ``\\w+|[^\\w\\s]`` (unicode-aware) and their ``[start, end)`` offsets."""
    matches = list(_TOKEN.finditer(text))
    return [m.group() for m in matches], [m.span() for m in matches]


def split_text(text: str, doc_id: str | None = None, *, abbreviations: bool = True) -> list[Sentence]:
    """Split plain text into sentences and tokens.

    Sentences end after ``.``, ``!`` or ``?`` followed by whitespace and then an upper-case letter, a digit
    or an opening bracket/quote, and at every newline. With ``abbreviations`` (the default) a period does
    not end a sentence after a common abbreviation (e.g., i.e., et al., Fig., vs., Dr., no., approx., ...)
    or a single capital initial (``J. Smith``). The bundled methylation corpora
    (``data/text/methylation``) were built without these exceptions; pass
    ``abbreviations=False`` to reproduce their sentences. Tokens follow the regex ``\\w+|[^\\w\\s]``
    (unicode-aware: ``β-catenin`` -> ``β``, ``-``, ``catenin``), the rule of the bundled corpora.

    Args:
        text: the document text.
        doc_id: stored on every sentence.
        abbreviations: keep abbreviations and initials inside their sentence.

    Returns:
        Sentences in order, each with its own text (surrounding whitespace stripped), token offsets
        relative to that text and `Sentence.start` = its offset in ``text``; ``[]`` for blank text.
    """
    sentences = []
    for start, end in _sentence_bounds(text, abbreviations):
        while start < end and text[start].isspace():
            start += 1
        while end > start and text[end - 1].isspace():
            end -= 1
        if start < end:
            tokens, offsets = tokenize(text[start:end])
            sentences.append(Sentence(text[start:end], tokens, offsets, doc_id=doc_id, start=start))
    return sentences


def _sentence_bounds(text: str, abbreviations: bool) -> Iterable[tuple[int, int]]:
    """``[start, end)`` of each sentence candidate (whitespace not yet stripped)."""
    for line in _LINE.finditer(text):
        piece, begin = line.group(), line.start()
        for end in _SENTENCE_END.finditer(piece):
            following = end.group(1)
            if not (following.isupper() or following.isdigit() or following in _OPENERS):
                continue
            if abbreviations and piece[end.start()] == "." and _is_abbreviation(piece, end.start()):
                continue
            yield begin, line.start() + end.end()
            begin = line.start() + end.end()
        yield begin, line.end()


def _is_abbreviation(line: str, period: int) -> bool:
    """Whether the word before the period at ``line[period]`` is an abbreviation or an initial."""
    word_start = period
    while word_start > 0 and not line[word_start - 1].isspace():
        word_start -= 1
    word = line[word_start:period].lstrip(_OPENERS)
    return word.lower() in _ABBREVIATIONS or (len(word) == 1 and word.isupper())


def read_corpus(path: str | Path, field_name: str = "data.train") -> list[Sentence]:
    """Read a NER corpus in any supported layout (see the module docstring).

    A folder is read as brat/BioNLP standoff (every ``*.txt`` with a ``.ann`` or ``.a1`` beside it, in
    name order, not recursive); ``*.jsonl[.gz]`` as JSONL; a ``.txt`` with a ``.ann``/``.a1`` beside it
    as one standoff document; anything else as CoNLL/BIO columns (gzip by the ``.gz`` suffix).

    Args:
        path: the file or folder.
        field_name: the setting that named ``path``, for messages (e.g. ``data.train``).

    Returns:
        The sentences in file order.

    Raises:
        CorpusError: the path does not exist, holds no sentence, or a line is malformed.
    """
    path = Path(path)
    if not path.exists():
        raise CorpusError(f"{field_name}: file not found: {path}")
    if path.is_dir():
        documents = [txt for txt in sorted(path.glob("*.txt")) if _annotation_of(txt) is not None]
        if not documents:
            raise CorpusError(f"{field_name}: folder {path} holds no .txt file with a .ann or .a1 file beside it (brat/BioNLP standoff)")
        sentences = [sentence for txt in documents for sentence in read_standoff(txt, field_name)]
    elif path.name.lower().endswith((".jsonl", ".jsonl.gz")):
        return read_jsonl(path, field_name)
    elif path.suffix.lower() == ".txt" and _annotation_of(path) is not None:
        sentences = read_standoff(path, field_name)
    else:
        return read_conll(path, field_name)
    if not sentences:
        raise CorpusError(f"{field_name}: {path} holds no sentence (the documents' text is empty)")
    return sentences


def read_conll(path: str | Path, field_name: str = "data.train") -> list[Sentence]:
    """Read a CoNLL/BIO column file: ``token<TAB>tag`` per line (one space also separates when no tab).

    A blank line ends a sentence; a ``-DOCSTART-`` line (with or without a second column) starts a
    document: the sentences after it get `Sentence.doc_id` = the text after ``-DOCSTART-`` (``None`` when
    there is none or it is the CoNLL placeholder ``O`` / ``-X- -X- O``). Sentence text is the tokens
    joined by single spaces. An ``I-X`` that does not continue an ``X`` entity is kept as written (strict
    IOB2 scoring does not count it); their number is logged once per file.

    Args:
        path: the file; gzip-compressed when its name ends in ``.gz``.
        field_name: the setting that named ``path``, for messages.

    Returns:
        Labelled sentences in file order.

    Raises:
        CorpusError: missing or empty file, a line without exactly two columns, a tag outside IOB2.
    """
    lines = read_text_lines(path, field_name)
    sentences: list[Sentence] = []
    tokens: list[str] = []
    tags: list[str] = []
    doc_id = None
    first_line = 0
    valid_tags = {"O"}
    stray, first_stray = 0, 0

    def close_sentence() -> None:
        if tokens:
            offsets, at = [], 0
            for token in tokens:
                offsets.append((at, at + len(token)))
                at += len(token) + 1
            sentences.append(Sentence(" ".join(tokens), tokens.copy(), offsets, tags.copy(), doc_id, f"{path}:{first_line}"))
            tokens.clear()
            tags.clear()

    for number, line in enumerate(lines, start=1):
        line = line.rstrip()
        if not line:
            close_sentence()
            continue
        if line.startswith("-DOCSTART-"):
            close_sentence()
            rest = line[len("-DOCSTART-") :].strip()
            doc_id = f"{Path(path).name}#{number}" if rest in ("", "O", "-X- -X- O") else rest  # anonymous: its line
            continue
        columns = line.split("\t") if "\t" in line else line.split(" ")
        if len(columns) != 2:
            raise CorpusError(f"{path}:{number}: expected 'token<TAB>tag' (2 columns), got {len(columns)}")
        token, tag = columns
        if not token:
            raise CorpusError(f"{path}:{number}: empty token; expected 'token<TAB>tag' (2 columns)")
        if tag not in valid_tags:
            if not (tag[:2] in ("B-", "I-") and len(tag) > 2 and not _WHITESPACE.search(tag)):
                hint = " (convert BIOES/BILOU tags to IOB2 first)" if tag[:2] in ("E-", "S-", "L-", "U-") else ""
                raise CorpusError(f"{path}:{number}: tag {tag!r} is not IOB2; {IOB2_RULE}{hint}")
            valid_tags.add(tag)
        if tag[0] == "I" and (not tags or tags[-1][2:] != tag[2:]):
            stray += 1
            first_stray = first_stray or number
        if not tokens:
            first_line = number
        tokens.append(token)
        tags.append(tag)
    close_sentence()
    if stray:
        logger.warning(
            "%s: %d I- tags do not continue an entity of their type (first at line %d); kept as written, strict IOB2 scoring does not count them",
            path,
            stray,
            first_stray,
        )
    if not sentences:
        raise CorpusError(f"{path}:{max(len(lines), 1)}: no sentence in the file; expected 'token<TAB>tag' lines with a blank line between sentences")
    return sentences


def read_jsonl(path: str | Path, field_name: str = "data.train") -> list[Sentence]:
    """Read JSONL documents with character-offset entity spans.

    Each non-blank line is ``{"text": str, "spans": [{"start": int, "end": int, "label": str}, ...],
    "id": optional}`` (``"entities"`` is read like ``"spans"``; a span may carry ``"text"``, which must
    equal ``text[start:end]``). A line without ``spans``/``entities`` gives unlabelled sentences (tags
    None). The text is split by `split_text`; spans become tags by `spans_to_tags`.

    Args:
        path: the file; gzip-compressed when its name ends in ``.gz``.
        field_name: the setting that named ``path``, for messages.

    Returns:
        Sentences in file order, `Sentence.doc_id` = the line's ``id`` (as a string) if given.

    Raises:
        CorpusError: bad JSON, missing ``text``, a span outside the text or with ``start >= end``, or a
            file without any sentence. (Sentences that a span runs across are joined, overlapping spans
            resolved as in `read_standoff`.)
    """
    lines = read_text_lines(path, field_name)
    sentences: list[Sentence] = []
    for number, where, record in jsonl_objects(lines, path):
        text = record["text"]
        doc_id = f"{Path(path).name}:{number}" if record.get("id") is None else str(record["id"])  # a line is a document
        raw_spans = record.get("spans", record.get("entities"))
        document = split_text(text, doc_id)
        for sentence in document:
            sentence.where = where
        if raw_spans is not None:
            spans = [(*_json_span(item, text, where), where) for item in _json_list(raw_spans, where)]
            kept = _drop_overlaps(spans)
            if len(kept) < len(spans):
                logger.info("%s: dropped %d overlapping or nested entities (kept the longer of each)", where, len(spans) - len(kept))
            document = _join_split_entities(text, document, kept, Path(where))  # as for standoff: the entity wins over the splitter
            for sentence in document:
                sentence.where = where
            _tag_document(document, kept)
        sentences.extend(document)
    if not sentences:
        raise CorpusError(f'{path}:{max(len(lines), 1)}: no sentence in the file; expected JSON lines with a non-blank "text"')
    return sentences


def json_lines(lines: list[str], path: str | Path, expected: str = "one object per line") -> Iterator[tuple[int, str, dict]]:
    """``(line number, "path:line", object)`` of each non-blank line, each a JSON object.

    Raises:
        CorpusError: a line that is not JSON or not an object (named by path and line; ``expected`` says what is).
    """
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise CorpusError(f"{where}: not valid JSON ({err.msg} at column {err.colno}); expected {expected}") from None
        if not isinstance(record, dict):
            raise CorpusError(f"{where}: expected {expected}")
        yield number, where, record


def jsonl_objects(lines: list[str], path: str | Path) -> Iterator[tuple[int, str, dict]]:
    """`json_lines` whose objects each have a ``"text"`` string (corpora and input documents)."""
    expected = 'an object with a "text" string per line, e.g. {"text": "...", "spans": [{"start": 0, "end": 5, "label": "Gene"}]}'
    for number, where, record in json_lines(lines, path, expected):
        if not isinstance(record.get("text"), str):
            raise CorpusError(f"{where}: expected {expected}")
        yield number, where, record


def _json_list(raw_spans, where: str) -> list:
    """The spans list of a JSONL record (error when it is not a list)."""
    if not isinstance(raw_spans, list):
        raise CorpusError(f'{where}: "spans" must be a list of {{"start", "end", "label"}} objects, got {type(raw_spans).__name__}')
    return raw_spans


def _json_span(item, text: str, where: str) -> tuple[int, int, str]:
    """One checked ``(start, end, label)`` of a JSONL record."""
    accepted = '{"start": int, "end": int, "label": str} with 0 <= start < end <= len(text)'
    if not isinstance(item, dict):
        raise CorpusError(f"{where}: span {item!r} is not an object; expected {accepted}")
    start, end, label = item.get("start"), item.get("end"), item.get("label")
    if not (type(start) is int and type(end) is int and isinstance(label, str) and label):
        raise CorpusError(f"{where}: span {item!r}: expected {accepted}")
    if not 0 <= start < end <= len(text):
        raise CorpusError(f"{where}: span {start}-{end} {label!r} lies outside the text ({len(text)} characters) or is empty; expected {accepted}")
    if "text" in item and item["text"] != text[start:end]:
        raise CorpusError(f"{where}: span {start}-{end} {label!r} says {item['text']!r} but the text there is {text[start:end]!r}")
    return start, end, label


def _tag_document(document: list[Sentence], spans: list[tuple[int, int, str, str]]) -> None:
    """Set each sentence's tags from ``(start, end, label, where)`` document-offset spans.

    A span over two sentences is an error (named by its ``where``); one over no sentence is dropped.
    """
    starts = [sentence.start for sentence in document]
    ends = [sentence.start + len(sentence.text) for sentence in document]
    by_sentence: list[list[tuple[int, int, str]]] = [[] for _ in document]
    for start, end, label, where in spans:
        first = bisect.bisect_right(ends, start)  # first sentence ending after the span starts
        last = bisect.bisect_left(starts, end) - 1  # last sentence starting before the span ends
        if last > first:
            raise CorpusError(
                f"{where}: entity {start}-{end} {label!r} crosses a sentence boundary (character {ends[first]}); "
                "entities must lie within one sentence (sentences split as in biolm.text.corpus.split_text)"
            )
        if last == first:
            by_sentence[first].append((start - starts[first], end - starts[first], label))
    for sentence, local in zip(document, by_sentence):
        sentence.tags = spans_to_tags(local, sentence.offsets)


def read_standoff(txt_path: str | Path, field_name: str = "data.train") -> list[Sentence]:
    """Read one brat (``.ann``) or BioNLP (``.a1``) standoff document.

    Only text-bound lines ``T1<TAB>Label START END<TAB>text`` are entities (a discontinuous
    ``START END;START END`` entity takes its outer range); other lines (E, R, A, M, N, #, *) are ignored.
    Of overlapping or nested entities the longer is kept (ties: the earlier); the number dropped is
    logged. The text is split by `split_text` (`Sentence.doc_id` = the file stem), sentences that an
    entity runs across are joined back into one (the annotators' entity wins over the splitter, e.g.
    ``AdCMV. VEGF165`` in BioNLP-ST 2013 CG), and the tokens are tagged by `spans_to_tags`.

    Args:
        txt_path: the ``.txt`` file; the ``.ann`` (else ``.a1``) beside it holds the entities.
        field_name: the setting that named the path, for messages.

    Returns:
        Labelled sentences in text order; `Sentence.where` is ``txt_path:line``.

    Raises:
        CorpusError: a missing file, a malformed T line, offsets outside the text, or annotated text
            that differs from the document.
    """
    txt_path = Path(txt_path)
    ann_path = _annotation_of(txt_path)
    if not txt_path.is_file() or ann_path is None:
        raise CorpusError(f"{field_name}: {txt_path}: expected a .txt file with a .ann or .a1 file beside it")
    text = _read_exact(txt_path)
    spans = []
    # BioNLP-ST keeps given entities in .a1 and event triggers (e.g. DNA_methylation) in .a2: both are read
    sources = [ann_path] + ([txt_path.with_suffix(".a2")] if ann_path.suffix == ".a1" and txt_path.with_suffix(".a2").is_file() else [])
    for source in sources:
        for number, line in enumerate(_read_exact(source).split("\n"), start=1):
            if line.startswith("T"):
                spans.append(_standoff_span(line.rstrip("\r"), text, f"{source}:{number}") + (f"{source}:{number}",))
    kept = _drop_overlaps(spans)
    if len(kept) < len(spans):
        logger.info("%s: dropped %d overlapping or nested entities (kept the longer of each)", ann_path, len(spans) - len(kept))
    document = _join_split_entities(text, split_text(text, txt_path.stem), kept, ann_path)
    newlines = [i for i, char in enumerate(text) if char == "\n"]
    for sentence in document:
        sentence.where = f"{txt_path}:{bisect.bisect_left(newlines, sentence.start) + 1}"
    _tag_document(document, kept)
    return document


def _join_split_entities(text: str, document: list[Sentence], spans: list[tuple], source: Path) -> list[Sentence]:
    """The sentences with those an entity runs across joined into one (the splitter was wrong there)."""
    starts = [sentence.start for sentence in document]
    ends = [sentence.start + len(sentence.text) for sentence in document]
    glued = [False] * len(document)  # glued[k]: sentence k continues into k + 1
    for start, end, *_ in spans:
        first, last = bisect.bisect_right(ends, start), bisect.bisect_left(starts, end) - 1
        glued[first:last] = [True] * max(last - first, 0)
    if not any(glued):
        return document
    logger.info("%s: joined %d sentence boundaries that an entity runs across", source, sum(glued))
    joined, first = [], 0
    for last, glue in enumerate(glued):
        if not glue:
            start, end = starts[first], ends[last]
            tokens, offsets = tokenize(text[start:end])
            joined.append(Sentence(text[start:end], tokens, offsets, doc_id=document[0].doc_id, start=start))
            first = last + 1
    return joined


def _standoff_span(line: str, text: str, where: str) -> tuple[int, int, str]:
    """``(start, end, label)`` of a text-bound line, checked against the document text."""
    accepted = "expected 'T<n><TAB>Label START END<TAB>text' (START END;START END for a discontinuous entity)"
    columns = line.split("\t")
    try:
        label, ranges = columns[1].split(" ", 1)
        pieces = [tuple(int(number) for number in piece.split()) for piece in ranges.split(";")]
        if any(len(piece) != 2 for piece in pieces):
            raise ValueError
    except (IndexError, ValueError):
        raise CorpusError(f"{where}: {accepted}, got {line!r}") from None
    for start, end in pieces:
        if not 0 <= start < end <= len(text):
            raise CorpusError(f"{where}: offsets {start} {end} lie outside the text ({len(text)} characters) or are empty; {accepted}")
    if len(columns) > 2:
        covered = " ".join(text[start:end] for start, end in pieces)  # brat joins fragments with a space
        if columns[2] != covered:
            raise CorpusError(f"{where}: annotated text {columns[2]!r} differs from the document text {covered!r} at {ranges}")
    return min(start for start, _ in pieces), max(end for _, end in pieces), label


def _drop_overlaps(spans: list[tuple]) -> list[tuple]:
    """Non-overlapping spans, longest first (ties: the earlier), returned in text order."""
    kept: list[tuple] = []
    for span in sorted(spans, key=lambda s: (s[0] - s[1], s[0])):
        if all(span[1] <= other[0] or other[1] <= span[0] for other in kept):
            kept.append(span)
    return sorted(kept, key=lambda s: s[0])


def write_conll(sentences: Iterable[Sentence], path: str | Path) -> None:
    """Write labelled sentences as ``token<TAB>tag`` lines, atomically.

    A blank line follows every sentence; ``-DOCSTART-<TAB>doc_id`` and a blank line precede the first
    sentence of each new `Sentence.doc_id` (a bare ``-DOCSTART-`` when it changes back to None), so
    `read_conll` reads the file back to the same tokens, tags and document ids. A ``.gz`` name is
    gzip-compressed.

    Raises:
        CorpusError: a sentence is unlabelled, or a token is empty or holds whitespace.
    """
    path = Path(path)
    parts = []
    doc_id = None
    for sentence in sentences:
        if sentence.tags is None or len(sentence.tags) != len(sentence.tokens):
            raise CorpusError(f"{path}: the sentence from {sentence.where or '(no origin)'} has no tag for every token; write_conll writes labelled sentences")
        if sentence.doc_id != doc_id:
            doc_id = sentence.doc_id
            parts.append("-DOCSTART-\n\n" if doc_id is None else f"-DOCSTART-\t{doc_id}\n\n")
        for token, tag in zip(sentence.tokens, sentence.tags):
            if not token or _WHITESPACE.search(token):
                raise CorpusError(f"{path}: token {token!r} from {sentence.where or '(no origin)'} is empty or holds whitespace; CoNLL tokens cannot")
            parts.append(f"{token}\t{tag}\n")
        parts.append("\n")
    data = "".join(parts).encode("utf-8")
    with atomic_path(path) as tmp:
        if path.name.lower().endswith(".gz"):
            data = gzip.compress(data, mtime=0)
        tmp.write_bytes(data)


def _annotation_of(txt_path: Path) -> Path | None:
    """The ``.ann`` (else ``.a1``) file beside a ``.txt``, if any."""
    for suffix in STANDOFF_SUFFIXES:
        candidate = txt_path.with_suffix(suffix)
        if candidate.is_file():
            return candidate
    return None


def read_text_lines(path: str | Path, field_name: str) -> list[str]:
    """Lines of a UTF-8 text file (gunzipped by the ``.gz`` suffix), without their line ends."""
    if not os.path.exists(path):
        raise CorpusError(f"{field_name}: file not found: {path}")
    if os.path.isdir(path):
        raise CorpusError(f"{field_name}: {path} is a folder, expected a file")
    try:
        if str(path).lower().endswith(".gz"):
            with gzip.open(path, "rb") as handle:
                raw = handle.read()
        else:
            raw = Path(path).read_bytes()
    except (OSError, EOFError, zlib.error) as err:
        raise CorpusError(f"{path}: cannot read the file ({err}); a .gz name must hold gzip data") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise CorpusError(f"{path}: not UTF-8 text (byte {err.start})") from None
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return lines


def _read_exact(path: Path) -> str:
    """Text of a standoff file with line ends kept as they are (offsets count every character)."""
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            return handle.read()
    except UnicodeDecodeError as err:
        raise CorpusError(f"{path}: not UTF-8 text (byte {err.start})") from None
    except OSError as err:
        raise CorpusError(f"{path}: cannot read the file ({err.strerror or err})") from None

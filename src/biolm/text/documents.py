"""Plain documents in, entity spans out: the prediction path of ``biolm ner predict``, ``biolm extract``
and the service's ``/v1/ner``.

In: documents as ``(id, text)`` pairs, read by `read_documents` from a ``.txt`` file (one document
per non-empty line, e.g. one abstract per line), a ``.jsonl`` file (``{"id": ..., "text": ...}``
per line) or a folder of ``.txt`` files (one document each). Each text is split into sentences and
words by `biolm.text.corpus.split_text`, tagged by a run's tagger (`biolm.text.ner.tag_sentences`),
and its entities are returned with character offsets into the original text:
``{"id", "text", "entities": [{"start", "end", "label", "text"}, ...]}``.
"""

from __future__ import annotations

import json
from pathlib import Path

from biolm.errors import BiolmError
from biolm.text.corpus import split_text, tags_to_spans


def read_documents(path: str | Path, field_name: str = "input") -> list[tuple[str, str]]:
    """``(id, text)`` pairs from a .txt file (a document per non-empty line), a .jsonl file or a folder of .txt files.

    Raises:
        BiolmError: the path does not exist, holds no document, or a JSONL line is not an object with ``text``.
    """
    path = Path(path)
    if not path.exists():
        raise BiolmError(f"{field_name}: {path} does not exist (accepted: a .txt file with one document per line, a .jsonl file, a folder of .txt files)")
    if path.is_dir():
        docs = [(p.stem, p.read_text(encoding="utf-8")) for p in sorted(path.glob("*.txt"))]
    elif path.name.endswith((".jsonl", ".jsonl.gz")):
        docs = _read_jsonl(path)
    else:
        lines = _open_text(path).splitlines()
        docs = [(f"{path.stem}:{i}", line) for i, line in enumerate(lines, 1) if line.strip()]
    if not docs:
        raise BiolmError(f"{field_name}: {path} holds no document")
    return docs


def _open_text(path: Path) -> str:
    import gzip

    try:
        return gzip.open(path, "rt", encoding="utf-8").read() if path.suffix == ".gz" else path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise BiolmError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None


def _read_jsonl(path: Path) -> list[tuple[str, str]]:
    docs = []
    for number, line in enumerate(_open_text(path).splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise BiolmError(f"{path}:{number}: not JSON ({err.msg})") from None
        if not isinstance(row, dict) or not isinstance(row.get("text"), str):
            raise BiolmError(f'{path}:{number}: expected an object with a "text" string (and optionally "id")')
        docs.append((str(row.get("id", f"{path.stem}:{number}")), row["text"]))
    return docs


def annotate(tagger, documents: list[tuple[str, str]], batch_size: int = 64) -> list[dict]:
    """Entities of each document, character offsets into its text (see the module docstring)."""
    from biolm.text.ner import tag_sentences

    sentences, owner = [], []
    for k, (doc_id, text) in enumerate(documents):
        for sentence in split_text(text, doc_id):
            sentences.append(sentence)
            owner.append(k)
    tags = tag_sentences(tagger, sentences, batch_size)
    out = [{"id": doc_id, "text": text, "entities": []} for doc_id, text in documents]
    for sentence, sentence_tags, k in zip(sentences, tags, owner, strict=True):
        for span in tags_to_spans(sentence_tags, sentence.offsets, sentence.text):
            start, end = sentence.start + span.start, sentence.start + span.end
            out[k]["entities"].append({"start": start, "end": end, "label": span.label, "text": documents[k][1][start:end]})
    return out

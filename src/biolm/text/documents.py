"""Plain documents in, entity spans out: the prediction path of ``biolm ner predict``, ``biolm extract``
and the service's ``/v1/ner``.

In: documents as ``(id, text)`` pairs, read by `read_documents` from a ``.txt`` file (one document
per non-empty line, e.g. one abstract per line), a ``.jsonl`` file (``{"doc_id" (or "id"): ..., "text": ...}``
per line), a ``.csv`` file (``doc_id`` (or ``id``) and ``text`` columns) or a folder of ``.txt`` files (one
document each). Each text is split into sentences and
words by `biolm.text.corpus.split_text`, tagged by a run's tagger (`biolm.text.ner.tag_sentences`),
and its entities are returned with character offsets into the original text:
``{"id", "text", "entities": [{"start", "end", "label", "text"}, ...]}``.
"""

from __future__ import annotations

from pathlib import Path

from biolm.errors import BiolmError
from biolm.text.corpus import jsonl_objects, read_text_lines, split_text, tags_to_spans

DOCUMENT_SUFFIXES = (".txt", ".txt.gz", ".jsonl", ".jsonl.gz", ".csv", ".csv.gz")


def read_documents(path: str | Path, field_name: str = "input") -> list[tuple[str, str]]:
    """``(id, text)`` pairs from a .txt file (a document per non-empty line), a .jsonl or .csv file, or a folder of .txt files.

    Raises:
        BiolmError: the path does not exist or has another suffix, is not UTF-8 text, holds no document, or a
            JSONL line is not an object with ``text``.
    """
    path = Path(path)
    accepted = "a .txt file with one document per line, a .jsonl file ({\"id\", \"text\"} per line), a .csv file (id, text), or a folder of .txt files"
    if not path.exists():
        raise BiolmError(f"{field_name}: {path} does not exist (accepted: {accepted})")
    if path.is_dir():
        docs = [(p.stem, "\n".join(read_text_lines(p, field_name))) for p in sorted(path.glob("*.txt"))]
    elif not path.name.lower().endswith(DOCUMENT_SUFFIXES):
        raise BiolmError(f"{field_name}: {path}: unknown kind of file (accepted: {accepted})")
    elif path.name.lower().endswith((".jsonl", ".jsonl.gz")):
        docs = _read_jsonl(path, field_name)
    elif path.name.lower().endswith((".csv", ".csv.gz")):
        docs = _read_csv(path, field_name)
    else:
        docs = [(f"{path.stem}:{i}", line) for i, line in enumerate(read_text_lines(path, field_name), 1) if line.strip()]
    if not docs:
        raise BiolmError(f"{field_name}: {path} holds no document")
    return docs


def _read_jsonl(path: Path, field_name: str) -> list[tuple[str, str]]:
    return [(str(row.get("doc_id", row.get("id", f"{path.stem}:{number}"))), row["text"])
            for number, _, row in jsonl_objects(read_text_lines(path, field_name), path)]


def _read_csv(path: Path, field_name: str) -> list[tuple[str, str]]:
    """``(id, text)`` rows of a CSV file with a ``text`` column and a ``doc_id`` or ``id`` column (else the row number)."""
    import pandas as pd

    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError, pd.errors.ParserError) as err:
        raise BiolmError(f"{field_name}: {path}: not a readable CSV file ({str(err).splitlines()[0][:120]})") from None
    if "text" not in table.columns:
        raise BiolmError(f"{field_name}: {path}: no 'text' column (columns: {', '.join(map(str, table.columns[:8]))}); expected id (or doc_id) and text")
    key = "doc_id" if "doc_id" in table.columns else "id" if "id" in table.columns else None
    ids = table[key].tolist() if key else [f"{path.stem}:{i}" for i in range(2, len(table) + 2)]
    return [(str(i), str(t)) for i, t in zip(ids, table["text"], strict=True) if str(t).strip()]


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

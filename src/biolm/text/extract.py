"""Structured extraction: entity spans -> one record per text (``biolm extract``, ``/v1/extract``).

In: documents annotated by one or more NER runs (`biolm.text.documents.annotate`; the spans of
several runs are merged, the earlier run winning where two overlap) and the ``fields`` /
``methylation`` maps of ``configs/text/record/default.yaml`` (which entity types fill which field). Out,
per text::

    {"id": ..., "genes": ["ADAMTS1", "BNC1"], "diseases": [], "cancer_types": ["pancreas cancer"],
     "chemicals": [], "methylation": "methylation", "methylation_trigger": {"text": "methylation", "start": 45, "end": 56},
     "entities": [...all spans...]}

Normalisation: gene mentions become upper-case symbols (surrounding punctuation stripped); disease
and cancer mentions a lower-case name with single spaces and a singular head noun ("Breast
Cancers" -> "breast cancer"); values are unique, in order of first mention. The methylation status
is that of the first trigger in the text (``none`` without one).

`score_extraction` compares records with a labelled corpus field by field (micro precision,
recall and F1 over (text, value) pairs, and over all list fields together: an entity F1 by exact
string match after normalisation; the methylation status over texts whose gold or predicted status
is not ``none``).
"""

from __future__ import annotations

import re

from biolm.text.corpus import Sentence

_PLURAL_HEADS = re.compile(r"(cancer|tumou?r|neoplasm|oma|emia|aemia|disease|syndrome)s$")


def _strip_brackets(text: str) -> str:
    """Drop a bracket pair that encloses the whole mention and unmatched brackets at its ends; keep the
    brackets that belong to a name (``p16(INK4a)``, ``Ca(2+)``)."""
    for open_, close in ("()", "[]", "{}"):
        if text.startswith(open_) and text.endswith(close) and text[1:-1].count(open_) == text[1:-1].count(close):
            text = text[1:-1]
        if text.endswith(close) and text.count(close) > text.count(open_):
            text = text[:-1]
        if text.startswith(open_) and text.count(open_) > text.count(close):
            text = text[1:]
    return text


def normalise(field: str, mention: str) -> str:
    """The canonical form of a mention in ``field`` (see the module docstring)."""
    text = _strip_brackets(" ".join(mention.split()).strip(" .,;:\"'")).strip(" .,;:\"'")
    if field == "genes":
        return text.upper()
    if field in ("diseases", "cancer_types"):
        return _PLURAL_HEADS.sub(r"\1", text.lower())
    return text


def build_record(doc_id: str, entities: list[dict], fields: dict[str, list[str]], methylation: dict[str, str]) -> dict:
    """One record from a text's entity spans (dicts with ``start``, ``end``, ``label``, ``text``)."""
    record: dict = {"id": doc_id}
    ordered = sorted(entities, key=lambda e: (e["start"], e["end"]))
    for field, types in fields.items():
        values = [normalise(field, e["text"]) for e in ordered if e["label"] in set(types)]
        record[field] = list(dict.fromkeys(v for v in values if v))
    triggers = [e for e in ordered if e["label"] in methylation]
    record["methylation"] = methylation[triggers[0]["label"]] if triggers else "none"
    record["methylation_trigger"] = {k: triggers[0][k] for k in ("text", "start", "end")} if triggers else None
    record["entities"] = ordered
    return record


def merge_entities(annotations: list[list[dict]]) -> list[dict]:
    """The spans of several runs on the same text; a span overlapping one already kept is dropped."""
    kept: list[dict] = []
    for entities in annotations:
        for entity in entities:
            if not any(entity["start"] < k["end"] and k["start"] < entity["end"] for k in kept):
                kept.append(entity)
    return sorted(kept, key=lambda e: (e["start"], e["end"]))


def extract_records(taggers: list, documents: list[tuple[str, str]], fields: dict[str, list[str]], methylation: dict[str, str],
                    batch_size: int = 64) -> list[dict]:
    """Records of ``documents`` (``(id, text)`` pairs) from the spans of ``taggers`` (see the module docstring)."""
    from biolm.text.documents import annotate

    per_run = [annotate(tagger, documents, batch_size) for tagger in taggers]
    records = []
    for k, (doc_id, text) in enumerate(documents):
        record = build_record(doc_id, merge_entities([annotation[k]["entities"] for annotation in per_run]), fields, methylation)
        records.append({"id": doc_id, "text": text, **{key: value for key, value in record.items() if key != "id"}})
    return records


def gold_records(sentences: list[Sentence], fields: dict[str, list[str]], methylation: dict[str, str]) -> list[dict]:
    """The records a labelled corpus implies (its entities as the spans)."""
    return [
        build_record(str(i), [{"start": s.start, "end": s.end, "label": s.label, "text": s.text} for s in sentence.spans()], fields, methylation)
        for i, sentence in enumerate(sentences)
    ]


def score_extraction(predicted: list[dict], gold: list[dict], fields: list[str]) -> dict[str, dict]:
    """Field-level micro precision/recall/F1 of ``predicted`` records against ``gold`` (same order), ``micro`` over all
    list fields together (the entity F1 of normalised strings), plus ``methylation``."""

    def prf(tp: int, n_pred: int, n_gold: int) -> dict:
        p = tp / n_pred if n_pred else 0.0
        r = tp / n_gold if n_gold else 0.0
        return {"precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0, "n_predicted": n_pred, "n_gold": n_gold}

    scores = {}
    totals = [0, 0, 0]
    for field in fields:
        tp = n_pred = n_gold = 0
        for p, g in zip(predicted, gold, strict=True):
            pv, gv = set(p[field]), set(g[field])
            tp, n_pred, n_gold = tp + len(pv & gv), n_pred + len(pv), n_gold + len(gv)
        scores[field] = prf(tp, n_pred, n_gold)
        totals = [totals[0] + tp, totals[1] + n_pred, totals[2] + n_gold]
    scores["micro"] = prf(*totals)
    pairs = [(p["methylation"], g["methylation"]) for p, g in zip(predicted, gold, strict=True)]
    tp = sum(p == g != "none" for p, g in pairs)
    scores["methylation"] = prf(tp, sum(p != "none" for p, _ in pairs), sum(g != "none" for _, g in pairs))
    return scores


def extract_sentences(taggers: list, sentences: list[Sentence], fields: dict[str, list[str]], methylation: dict[str, str],
                      batch_size: int = 64) -> list[dict]:
    """Records of already tokenised sentences (a labelled corpus scored by `score_extraction`), one per sentence."""
    from biolm.text.corpus import tags_to_spans
    from biolm.text.ner import tag_sentences

    per_run = []
    for tagger in taggers:
        tags = tag_sentences(tagger, sentences, batch_size)
        per_run.append([[{"start": s.start, "end": s.end, "label": s.label, "text": s.text} for s in tags_to_spans(t, x.offsets, x.text)]
                        for t, x in zip(tags, sentences, strict=True)])
    return [build_record(str(i), merge_entities([run[i] for run in per_run]), fields, methylation) for i in range(len(sentences))]

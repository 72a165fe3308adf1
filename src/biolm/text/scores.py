"""Entity scores of tagged sentences: seqeval's strict IOB2 precision/recall/F1 (`entity_scores`), the
usual NER error analysis (`error_summary`) and a gold-type x predicted-type table (`type_confusion`).

In: gold sentences (`biolm.text.corpus.Sentence`, with IOB2 tags) or their tag lists, and predicted tag
lists of the same lengths. Out: plain dicts and lists, as written to ``test_metrics.json``.
"""

from __future__ import annotations

from biolm.text.corpus import Sentence, tags_to_spans


def entity_scores(gold: list[list[str]], predicted: list[list[str]]) -> dict:
    """seqeval's strict IOB2 entity scores: micro ``precision``, ``recall``, ``f1`` and ``per_type``
    ``{type: {precision, recall, f1, support}}`` (support: gold entities)."""
    from seqeval.metrics import classification_report
    from seqeval.scheme import IOB2

    report = classification_report(gold, predicted, mode="strict", scheme=IOB2, output_dict=True, zero_division=0)
    micro = report.get("micro avg", {"precision": 0.0, "recall": 0.0, "f1-score": 0.0, "support": 0})
    per_type = {
        name: {"precision": float(v["precision"]), "recall": float(v["recall"]), "f1": float(v["f1-score"]), "support": int(v["support"])}
        for name, v in report.items()
        if not name.endswith(" avg")
    }
    return {"precision": float(micro["precision"]), "recall": float(micro["recall"]), "f1": float(micro["f1-score"]), "per_type": per_type}


def error_summary(gold: list[Sentence], predicted: list[list[str]]) -> dict[str, int]:
    """Counts of what went wrong, per entity (the usual NER error analysis):

    - ``correct``: a predicted entity with the gold span and type;
    - ``type``: the gold span predicted with another type;
    - ``boundary``: an overlapping prediction of the same type with other boundaries;
    - ``boundary_and_type``: an overlapping prediction of another type and other boundaries;
    - ``missed``: a gold entity that no prediction overlaps;
    - ``spurious``: a predicted entity that overlaps no gold entity.

    The first five are counted per gold entity (each gold entity once, by its best-matching
    prediction), ``spurious`` per prediction; so the counts need not add up to seqeval's false
    positives and negatives (a prediction overlapping two gold entities is seen by both).
    """
    counts = dict.fromkeys(("correct", "type", "boundary", "boundary_and_type", "missed", "spurious"), 0)
    for sentence, tags in zip(gold, predicted, strict=True):
        true = [(s.start, s.end, s.label) for s in sentence.spans()]
        pred = [(s.start, s.end, s.label) for s in tags_to_spans(tags, sentence.offsets, sentence.text)]
        for start, end, label in true:
            overlapping = [p for p in pred if p[0] < end and start < p[1]]
            if (start, end, label) in pred:
                counts["correct"] += 1
            elif any(p[:2] == (start, end) for p in overlapping):
                counts["type"] += 1
            elif any(p[2] == label for p in overlapping):
                counts["boundary"] += 1
            elif overlapping:
                counts["boundary_and_type"] += 1
            else:
                counts["missed"] += 1
        counts["spurious"] += sum(not any(t[0] < p[1] and p[0] < t[1] for t in true) for p in pred)
    return counts


def type_confusion(gold: list[Sentence], predicted: list[list[str]], types: list[str]) -> tuple[list[str], list[list[int]]]:
    """Gold type (rows, plus ``none`` for spurious) x predicted type (columns, plus ``none`` for missed),
    counted over overlapping spans."""
    names = [*types, "none"]
    index = {name: i for i, name in enumerate(names)}
    matrix = [[0] * len(names) for _ in names]
    for sentence, tags in zip(gold, predicted, strict=True):
        true = sentence.spans()
        pred = tags_to_spans(tags, sentence.offsets, sentence.text)
        for t in true:
            hits = [p for p in pred if p.start < t.end and t.start < p.end]
            for p in hits or [None]:
                matrix[index[t.label]][index[p.label] if p else index["none"]] += 1
        for p in pred:
            if not any(p.start < t.end and t.start < p.end for t in true):
                matrix[index["none"]][index[p.label]] += 1
    return names, matrix

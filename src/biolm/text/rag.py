"""Retrieval-augmented answers over a literature index (``biolm rag ask``) and their evaluation (``biolm rag evaluate``).

`ask`: the question's top-``k`` chunks (`biolm.text.retrieval.search`) become numbered passages
``[1] ... [k]`` in a prompt that asks the generator (`biolm.text.generators`) to answer from them only
and cite them as ``[n]``. The answer comes back with its citations mapped to documents; an answer that
cites no retrieved passage (or cites a number that was not given) is flagged. For a yes/no/maybe question
(PubMedQA style) the decision is parsed (`parse_decision`: the last line that starts ``Answer: yes|no|maybe``,
else an answer that opens with the word ("**Yes**, ...", "No. ...", but not "no idea"), else one that ends with it
("In summary, no.")). Without a generator, ``ask`` returns the passages with the sentence that best
matches the question (cosine of the index's embedder) marked, and says that no generator is configured.

`evaluate_retrieval`: for questions with a gold document, recall@k (the share whose gold document is
among the first k documents; documents ranked by their best chunk) and MRR (mean reciprocal rank of the
gold document within the first ``max(ks)``, 0 beyond), per method, with the mean query latency.
`evaluate_answers`: accuracy and macro-F1 (scikit-learn) of the parsed decisions against gold labels,
with or without retrieved context, and the share of answers with no parsable decision (counted wrong).
"""

from __future__ import annotations

import json
import logging
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from biolm.errors import BiolmError
from biolm.text.retrieval import KnowledgeBase, search, search_documents

if TYPE_CHECKING:
    from omegaconf import DictConfig

    from biolm.text.generators import Generator

log = logging.getLogger(__name__)
DECISIONS = ("yes", "no", "maybe")
_CITATION = re.compile(r"\[(\d+(?:\s*,\s*\d+)*)\]")
# "Answer: yes" at the start of a line (Markdown emphasis allowed), not "I cannot answer yes or no"
_FINAL = re.compile(r"^[\W_]*(?:final\s+)?answer[\W_]*(?:is[\W_]*)?(yes|no|maybe)\b", re.IGNORECASE | re.MULTILINE)
# a first word "Yes"/"No"/"Maybe" ("**Yes**, ...", "No. The ...", "Yes because ..."), not "no idea" or "yes or no"
_FIRST_WORD = re.compile(r"^[\W_]*(yes|no|maybe)\b(?![ \t]+(?:or|idea|one|evidence|data|study|studies|significant)\b)", re.IGNORECASE)
_LAST_WORD = re.compile(r"\b(yes|no|maybe)[\W_]*$", re.IGNORECASE)  # "In summary, no."


def read_questions(path: str | Path, field: str = "qa") -> list[dict]:
    """Questions of a JSONL file: ``{"id", "question", "gold" (yes/no/maybe, optional), "gold_doc_id" (optional)}`` per line.

    Raises:
        BiolmError: a line that is not such an object (named by file and line), or no question.
    """
    from biolm.text.corpus import json_lines, read_text_lines

    expected = '{"id", "question", "gold" (optional), "gold_doc_id" (optional)} per line'
    rows = []
    for number, where, row in json_lines(read_text_lines(path, field), path, expected):
        if not isinstance(row.get("question"), str) or not row["question"].strip():
            raise BiolmError(f'{where}: expected a "question" string ({expected})')
        if row.get("gold") is not None and str(row["gold"]).lower() not in DECISIONS:
            raise BiolmError(f"{where}: gold={row['gold']!r}; accepted: {', '.join(DECISIONS)}")
        rows.append({**row, "id": str(row.get("id", number))})
    if not rows:
        raise BiolmError(f"{field}: {path} holds no question")
    return rows


def passages_prompt(question: str, hits: list[dict], instruction: str, decision: bool, decision_instruction: str) -> list[dict]:
    """The chat that asks ``question`` over numbered passages (``instruction`` and, for yes/no/maybe questions, ``decision_instruction``)."""
    passages = "\n".join(f"[{hit['rank']}] {hit['text']}" for hit in hits)
    ask_for = f"{instruction} {decision_instruction}" if decision else instruction
    body = f"Passages:\n{passages}\n\nQuestion: {question}\n\n{ask_for}" if hits else f"Question: {question}\n\n{decision_instruction if decision else ''}"
    return [{"role": "user", "content": body.strip()}]


def parse_citations(answer: str, n_passages: int) -> tuple[list[int], list[int]]:
    """``(cited passage numbers within 1..n, cited numbers outside it)``, each in order of first citation."""
    cited = [int(x) for group in _CITATION.findall(answer) for x in group.split(",")]
    cited = list(dict.fromkeys(cited))
    return [c for c in cited if 1 <= c <= n_passages], [c for c in cited if not 1 <= c <= n_passages]


def parse_decision(answer: str) -> str | None:
    """``yes``, ``no`` or ``maybe`` from an answer (see the module docstring), or None."""
    finals = _FINAL.findall(answer)
    if finals:
        return finals[-1].lower()
    found = _FIRST_WORD.match(answer.strip()) or _LAST_WORD.search(answer.strip())
    return found.group(1).lower() if found else None


def best_sentences(kb: KnowledgeBase, question: str, hits: list[dict]) -> list[dict]:
    """Per passage, the sentence closest to the question (cosine): ``{"start", "end", "text"}``, offsets into the document."""
    from biolm.text.corpus import split_text

    out = []
    query = kb.embedder.encode([question])[0]
    for hit in hits:
        sentences = split_text(hit["text"]) or []
        if not sentences:
            out.append(None)
            continue
        vectors = kb.embedder.encode([s.text for s in sentences])
        best = sentences[int(np.argmax(vectors @ query))]
        out.append({"start": hit["start"] + best.start, "end": hit["start"] + best.start + len(best.text), "text": best.text})
    return out


def ask(kb: KnowledgeBase, question: str, generator: Generator | None, prompt_cfg: DictConfig | dict, k: int = 5, method: str = "hybrid", max_new_tokens: int = 256,
        decision: bool = False, search_options: dict | None = None) -> dict:
    """Answer ``question`` from the index (see the module docstring).

    Args:
        generator: a `biolm.text.generators.Generator`, or None (passages only).
        prompt_cfg: ``instruction`` and ``decision_instruction`` (configs/text/rag_prompt/).
        decision: parse a yes/no/maybe decision from the answer.
        search_options: ``candidates``, ``rrf_k``, ``weights`` of `biolm.text.retrieval.search`.

    Returns:
        ``{"question", "passages": [hits with "highlight" when there is no generator], "answer", "generator",
        "citations": [{"passage", "doc_id"}], "invalid_citations", "uncited", "decision", "note"}``.
    """
    hits = search(kb, question, k, method, **(search_options or {}))
    result: dict = {"question": question, "passages": hits, "answer": None, "generator": None, "citations": [], "invalid_citations": [],
                    "uncited": None, "decision": None, "note": None}
    if generator is None:
        for hit, highlight in zip(hits, best_sentences(kb, question, hits), strict=True):
            hit["highlight"] = highlight
        result["note"] = "no generator configured (generator=local or generator=endpoint): the retrieved passages, best-matching sentences marked"
        return result
    reply = generator.chat(passages_prompt(question, hits, str(prompt_cfg.instruction), decision, str(prompt_cfg.decision_instruction)),
                           max_new_tokens)
    valid, invalid = parse_citations(reply.content, len(hits))
    result.update({"answer": reply.content, "generator": generator.name, "invalid_citations": invalid, "uncited": not valid,
                   "citations": [{"passage": c, "doc_id": hits[c - 1]["doc_id"]} for c in valid],
                   "decision": parse_decision(reply.content) if decision else None})
    if not valid:
        result["note"] = "the answer cites none of the retrieved passages"
    return result


def evaluate_retrieval(kb: KnowledgeBase, questions: list[dict], methods: list[str], ks: list[int], **options) -> dict[str, dict]:
    """Recall@k and MRR of the gold documents per method (see the module docstring).

    Raises:
        BiolmError: no question has a ``gold_doc_id``.
    """
    if not ks or min(ks) < 1 or not methods:
        raise BiolmError(f"ks={list(ks)}, methods={list(methods)}: give at least one k (1 or more) and one method")
    judged = [q for q in questions if q.get("gold_doc_id")]
    if not judged:
        raise BiolmError('qa: no question has a "gold_doc_id"; retrieval cannot be scored')
    missing = sum(str(q["gold_doc_id"]) not in kb.manifest["documents"] for q in judged)
    if missing == len(judged):
        raise BiolmError(f"qa: none of the {len(judged)} gold_doc_id values is a document id of the index (e.g. {judged[0]['gold_doc_id']!r} vs "
                         f"{next(iter(kb.manifest['documents']))!r}); index the documents the questions name")
    if missing:
        log.warning("%d of %d gold documents are not in the index: those questions count as misses", missing, len(judged))
    depth = max(ks)
    results = {}
    for method in methods:
        ranks, seconds = [], 0.0
        for q in judged:
            started = time.perf_counter()
            docs = search_documents(kb, q["question"], depth, method, **options)
            seconds += time.perf_counter() - started
            ranks.append(docs.index(str(q["gold_doc_id"])) + 1 if str(q["gold_doc_id"]) in docs else None)
        row = {f"recall@{k}": sum(r is not None and r <= k for r in ranks) / len(ranks) for k in ks}
        row.update({"mrr": sum(1 / r for r in ranks if r is not None) / len(ranks), "n_questions": len(ranks),
                    "gold_not_indexed": missing, "latency_ms": 1000 * seconds / len(ranks)})
        results[method] = row
    return results


def evaluate_answers(kb: KnowledgeBase | None, questions: list[dict], generator, prompt_cfg, k: int, method: str, max_new_tokens: int,
                     context: bool, search_options: dict | None = None) -> tuple[dict, list[dict]]:
    """Accuracy and macro-F1 of yes/no/maybe decisions (see the module docstring), and one row per question.

    Raises:
        BiolmError: no question has a ``gold`` label, or ``context`` without an index.
    """
    from sklearn.metrics import accuracy_score, f1_score

    judged = [q for q in questions if q.get("gold")]
    if not judged:
        raise BiolmError('qa: no question has a "gold" yes/no/maybe label; answers cannot be scored')
    chats, hits_per = [], []
    for q in judged:
        hits = search(kb, q["question"], k, method, **(search_options or {})) if context else []
        hits_per.append(hits)
        chats.append(passages_prompt(q["question"], hits, str(prompt_cfg.instruction), True, str(prompt_cfg.decision_instruction)))
    replies = generator.chat_many(chats, max_new_tokens) if hasattr(generator, "chat_many") else [generator.chat(c, max_new_tokens) for c in chats]
    decisions = [parse_decision(r.content) for r in replies]
    gold = [str(q["gold"]).lower() for q in judged]
    predicted = [d or "none" for d in decisions]
    metrics = {"accuracy": accuracy_score(gold, predicted), "macro_f1": f1_score(gold, predicted, labels=list(DECISIONS), average="macro", zero_division=0),
               "undecided": sum(d is None for d in decisions) / len(decisions), "n_questions": len(judged), "context": context,
               "majority_class": max(gold.count(label) for label in DECISIONS) / len(gold),
               "uncited": sum(not parse_citations(r.content, len(h))[0] for r, h in zip(replies, hits_per, strict=True)) / len(judged) if context else None}
    rows = [{"id": q["id"], "question": q["question"], "gold": g, "decision": d, "answer": r.content,
             "retrieved": [h["doc_id"] for h in hits]} for q, g, d, r, hits in zip(judged, gold, decisions, replies, hits_per, strict=True)]
    return metrics, rows


def write_rag_report(folder: Path, retrieval: dict[str, dict] | None, answers: dict[str, dict], title: str) -> Path:
    """``metrics.json``, ``plots/recall.png`` (recall@k per method) and ``report.md`` of a ``rag evaluate`` run."""
    from biolm.data.io import atomic_path
    from biolm.plots import figure, save_png

    folder.mkdir(parents=True, exist_ok=True)
    lines = [f"# {title}", ""]
    if retrieval:
        ks = sorted(int(key.split("@")[1]) for key in next(iter(retrieval.values())) if key.startswith("recall@"))
        first = next(iter(retrieval.values()))
        lines += [f"{first['n_questions']} questions with a gold document ({first['gold_not_indexed']} of them not in the index, counted as misses).", ""]
        lines += ["| method | " + " | ".join(f"recall@{k}" for k in ks) + " | MRR | latency (ms/query) |", "|---|" + "---:|" * (len(ks) + 2)]
        for method, row in retrieval.items():
            lines.append(f"| {method} | " + " | ".join(f"{row[f'recall@{k}']:.3f}" for k in ks) + f" | {row['mrr']:.3f} | {row['latency_ms']:.1f} |")
        fig, (ax,) = figure(5.5, 3.6)
        for method, row in retrieval.items():
            ax.plot(ks, [row[f"recall@{k}"] for k in ks], "o-", label=method)
        ax.set(xlabel="k (documents)", ylabel="recall@k", title="gold document in the top k", ylim=(0, 1.02))
        ax.legend()
        ax.grid(alpha=0.3)
        (folder / "plots").mkdir(exist_ok=True)
        save_png(fig, folder / "plots" / "recall.png")
        lines += ["", "![recall@k](plots/recall.png)", ""]
    if answers:
        lines += ["| answers | accuracy | macro-F1 | undecided | no citation | questions |", "|---|---:|---:|---:|---:|---:|"]
        for name, m in answers.items():
            uncited = "" if m["uncited"] is None else f"{m['uncited']:.3f}"
            lines.append(f"| {name} | {m['accuracy']:.3f} | {m['macro_f1']:.3f} | {m['undecided']:.3f} | {uncited} | {m['n_questions']} |")
        lines += ["", f"Majority class: {next(iter(answers.values()))['majority_class']:.3f}.", ""]
    with atomic_path(folder / "metrics.json") as tmp:
        Path(tmp).write_text(json.dumps({"retrieval": retrieval, "answers": answers}, indent=2) + "\n")
    with atomic_path(folder / "report.md") as tmp:
        Path(tmp).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder / "report.md"

"""The retrieval commands of the text track (``biolm rag index|search|ask|evaluate``), registered on `biolm.cli`
like every other command; their configs live under ``configs/text/`` (``rag_<command>.yaml``)."""

from __future__ import annotations

import json
import logging

from omegaconf import DictConfig, OmegaConf

from biolm.cli import _console, _required, command

log = logging.getLogger(__name__)


def _kb(cfg: DictConfig):
    from biolm.text.retrieval import load_index

    return load_index(_required(cfg, "kb", "pass kb=<index folder of biolm rag index>"), cfg.embedder.get("path"))


def _search_options(cfg: DictConfig) -> dict:
    return {"candidates": int(cfg.retrieval.candidates), "rrf_k": int(cfg.retrieval.rrf_k),
            "weights": {str(k): float(v) for k, v in cfg.retrieval.weights.items()}}


@command
def cmd_rag_index(cfg: DictConfig) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from biolm.text.documents import read_documents
    from biolm.text.retrieval import build_index

    documents = read_documents(_required(cfg, "docs", "pass docs=<.jsonl, .csv, .txt (a document per line) or a folder of .txt>"), "docs")
    output = _required(cfg, "output", "pass output=<index folder> (an existing index gets the new and changed documents)")
    columns = (TextColumn("embedding chunks"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=_console(stderr=True), disable=not cfg.progress_bar, transient=True) as bar:
        task = bar.add_task("embed", total=None)
        _, counts = build_index(documents, output, str(cfg.embedder.path), int(cfg.chunk.max_words), int(cfg.chunk.overlap_sentences),
                                int(cfg.embedder.batch_size), lambda total, done: bar.update(task, total=total, completed=done))
    log.info("%s: %d documents (%d added, %d changed, %d unchanged), %d chunks (%d embedded now) in %.1f s", output, counts["documents"],
             counts["added"], counts["changed"], counts["unchanged"], counts["chunks"], counts["embedded"], counts["seconds"])


@command
def cmd_rag_search(cfg: DictConfig) -> None:
    from rich.table import Table

    from biolm.text.retrieval import search

    kb = _kb(cfg)
    hits = search(kb, _required(cfg, "query", 'pass query="..."'), int(cfg.k), str(cfg.retrieval.method), **_search_options(cfg))
    if cfg.get("output"):
        from biolm.cli_text import _write_jsonl

        _write_jsonl(hits, str(cfg.output))
        return
    table = Table(title=f"{cfg.retrieval.method} search: {cfg.query}")
    for column in ("rank", "document", "score", "passage"):
        table.add_column(column, justify="right" if column in ("rank", "score") else "left")
    for hit in hits:
        table.add_row(str(hit["rank"]), hit["doc_id"], f"{hit['score']:.4g}", hit["text"][:300] + ("…" if len(hit["text"]) > 300 else ""))
    _console().print(table)


@command
def cmd_rag_ask(cfg: DictConfig) -> None:
    from rich.markup import escape

    from biolm.text.generators import build_generator
    from biolm.text.rag import ask

    kb = _kb(cfg)
    generator = build_generator(cfg.generator)
    result = ask(kb, _required(cfg, "question", 'pass question="..."'), generator, cfg.rag_prompt, int(cfg.k), str(cfg.retrieval.method),
                 int(cfg.max_new_tokens), bool(cfg.decision))
    if cfg.get("output"):
        from pathlib import Path

        from biolm.runs import write_json

        write_json(result, Path(cfg.output))
    console = _console()
    if result["answer"] is not None:
        console.print(f"[bold]answer[/] ({escape(result['generator'])}): {escape(result['answer'])}")
        if result["decision"] is not None or cfg.decision:
            console.print(f"decision: {result['decision'] or 'none found'}")
        cited = ", ".join(f"[{c['passage']}] {c['doc_id']}" for c in result["citations"])
        console.print(f"citations: {escape(cited) or 'none'}" + (f"; not among the passages: {result['invalid_citations']}" if result["invalid_citations"] else ""))
    if result["note"]:
        console.print(f"[yellow]{escape(result['note'])}[/]")
    for hit in result["passages"]:
        text = escape(hit["text"])
        if hit.get("highlight"):
            mark = escape(hit["highlight"]["text"])
            text = text.replace(mark, f"[bold yellow]{mark}[/]", 1)
        console.print(f"[bold][{hit['rank']}][/] {escape(hit['doc_id'])} (score {hit['score']:.4g}): {text}")


@command
def cmd_rag_evaluate(cfg: DictConfig) -> None:
    from pathlib import Path

    from rich.table import Table

    from biolm.errors import BiolmError
    from biolm.runs import default_run_name
    from biolm.text.generators import build_generator
    from biolm.text.rag import evaluate_answers, evaluate_retrieval, read_questions, write_rag_report

    kb = _kb(cfg)
    questions = read_questions(_required(cfg, "qa", "pass qa=<JSONL of questions with gold_doc_id and/or gold>"))
    if cfg.get("split"):
        questions = [q for q in questions if str(q.get("split")) == str(cfg.split)]
        if not questions:
            raise BiolmError(f"split={cfg.split}: no question of {cfg.qa} has this split")
    flags = [str(f) for f in cfg.skip_flagged or []]
    questions = [q for q in questions if not any(q.get(flag) is True for flag in flags)]
    if cfg.get("limit"):
        questions = questions[: int(cfg.limit)]
    methods, ks = [str(m) for m in cfg.methods], [int(k) for k in cfg.ks]
    retrieval = evaluate_retrieval(kb, questions, methods, ks, **_search_options(cfg)) if any(q.get("gold_doc_id") for q in questions) else None
    answers: dict[str, dict] = {}
    generator = build_generator(cfg.generator)
    folder = Path(cfg.output_dir) / (str(cfg.run_name) if cfg.get("run_name") else default_run_name("rag"))
    if generator is not None:
        for context in ([True, False] if cfg.compare_without_context else [True]):
            name = f"{generator.name}, {'top-' + str(cfg.k) + ' passages' if context else 'no context'}"
            answers[name], rows = evaluate_answers(kb, questions, generator, cfg.rag_prompt, int(cfg.k), str(cfg.retrieval.method),
                                                   int(cfg.max_new_tokens), context)
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"answers_{'context' if context else 'no_context'}.jsonl").write_text(
                "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    report = write_rag_report(folder, retrieval, answers, f"rag evaluate: {cfg.qa} on {cfg.kb}")
    OmegaConf.save(cfg, folder / "config.yaml", resolve=True)
    console = _console()
    if retrieval:
        table = Table(title=f"retrieval of the gold document ({next(iter(retrieval.values()))['n_questions']} questions)")
        for column in ("method", *(f"recall@{k}" for k in ks), "MRR", "ms/query"):
            table.add_column(column, justify="left" if column == "method" else "right")
        for method, row in retrieval.items():
            table.add_row(method, *(f"{row[f'recall@{k}']:.3f}" for k in ks), f"{row['mrr']:.3f}", f"{row['latency_ms']:.1f}")
        console.print(table)
    for name, m in answers.items():
        console.print(f"{name}: accuracy {m['accuracy']:.3f}, macro-F1 {m['macro_f1']:.3f}, undecided {m['undecided']:.3f} "
                      f"(majority class {m['majority_class']:.3f}; {m['n_questions']} questions)")
    log.info("report written to %s", report)

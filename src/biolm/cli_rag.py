"""The retrieval commands of the text track (``biolm rag index|search|ask|evaluate``), registered on `biolm.cli`
like every other command; their configs live under ``configs/text/`` (``rag_<command>.yaml``)."""

from __future__ import annotations

import logging

from omegaconf import DictConfig, OmegaConf

from biolm.cli import _console, _required, command
from biolm.cli_text import _write_jsonl

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
    log.info("%s: %d documents in the index (of docs=: %d added, %d changed, %d unchanged; %d indexed earlier and kept), %d chunks "
             "(%d embedded now) in %.1f s", output, counts["documents"], counts["added"], counts["changed"], counts["unchanged"], counts["kept"],
             counts["chunks"], counts["embedded"], counts["seconds"])


@command
def cmd_rag_search(cfg: DictConfig) -> None:
    from rich.table import Table

    from biolm.text.retrieval import search

    kb = _kb(cfg)
    hits = search(kb, _required(cfg, "query", 'pass query="..."'), int(cfg.k), str(cfg.retrieval.method), **_search_options(cfg))
    if cfg.get("output"):
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
                 int(cfg.max_new_tokens), bool(cfg.decision), _search_options(cfg))
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
    if cfg.get("limit") is not None:
        if int(cfg.limit) < 1:
            raise BiolmError(f"limit={cfg.limit}: accepted: 1 or more questions, or null for all")
        questions = questions[: int(cfg.limit)]
    methods, ks = [str(m) for m in cfg.methods], [int(k) for k in cfg.ks]
    generator = build_generator(cfg.generator)
    has_gold_docs, has_labels = any(q.get("gold_doc_id") for q in questions), any(q.get("gold") for q in questions)
    if not has_gold_docs and not (generator is not None and has_labels):
        raise BiolmError(f"qa: nothing to score: {cfg.qa} has no gold_doc_id (retrieval)" + ("" if generator is not None else
                         " and no generator is set (answers: generator=local or generator=endpoint)") + ("" if has_labels else " nor gold labels"))
    retrieval = evaluate_retrieval(kb, questions, methods, ks, **_search_options(cfg)) if has_gold_docs else None
    answers: dict[str, dict] = {}
    folder = Path(cfg.output_dir) / (str(cfg.run_name) if cfg.get("run_name") else default_run_name("rag"))
    if generator is not None and has_labels:
        for context in ([True, False] if cfg.compare_without_context else [True]):
            name = f"{generator.name}, {'top-' + str(cfg.k) + ' passages' if context else 'no context'}"
            answers[name], rows = evaluate_answers(kb, questions, generator, cfg.rag_prompt, int(cfg.k), str(cfg.retrieval.method),
                                                   int(cfg.max_new_tokens), context, _search_options(cfg))
            folder.mkdir(parents=True, exist_ok=True)
            _write_jsonl(rows, str(folder / f"answers_{'context' if context else 'no_context'}.jsonl"))
    report = write_rag_report(folder, retrieval, answers, f"rag evaluate: {cfg.qa} on {cfg.kb}")
    saved = cfg.copy()
    if saved.generator.get("api_key"):
        saved.generator.api_key = "***"  # the key stays out of the run folder
    OmegaConf.save(saved, folder / "config.yaml", resolve=True)
    console = _console()
    if retrieval:
        first = next(iter(retrieval.values()))
        table = Table(title=f"retrieval of the gold document ({first['n_questions']} questions"
                            + (f"; {first['gold_not_indexed']} gold documents not indexed, counted as misses)" if first["gold_not_indexed"] else ")"))
        for column in ("method", *(f"recall@{k}" for k in ks), "MRR", "ms/query"):
            table.add_column(column, justify="left" if column == "method" else "right")
        for method, row in retrieval.items():
            table.add_row(method, *(f"{row[f'recall@{k}']:.3f}" for k in ks), f"{row['mrr']:.3f}", f"{row['latency_ms']:.1f}")
        console.print(table)
    for name, m in answers.items():
        console.print(f"{name}: accuracy {m['accuracy']:.3f}, macro-F1 {m['macro_f1']:.3f}, undecided {m['undecided']:.3f} "
                      f"(majority class {m['majority_class']:.3f}; {m['n_questions']} questions)")
    log.info("report written to %s", report)

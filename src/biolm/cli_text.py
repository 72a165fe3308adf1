"""The text track's commands (``biolm ner train|evaluate|predict``, ``biolm extract``), registered on
`biolm.cli` like every other command; their configs live under ``configs/text/``."""

from __future__ import annotations

import json
import logging

from omegaconf import DictConfig, ListConfig

from biolm.cli import _console, _required, command

log = logging.getLogger(__name__)


def _print_entity_scores(title: str, metrics: dict) -> None:
    from rich.table import Table

    table = Table(title=title)
    for column in ("entity type", "precision", "recall", "F1", "gold entities"):
        table.add_column(column, justify="left" if column == "entity type" else "right")
    table.add_row("micro", *(f"{metrics[k]:.4f}" for k in ("precision", "recall", "f1")), str(metrics.get("n_entities", "")))
    for name, row in sorted(metrics["per_type"].items()):
        table.add_row(name, *(f"{row[k]:.4f}" for k in ("precision", "recall", "f1")), str(row["support"]))
    _console().print(table)
    if "errors" in metrics:
        _console().print("errors: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in metrics["errors"].items()))


def _write_jsonl(rows: list[dict], output: str) -> None:
    from pathlib import Path

    from biolm.data.io import atomic_path

    if output == "-":
        for row in rows:
            print(json.dumps(row, ensure_ascii=False))
        return
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(output) as tmp:
        Path(tmp).write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")


@command
def cmd_ner_train(cfg: DictConfig) -> None:
    from lightning.pytorch.utilities import rank_zero_only

    from biolm import api

    run_dir = api.fit(cfg)
    if rank_zero_only.rank != 0:
        return
    _print_entity_scores(f"test entity scores (strict IOB2) — {run_dir}", json.loads((run_dir / "test_metrics.json").read_text()))


@command
def cmd_ner_evaluate(cfg: DictConfig) -> None:
    from biolm import api

    run = api.load_ner_run(_required(cfg, "run", "pass run=runs/<ner run>"))
    metrics, _ = api.evaluate_ner(run, api.read_corpora(cfg.data.get("test"), "data.test"), int(cfg.batch_size))
    _print_entity_scores(f"entity scores (strict IOB2) — {run.path} on {cfg.data.test}", metrics)
    if cfg.get("output"):
        from pathlib import Path

        from biolm.runs import write_json

        write_json(metrics, Path(cfg.output))
        log.info("metrics written to %s", cfg.output)


@command
def cmd_ner_predict(cfg: DictConfig) -> None:
    from biolm import api

    run = api.load_ner_run(_required(cfg, "run", "pass run=runs/<ner run>"))
    documents = api.read_documents(_required(cfg, "input", "pass input=<.txt (a document per line), .jsonl or folder>"))
    rows = api.annotate(run.tagger, documents, int(cfg.batch_size))
    _write_jsonl(rows, str(cfg.get("output") or "-"))
    if str(cfg.get("output") or "-") != "-":
        log.info("%d entities in %d documents written to %s", sum(len(r["entities"]) for r in rows), len(rows), cfg.output)


@command
def cmd_extract(cfg: DictConfig) -> None:
    from biolm import api

    runs = cfg.get("run")
    if not runs:
        _required(cfg, "run", "pass run=runs/<ner run> or run=[runs/a,runs/b]")
    taggers = [api.load_ner_run(str(path)).tagger for path in (runs if isinstance(runs, list | ListConfig) else [runs])]
    fields = {str(k): [str(t) for t in v] for k, v in cfg.record.fields.items()}
    methylation = {str(k): str(v) for k, v in cfg.record.methylation.items()}
    if cfg.get("gold"):
        sentences = api.read_corpora(cfg.gold, "gold")
        predicted = api.extract_sentences(taggers, sentences, fields, methylation, int(cfg.batch_size))
        scores = api.score_extraction(predicted, api.gold_records(sentences, fields, methylation), [*fields])
        from rich.table import Table

        table = Table(title=f"record fields vs the annotations ({len(sentences)} sentences)")
        for column in ("field", "precision", "recall", "F1", "gold values", "predicted values"):
            table.add_column(column, justify="left" if column == "field" else "right")
        labels = {"micro": "all list fields (micro)", "methylation": "methylation status"}
        for field, row in scores.items():
            if row["n_gold"] or row["n_predicted"]:  # a field the corpus does not annotate has nothing to score
                table.add_row(labels.get(field, field), *(f"{row[k]:.4f}" for k in ("precision", "recall", "f1")), str(row["n_gold"]),
                              str(row["n_predicted"]))
        _console().print(table)
        return
    documents = api.read_documents(_required(cfg, "input", "pass input=<.txt (a document per line), .jsonl or folder>, or gold=<labelled corpus>"))
    records = api.extract_records(taggers, documents, fields, methylation, int(cfg.batch_size))
    _write_jsonl(records, str(cfg.get("output") or "-"))
    if str(cfg.get("output") or "-") != "-":
        log.info("%d records written to %s", len(records), cfg.output)

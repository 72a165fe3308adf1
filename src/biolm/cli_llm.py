"""The LLM commands of the text track (``biolm llm generate|data|sft|extract|evaluate``), registered on `biolm.cli`
like every other command; their configs live under ``configs/text/`` (``llm_<command>.yaml``)."""

from __future__ import annotations

import json
import logging

from omegaconf import DictConfig, ListConfig

from biolm.cli import _console, _required, command
from biolm.cli_text import _write_jsonl

log = logging.getLogger(__name__)


def _llm(cfg: DictConfig):
    """``run=`` (a tuned run) or the model of ``model.pretrained`` / ``model.package`` (the offline default)."""
    from biolm import api

    if cfg.get("run"):
        return api.load_llm(run=str(cfg.run), pretrained=cfg.model.get("pretrained"))
    llm = api.load_llm(pretrained=api.pretrained_path(cfg.model))
    if cfg.model.get("chat_template"):
        api.prepare_tokenizer(llm.tokenizer, str(cfg.model.chat_template))
    return llm


def _prompts(cfg: DictConfig) -> list[tuple[str, list[dict]]]:
    """``(id, chat)`` pairs of ``prompt=`` or ``input=`` (.txt: a prompt per line; .jsonl: ``prompt`` or ``messages``)."""
    from biolm.errors import BiolmError
    from biolm.text.corpus import json_lines, read_text_lines
    from biolm.text.instructions import chat_messages

    system = [{"role": "system", "content": str(cfg.system)}] if cfg.get("system") else []
    if cfg.get("prompt"):
        return [("prompt", [*system, {"role": "user", "content": str(cfg.prompt)}])]
    source = _required(cfg, "input", 'pass prompt="..." or input=<.txt with a prompt per line, or .jsonl with {"prompt"} or {"messages"}>')
    lines = read_text_lines(source, "input")
    if not source.lower().endswith((".jsonl", ".jsonl.gz")):
        chats = [(str(number), [*system, {"role": "user", "content": line}]) for number, line in enumerate(lines, start=1) if line.strip()]
    else:
        chats = []
        expected = '{"prompt": "..."} or {"messages": [{"role", "content"}, ...]} per line'
        for number, where, row in json_lines(lines, source, expected):
            if isinstance(row.get("prompt"), str):
                chat = [*system, {"role": "user", "content": row["prompt"]}]
            elif "messages" in row:
                chat = chat_messages(row["messages"], where, last="user")
            else:
                raise BiolmError(f"{where}: expected {expected}")
            chats.append((str(row.get("id", number)), chat))
    if not chats:
        raise BiolmError(f"input: {source} holds no prompt")
    return chats


@command
def cmd_llm_generate(cfg: DictConfig) -> None:
    from biolm import api

    chats = _prompts(cfg)
    llm = _llm(cfg)
    answers = api.ask_llm(llm, [chat for _, chat in chats], int(cfg.generation.max_new_tokens), int(cfg.generation.batch_size))
    output = str(cfg.get("output") or "-")
    if cfg.get("prompt") and output == "-":
        print(answers[0])
        return
    _write_jsonl([{"id": key, "prompt": chat[-1]["content"], "answer": answer} for (key, chat), answer in zip(chats, answers, strict=True)], output)
    if output != "-":
        log.info("%d answers written to %s", len(answers), output)


@command
def cmd_llm_data(cfg: DictConfig) -> None:
    from biolm import api
    from biolm.errors import BiolmError

    style = api.prompt_style(cfg)
    if cfg.get("from_ner") and cfg.get("from_records"):
        raise BiolmError("from_ner and from_records: pass one of them")
    if cfg.get("from_records"):
        examples, schema = api.record_examples(str(cfg.from_records), "from_records", api.full_schema(cfg), style)
    else:
        _required(cfg, "from_ner", "pass from_ner=<labelled corpus> or from_records=<records of biolm extract>")
        sentences = api.read_corpora(cfg.from_ner, "from_ner")
        api.require_labels(sentences, "from_ner")
        fields, methylation, descriptions = api.record_maps(cfg)
        schema = api.schema_for(sentences, fields, methylation, descriptions)
        examples = api.corpus_examples(sentences, schema, style, fields, methylation)
    output = str(cfg.get("output") or "-")
    _write_jsonl(api.instruction_rows(examples), output)
    if output != "-":
        log.info("%d instruction/answer pairs written to %s; answer keys: %s", len(examples), output, ", ".join(schema.keys))


@command
def cmd_llm_sft(cfg: DictConfig) -> None:
    from lightning.pytorch.utilities import rank_zero_only

    from biolm import api

    run_dir = api.fit(cfg)
    if rank_zero_only.rank != 0:
        return
    metrics = json.loads((run_dir / "test_metrics.json").read_text())
    if "after" in metrics:
        _print_scores(f"test scores — {run_dir}", {**({"before tuning": metrics["before"]} if "before" in metrics else {}), "after tuning": metrics["after"]})


def _maps(cfg: DictConfig, llm) -> tuple[dict, dict]:
    """The record maps of the run (its own config) or of this command, for the schema's keys."""
    from biolm import api

    fields, methylation, _ = api.record_maps(llm.cfg if llm.cfg is not None else cfg)
    return api.corpus_maps(api.require_schema(llm), fields, methylation)


def _shots(cfg: DictConfig, llm) -> list[dict]:
    """The few-shot turns of ``shots=`` drawn from the labelled corpus ``shots_from``."""
    from biolm import api

    if not int(cfg.shots):
        return []
    source = _required(cfg, "shots_from", f"shots={cfg.shots} draws its worked examples from a labelled corpus: pass shots_from=<corpus>")
    sentences = api.read_corpora(source, "shots_from")
    api.require_labels(sentences, "shots_from")
    fields, methylation = _maps(cfg, llm)
    pool = api.corpus_examples(sentences, llm.schema, llm.style, fields, methylation)
    return api.few_shot_turns(pool, int(cfg.shots), int(cfg.seed), "shots_from")


@command
def cmd_llm_extract(cfg: DictConfig) -> None:
    from biolm import api

    documents = api.read_documents(_required(cfg, "input", "pass input=<.txt (a document per line), .jsonl or folder>"))
    llm = _llm(cfg)
    if llm.path is None:  # a model prompted as it is: asked for every record field
        llm.schema, llm.style = api.full_schema(cfg), api.prompt_style(cfg)
    records = api.llm_extract(llm, documents, _shots(cfg, llm), cfg.generation)
    output = str(cfg.get("output") or "-")
    _write_jsonl(records, output)
    invalid = sum(not r["valid"] for r in records)
    if output != "-":
        log.info("%d records written to %s (%d with an invalid answer for some sentence)", len(records), output, invalid)


def _print_scores(title: str, systems: dict[str, dict]) -> None:
    from rich.table import Table

    table = Table(title=title)
    for column in ("system", "entity F1", "precision", "recall", "parse rate", "invalid", "sentences"):
        table.add_column(column, justify="left" if column == "system" else "right")
    for name, m in systems.items():
        table.add_row(name, *(f"{m[k]:.4f}" for k in ("entity_f1", "precision", "recall")), f"{m['parse_rate']:.3f}", str(m["n_invalid"]), str(m["n_sentences"]))
    _console().print(table)
    first = next(iter(systems.values()))["fields"]
    columns = [f for f, row in first.items() if f != "micro" and (row["n_gold"] or row["n_predicted"])]
    if columns:
        detail = Table(title="F1 per field (exact string match after normalisation; methylation: the status of texts that report one)")
        detail.add_column("system")
        for field in columns:
            detail.add_column("methylation status" if field == "methylation" else field, justify="right")
        for name, m in systems.items():
            detail.add_row(name, *(f"{m['fields'][f]['f1']:.4f}" if f in m["fields"] else "-" for f in columns))
        _console().print(detail)


@command
def cmd_llm_evaluate(cfg: DictConfig) -> None:
    from pathlib import Path

    from biolm import api
    from biolm.runs import write_json

    test = api.read_corpora(cfg.data.get("test"), "data.test")
    api.require_labels(test, "data.test")
    test = api.sample_sentences(test, cfg.sample, int(cfg.seed))
    llm = _llm(cfg)
    if llm.path is None:  # a model prompted as it is: asked for the fields the corpus annotates, as a tuned run would be
        llm.schema, llm.style = api.schema_for(test, *api.record_maps(cfg)), api.prompt_style(cfg)
    fields, methylation = _maps(cfg, llm)
    name = str(cfg.run) if cfg.get("run") else f"{Path(api.pretrained_path(cfg.model)).name} ({int(cfg.shots)}-shot)"
    metrics, rows = api.evaluate_llm(llm, test, fields, methylation, cfg.generation, _shots(cfg, llm))
    systems = {name: metrics}
    baselines = cfg.baselines or []
    for path in baselines if isinstance(baselines, list | ListConfig) else [baselines]:
        systems[str(path)] = api.score_taggers([api.load_ner_run(str(path)).tagger], test, fields, methylation)
    _print_scores(f"JSON answers vs the annotations of {cfg.data.test} ({len(test)} sentences)", systems)
    if cfg.get("output"):
        write_json(systems, Path(cfg.output))
        log.info("scores written to %s", cfg.output)
    if cfg.get("answers"):
        _write_jsonl(rows, str(cfg.answers))
        log.info("answers written to %s", cfg.answers)

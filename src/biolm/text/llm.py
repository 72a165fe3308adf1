"""A local causal LM that answers in a JSON record format: prompting (zero- and few-shot), a tuned run's loading,
structured extraction and scoring (``biolm llm generate|extract|evaluate``).

In: a causal LM (`biolm.models.causal_lm.load_causal_lm`: a local folder, a GGUF file, a Hub id) or an
``biolm llm sft`` run folder (`load_llm_run`); texts or a labelled corpus. Each text is asked as one
chat (`biolm.text.instructions.PromptStyle`), optionally after ``shots`` worked examples from a
labelled corpus; answers are greedy, capped at ``generation.max_new_tokens``, and parsed against the
run's `biolm.text.answers.RecordSchema`. ``generation.retries`` asks again, with the parse error fed
back (``generation.retry_prompt``), for answers that are not valid.

Scores (`evaluate_llm`): the parsed records and the corpus's gold records are normalised with
`biolm.text.extract.normalise` and compared with `biolm.text.extract.score_extraction`: field-level
precision/recall/F1 and an entity F1 over all list fields (**exact string match after
normalisation**, per sentence, so a span's position does not count, unlike seqeval's strict F1 of
``biolm ner``); an invalid answer counts as an empty record. The parse rate is the share of valid
answers. NER runs are scored the same way on the same sentences (`score_taggers`), so taggers,
encoders and LLMs share one table.
"""

from __future__ import annotations

import json
import logging
import random
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from biolm.errors import BiolmError
from biolm.models.causal_lm import generate, load_causal_lm, prepare_tokenizer, render_chat, weights_fingerprint
from biolm.text.answers import RecordSchema, gold_answer, parse_answer
from biolm.text.corpus import Sentence, split_text
from biolm.text.extract import gold_records, normalise, score_extraction
from biolm.text.instructions import PromptStyle

log = logging.getLogger(__name__)


def record_maps(cfg: DictConfig) -> tuple[dict[str, list[str]], dict[str, str], dict[str, str]]:
    """``(fields, methylation, descriptions)`` of the ``record`` config group (configs/text/record/)."""
    record = cfg.record
    return ({str(k): [str(t) for t in v] for k, v in record.fields.items()}, {str(k): str(v) for k, v in record.methylation.items()},
            {str(k): str(v) for k, v in (record.get("descriptions") or {}).items()})


def prompt_style(cfg: DictConfig) -> PromptStyle:
    """The ``prompt`` config (configs/text/instructions/: the instruction and an optional system turn)."""
    return PromptStyle(str(cfg.prompt.instruction), str(cfg.prompt.system) if cfg.prompt.get("system") else None)


def full_schema(cfg: DictConfig) -> RecordSchema:
    """Every field and status of the ``record`` config (the schema of a model prompted without a run)."""
    fields, methylation, descriptions = record_maps(cfg)
    return RecordSchema([*fields], list(dict.fromkeys(methylation.values())), descriptions)


def pretrained_path(model_cfg: DictConfig) -> str:
    """``model.pretrained``, else the folder of the model package ``model.package`` names (`biolm.resources.package_model_path`).

    Raises:
        BiolmError: neither is set, or the package is not installed (the message says how to install it).
    """
    if model_cfg.get("pretrained"):
        return str(model_cfg.pretrained)
    if model_cfg.get("package"):
        from biolm.resources import package_model_path

        return package_model_path(str(model_cfg.package))
    raise BiolmError("model.pretrained: missing; pass a local causal LM folder, a .gguf file or a Hub id")


@dataclass
class LlmRun:
    """A causal LM ready to answer: from a tuned run folder (``path`` set: its schema, prompt and config) or a
    pretrained model (``path`` None; the caller sets ``schema`` and ``style`` for structured answers)."""

    model: object
    tokenizer: object
    schema: RecordSchema | None = None
    style: PromptStyle | None = None
    path: Path | None = None
    cfg: DictConfig | None = None


RUN_FILES = ("config.yaml", "llm.json", "tokenizer")


def load_llm_run(path: str | Path, check_base: bool = True) -> LlmRun:
    """Load a run folder written by ``biolm llm sft``: its base model (checked against the recorded SHA-256
    unless ``check_base`` is false), its adapter folded in (or its full weights), its tokenizer, schema and prompt.

    Raises:
        BiolmError: not a finished LLM run, or its base model is missing or changed.
    """
    from transformers import AutoTokenizer

    path = Path(path)
    missing = [name for name in RUN_FILES if not (path / name).exists()]
    weights = [name for name in ("adapter", "model.safetensors") if (path / name).exists()]
    if missing or not weights:
        raise BiolmError(f"run: {path} is not a finished LLM run (missing: {', '.join(missing + ([] if weights else ['adapter/ or model.safetensors']))}); "
                         "pass run=runs/<name> of biolm llm sft")
    try:
        cfg = OmegaConf.load(path / "config.yaml")
        info = json.loads((path / "llm.json").read_text())
        base = str(info["base"]["pretrained"])
    except (OSError, ValueError, KeyError, TypeError, OmegaConfBaseException) as err:
        raise BiolmError(f"run: {path} has an unreadable config.yaml or llm.json ({str(err).splitlines()[0][:120]})") from None
    recorded = info["base"].get("sha256")
    if check_base and recorded and weights_fingerprint(base).get("sha256") != recorded:
        raise BiolmError(f"run: its base model {base} is missing or changed since the run was trained (SHA-256 of {info['base'].get('weights')} differs)")
    model, _ = load_causal_lm(base)
    if "adapter" in weights:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(path / "adapter"), is_trainable=False).merge_and_unload()
    else:
        from safetensors.torch import load_file

        result = model.load_state_dict(load_file(str(path / "model.safetensors")), strict=False)
        if result.missing_keys or result.unexpected_keys:
            raise BiolmError(f"run: {path}/model.safetensors does not fit its base model {base} (missing {len(result.missing_keys)}, "
                             f"unexpected {len(result.unexpected_keys)} weights, e.g. {(result.missing_keys or result.unexpected_keys)[0]})")
    tokenizer = AutoTokenizer.from_pretrained(str(path / "tokenizer"))
    prepare_tokenizer(tokenizer)
    schema = RecordSchema.from_dict(info["schema"]) if info.get("schema") else None
    style = PromptStyle(str(info["prompt"]["instruction"]), info["prompt"].get("system"))
    model.eval()
    return LlmRun(model, tokenizer, schema, style, path, cfg)


def load_llm(run: str | Path | None = None, pretrained: str | Path | None = None) -> LlmRun:
    """A tuned run (``run``) or a pretrained causal LM as it is (``pretrained``; set ``schema``/``style`` to ask for records).

    Raises:
        BiolmError: both or neither given, or what `load_llm_run` / `load_causal_lm` raise.
    """
    if run and pretrained:
        raise BiolmError("run= and model.pretrained=: pass one of them (a run names its own base model)")
    if run:
        return load_llm_run(run)
    model, tokenizer = load_causal_lm(str(pretrained or ""))
    return LlmRun(model, tokenizer)


def ask(llm: LlmRun, chats: list[list[dict]], max_new_tokens: int, batch_size: int) -> list[str]:
    """Greedy answers to chats (each a list of ``{"role", "content"}`` ending with the user's turn)."""
    prompts = [render_chat(llm.tokenizer, chat, add_generation_prompt=True) for chat in chats]
    return generate(llm.model, llm.tokenizer, prompts, max_new_tokens, batch_size)


def require_schema(llm: LlmRun) -> RecordSchema:
    """The run's record schema (a run tuned on free-text answers has none: nothing to parse or score)."""
    if llm.schema is None or llm.style is None:
        raise BiolmError("run: trained on free-text instructions (no record schema), so its answers cannot be parsed or scored; "
                         "use biolm llm generate for them")
    return llm.schema


def answer_texts(llm: LlmRun, texts: list[str], shots: list[dict], generation: DictConfig | dict) -> list[dict]:
    """Ask about each text (after the ``shots`` turns) and parse the answers.

    Args:
        generation: ``max_new_tokens``, ``batch_size``, ``retries`` and ``retry_prompt`` (with ``{error}`` and ``{keys}``).

    Returns:
        per text ``{"answer": raw text, "record": dict (empty record when invalid), "valid": bool,
        "error": str | None, "attempts": int}``.
    """
    schema = require_schema(llm)
    max_new, batch, retries = int(generation["max_new_tokens"]), int(generation["batch_size"]), int(generation["retries"])
    if retries < 0:
        raise BiolmError(f"generation.retries={retries}: accepted: 0 or more")
    validator = schema.validator()
    chats = [[*llm.style.opening(), *shots, {"role": "user", "content": llm.style.user_turn(text, schema)}] for text in texts]
    results: list[dict] = [{} for _ in texts]
    pending = list(range(len(texts)))
    for attempt in range(1, retries + 2):
        answers = ask(llm, [chats[i] for i in pending], max_new, batch)
        for i, answer in zip(pending, answers, strict=True):
            parsed = parse_answer(answer, schema, validator)
            error = parsed.error
            if error and len(llm.tokenizer(answer, add_special_tokens=False)["input_ids"]) >= max_new:
                error += f" (cut at generation.max_new_tokens={max_new})"
            results[i] = {"answer": answer, "record": parsed.record or schema.empty(), "valid": parsed.record is not None, "error": error,
                          "attempts": attempt}
            if error and attempt <= retries:  # feed the reason back for the next attempt
                retry = str(generation["retry_prompt"]).format(error=parsed.error, keys=", ".join(schema.keys))
                chats[i] = [*chats[i], {"role": "assistant", "content": answer}, {"role": "user", "content": retry}]
        pending = [i for i in pending if not results[i]["valid"]]
        if not pending:
            break
    return results


def normalised(record: dict, schema: RecordSchema) -> dict:
    """A parsed record in the form `score_extraction` compares (values normalised, unique)."""
    out = {name: list(dict.fromkeys(v for v in (normalise(name, value) for value in record.get(name, [])) if v)) for name in schema.fields}
    out["methylation"] = record.get("methylation", "none")
    return out


def sample_sentences(sentences: list[Sentence], n: int | None, seed: int) -> list[Sentence]:
    """A seeded sample of ``n`` sentences in corpus order (all of them when ``n`` is null or not smaller).

    Raises:
        BiolmError: ``n`` is not null and below 1.
    """
    if n is None:
        return sentences
    if int(n) < 1:
        raise BiolmError(f"sample={n}: accepted: a number of sentences (1 or more), or null for all")
    if n >= len(sentences):
        return sentences
    keep = sorted(random.Random(seed).sample(range(len(sentences)), int(n)))
    return [sentences[i] for i in keep]


def corpus_maps(schema: RecordSchema, fields: dict[str, list[str]], methylation: dict[str, str]) -> tuple[dict[str, list[str]], dict[str, str]]:
    """The record field maps (`record_maps`) restricted to ``schema``.

    Raises:
        BiolmError: a field of the schema has no entity types in ``fields``.
    """
    missing = [name for name in schema.fields if name not in fields]
    if missing:
        raise BiolmError(f"record.fields: no entity types for {', '.join(missing)} (the answers have these keys)")
    return {name: fields[name] for name in schema.fields}, (methylation if schema.statuses else {})


def summary(scores: dict, n_sentences: int, results: list[dict] | None = None) -> dict:
    """The metrics of one system: entity F1/precision/recall over all list fields, the parse rate, per-field scores."""
    valid = sum(r["valid"] for r in results) if results is not None else n_sentences
    reasons: dict[str, int] = {}
    for r in results or []:
        if r["error"]:
            kind = r["error"].split(" (")[0]
            reasons[kind] = reasons.get(kind, 0) + 1
    micro = scores["micro"]
    return {"entity_f1": micro["f1"], "precision": micro["precision"], "recall": micro["recall"],
            "parse_rate": valid / n_sentences if n_sentences else 0.0, "n_invalid": n_sentences - valid, "invalid_reasons": reasons,
            "fields": scores, "n_sentences": n_sentences, "n_gold_values": micro["n_gold"]}


def evaluate_llm(llm: LlmRun, sentences: list[Sentence], fields: dict[str, list[str]], methylation: dict[str, str],
                 generation: DictConfig | dict, shots: list[dict] | None = None) -> tuple[dict, list[dict]]:
    """Scores of ``llm`` on labelled ``sentences`` (see the module docstring) and one row per sentence
    (``text``, ``gold`` (the answer the corpus implies, as written), ``answer``, ``record``, ``valid``, ``error``).

    Args:
        fields: the record map of the schema's entity keys (`corpus_maps`).
        methylation: the record map of its methylation key (`corpus_maps`).
        generation: see `answer_texts`.
        shots: worked-example turns before each question (`biolm.text.instructions.few_shot_turns`).
    """
    schema = require_schema(llm)
    results = answer_texts(llm, [s.text for s in sentences], shots or [], generation)
    scores = score_extraction([normalised(r["record"], schema) for r in results], gold_records(sentences, fields, methylation), [*fields])
    rows = [{"text": s.text, "gold": gold_answer(s, schema, fields, methylation), **r} for s, r in zip(sentences, results, strict=True)]
    return summary(scores, len(sentences), results), rows


def score_taggers(taggers: list, sentences: list[Sentence], fields: dict[str, list[str]], methylation: dict[str, str], batch_size: int = 64) -> dict:
    """NER runs' records on the same sentences, scored like `evaluate_llm` (every answer is valid)."""
    from biolm.text.extract import extract_sentences

    predicted = extract_sentences(taggers, sentences, fields, methylation, batch_size)
    return summary(score_extraction(predicted, gold_records(sentences, fields, methylation), [*fields]), len(sentences))


def extract_documents(llm: LlmRun, documents: list[tuple[str, str]], shots: list[dict], generation) -> list[dict]:
    """One record per document: its sentences asked one by one (the unit the model was tuned on), their values
    normalised as ``biolm extract`` normalises them (`biolm.text.extract.normalise`) and joined in order without
    repeats, the first methylation status that is not ``none``.

    Returns:
        per document ``{"id", "text", <schema keys>, "valid": all sentences answered validly,
        "errors": [{"sentence", "error", "answer"}]}``.
    """
    schema = require_schema(llm)
    units = [(k, s.text) for k, (doc_id, text) in enumerate(documents) for s in split_text(text, doc_id) if s.text.strip()]
    results = answer_texts(llm, [text for _, text in units], shots, generation)
    records = []
    for k, (doc_id, text) in enumerate(documents):
        mine = [(unit_text, r) for (owner, unit_text), r in zip(units, results, strict=True) if owner == k]
        record = {"id": doc_id, "text": text, **schema.empty()}
        for _, r in mine:
            values = normalised(r["record"], schema)
            for name in schema.fields:
                record[name] = list(dict.fromkeys([*record[name], *values[name]]))
            if schema.statuses and record["methylation"] == "none":
                record["methylation"] = values["methylation"]
        record["valid"] = all(r["valid"] for _, r in mine)
        record["errors"] = [{"sentence": t, "error": r["error"], "answer": r["answer"]} for t, r in mine if not r["valid"]]
        records.append(record)
    return records

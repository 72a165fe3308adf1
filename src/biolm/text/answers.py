"""The JSON answer format of the LLM commands: a record schema, the gold answer of a labelled sentence, and
the parser that checks a model's answer against the schema.

A schema names list fields (``genes``, ``diseases``, ``cancer_types``, ``chemicals``: the record fields
of ``biolm extract``) and, optionally, the ``methylation`` status (``"methylation"``,
``"demethylation"`` or ``"none"``). An answer is valid when it holds one JSON object (a Markdown code
fence or chatter around it is allowed) with exactly the schema's keys: lists of strings, and a status among the
accepted values; the check is a pydantic model built from the schema. The object is read from the first
``{`` on; text before it and after its closing ``}`` is ignored. An invalid answer is never an
error of the command: `parse_answer` returns the reason, the caller counts it and scores the answer as
an empty record.

The gold answer of a sentence lists each field's mentions as written in the text (whitespace
collapsed, first mention first, repeats dropped); scoring normalises both sides with
`biolm.text.extract.normalise`, so a correct answer need not match case or plural.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Literal

from biolm.errors import BiolmError
from biolm.text.corpus import Sentence

NO_STATUS = "none"


@dataclass
class RecordSchema:
    """The keys of a JSON answer.

    Attributes:
        fields: the list fields, in answer order, e.g. ``["genes", "cancer_types"]``.
        statuses: the methylation statuses besides ``none`` (empty: the answer has no ``methylation`` key).
        descriptions: a phrase per key, shown to the model in the prompt.
    """

    fields: list[str]
    statuses: list[str] = field(default_factory=list)
    descriptions: dict[str, str] = field(default_factory=dict)

    @property
    def keys(self) -> list[str]:
        """The answer's keys, in order."""
        return [*self.fields, *(["methylation"] if self.statuses else [])]

    def describe(self) -> str:
        """One line per key for the prompt: ``"genes": gene and protein names``."""
        return "\n".join(f'"{key}": {self.descriptions.get(key, "list of strings")}' for key in self.keys)

    def empty(self) -> dict:
        """The record of an answer that could not be parsed."""
        return {**{name: [] for name in self.fields}, **({"methylation": NO_STATUS} if self.statuses else {})}

    def to_dict(self) -> dict:
        return {"fields": self.fields, "statuses": self.statuses, "descriptions": self.descriptions}

    @classmethod
    def from_dict(cls, data: dict) -> RecordSchema:
        return cls([str(f) for f in data["fields"]], [str(s) for s in data.get("statuses", [])], dict(data.get("descriptions", {})))

    def validator(self):
        """A pydantic model of the answer: every key required, nothing else allowed."""
        from pydantic import ConfigDict, StrictStr, create_model

        spec: dict = {name: (list[StrictStr], ...) for name in self.fields}
        if self.statuses:
            spec["methylation"] = (Literal[(NO_STATUS, *self.statuses)], ...)  # type: ignore[valid-type]
        return create_model("Record", __config__=ConfigDict(extra="forbid"), **spec)


def schema_for(sentences: list[Sentence], fields: dict[str, list[str]], methylation: dict[str, str], descriptions: dict[str, str]) -> RecordSchema:
    """The schema a labelled corpus supports: the record fields whose entity types it annotates, and the
    methylation statuses whose trigger types it annotates (``fields``/``methylation`` as in ``biolm extract``).

    Raises:
        BiolmError: no field of ``fields`` matches an entity type of the corpus.
    """
    types = {span.label for sentence in sentences for span in sentence.spans()}
    names = [name for name, wanted in fields.items() if types & set(wanted)]
    statuses = list(dict.fromkeys(status for trigger, status in methylation.items() if trigger in types))
    if not names and not statuses:
        raise BiolmError(f"data.train: none of its entity types ({', '.join(sorted(types)) or 'none'}) fills a record field of "
                         f"record.fields ({', '.join(f'{k}: {list(v)}' for k, v in fields.items())})")
    keys = [*names, *(["methylation"] if statuses else [])]
    return RecordSchema(names, statuses, {key: descriptions[key] for key in keys if key in descriptions})


def gold_answer(sentence: Sentence, schema: RecordSchema, fields: dict[str, list[str]], methylation: dict[str, str]) -> dict:
    """The record a labelled sentence implies, mentions as written (see the module docstring)."""
    spans = sorted(sentence.spans(), key=lambda s: (s.start, s.end))
    record: dict = {}
    for name in schema.fields:
        wanted = set(fields[name])
        record[name] = list(dict.fromkeys(" ".join(s.text.split()) for s in spans if s.label in wanted))
    if schema.statuses:
        triggers = [s for s in spans if s.label in methylation]
        record["methylation"] = methylation[triggers[0].label] if triggers else NO_STATUS
    return record


def answer_text(record: dict) -> str:
    """A record as the one-line JSON answer the model learns."""
    return json.dumps(record, ensure_ascii=False)


@dataclass
class ParsedAnswer:
    """A model's answer: the validated record, or None and the reason it is not one."""

    record: dict | None
    error: str | None


def _first_json_value(text: str):
    """The JSON value that starts at the first ``{`` (chatter, a Markdown fence or a second object after it ignored).

    Raises:
        json.JSONDecodeError: no ``{``, or what follows it is not JSON.
    """
    start = text.find("{")
    if start == -1:
        return json.loads(text)  # not an object: the error (or the value) of the whole text
    value, _ = json.JSONDecoder().raw_decode(text, start)
    return value


def parse_answer(text: str, schema: RecordSchema, validator: object | None = None) -> ParsedAnswer:
    """Parse and validate one answer (see the module docstring); never raises for a bad answer.

    Args:
        validator: ``schema.validator()``, passed when parsing many answers (built once).
    """
    from pydantic import ValidationError

    validator = validator or schema.validator()
    try:
        data = _first_json_value(text.strip())
    except json.JSONDecodeError as err:
        return ParsedAnswer(None, f"not JSON ({err.msg} at column {err.colno})")
    if not isinstance(data, dict):
        return ParsedAnswer(None, f"a JSON {type(data).__name__}, not an object")
    try:
        record = validator.model_validate(data).model_dump()
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "answer"
        return ParsedAnswer(None, f"{where}: {first['msg']} ({err.error_count()} problem{'s' if err.error_count() > 1 else ''})")
    return ParsedAnswer({key: record[key] for key in schema.keys}, None)

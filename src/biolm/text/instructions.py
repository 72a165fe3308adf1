"""Instruction data for the LLM commands: chat examples from labelled corpora or JSONL files, prompts, and
their token encoding with the loss on the answer only.

In, any of:

- a labelled corpus (`biolm.text.corpus.read_corpus`: CoNLL/BIO, brat/BioNLP standoff, JSONL spans): each
  sentence becomes ``user: <instruction> + keys + "Text: <sentence>"`` -> ``assistant: <JSON answer>``
  (`biolm.text.answers.gold_answer`);
- extraction records (``biolm extract`` output, `record_examples`): the record's text asked the same way, the
  record's fields as the answer;
- JSONL instructions, one object per line: ``{"instruction", "input" (optional), "output"}`` (the user
  turn is the instruction, then ``Text: <input>``), or a chat ``{"messages": [{"role", "content"}, ...]}``
  whose last turn is the assistant's answer.

Out: `Example` (chat messages whose last one is the answer). `encode_example` renders a chat with the
tokenizer's template and returns ``input_ids`` (T,) and ``labels`` (T,) in which every prompt token
(system, instruction, text, earlier turns, the ``assistant`` header) carries -100, so the loss is the
answer's tokens only (its closing end-of-turn token included, which teaches the model to stop).
`pack_examples` optionally concatenates encoded examples into blocks of up to ``max_tokens`` (fewer
padding tokens; an example's tokens can then attend to the earlier examples of its block, as in
TRL's classic packing without flash-attention's per-example masks).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

from biolm.errors import BiolmError
from biolm.text.answers import RecordSchema, answer_text, gold_answer
from biolm.text.corpus import Sentence, json_lines, read_text_lines

ROLES = ("system", "user", "assistant")


@dataclass
class Example:
    """One chat: ``messages`` (``{"role", "content"}`` dicts), the last one the assistant's answer; ``sentence``
    is the labelled sentence it came from (None for JSONL instructions)."""

    id: str
    messages: list[dict]
    sentence: Sentence | None = None


@dataclass
class PromptStyle:
    """How a text becomes a user turn: ``instruction`` (then the schema's keys), ``Text: <text>``; an optional ``system`` turn."""

    instruction: str
    system: str | None = None

    def user_turn(self, text: str, schema: RecordSchema | None) -> str:
        keys = f"\n{schema.describe()}" if schema is not None else ""
        return f"{self.instruction}{keys}\n\nText: {text}"

    def opening(self) -> list[dict]:
        return [{"role": "system", "content": self.system}] if self.system else []


def corpus_examples(sentences: list[Sentence], schema: RecordSchema, style: PromptStyle, fields: dict[str, list[str]],
                    methylation: dict[str, str]) -> list[Example]:
    """One example per labelled sentence (see the module docstring)."""
    return [
        Example(
            sentence.where or str(i),
            [*style.opening(), {"role": "user", "content": style.user_turn(sentence.text, schema)},
             {"role": "assistant", "content": answer_text(gold_answer(sentence, schema, fields, methylation))}],
            sentence,
        )
        for i, sentence in enumerate(sentences)
    ]


def record_examples(path: str | Path, field: str, full: RecordSchema, style: PromptStyle) -> tuple[list[Example], RecordSchema]:
    """One example per extraction record (``{"id", "text", <record keys>}`` per line, as ``biolm extract`` writes
    them): the answer is the record's keys that ``full`` knows, in its order.

    Raises:
        BiolmError: a line that is not a record with ``text`` (named by file and line), or no known key in the first one.
    """
    from biolm.text.corpus import jsonl_objects

    rows = [(where, row) for _, where, row in jsonl_objects(read_text_lines(path, field), path)]
    if not rows:
        raise BiolmError(f"{field}: {path} holds no record")
    keys = [key for key in full.keys if key in rows[0][1]]
    if not keys:
        raise BiolmError(f"{rows[0][0]}: no record key ({', '.join(full.keys)}); expected the records of biolm extract")
    schema = RecordSchema([k for k in full.fields if k in keys], full.statuses if "methylation" in keys else [],
                          {k: v for k, v in full.descriptions.items() if k in keys})
    examples = []
    for where, row in rows:
        missing = [key for key in keys if key not in row]
        if missing:
            raise BiolmError(f"{where}: the record lacks {', '.join(missing)} (the first record has them)")
        answer = {key: row[key] for key in keys}
        examples.append(Example(str(row.get("id", where)), [*style.opening(), {"role": "user", "content": style.user_turn(row["text"], schema)},
                                                          {"role": "assistant", "content": answer_text(answer)}]))
    return examples, schema


def chat_messages(messages, where: str, last: str = "assistant") -> list[dict]:
    """A chat's ``{"role", "content"}`` turns, checked: known roles, string contents, the ``last`` role at the end.

    Raises:
        BiolmError: a malformed chat (``where`` names the file and line).
    """
    if not isinstance(messages, list) or not messages:
        raise BiolmError(f'{where}: "messages" must be a non-empty list of {{"role", "content"}} objects')
    for message in messages:
        if not isinstance(message, dict) or message.get("role") not in ROLES or not isinstance(message.get("content"), str):
            raise BiolmError(f'{where}: each message needs "role" ({", ".join(ROLES)}) and a "content" string; got {json.dumps(message)[:80]}')
    if messages[-1]["role"] != last:
        raise BiolmError(f"{where}: the last message must be the {last}'s (it is {messages[-1]['role']!r})")
    return [{"role": m["role"], "content": m["content"]} for m in messages]


def is_instruction_file(path: str | Path) -> bool:
    """Whether ``path`` is a JSONL file of instructions (its first object has ``messages`` or ``instruction``), not a corpus."""
    name = str(path).lower()
    if not name.endswith((".jsonl", ".jsonl.gz")) or not Path(path).is_file():
        return False
    for line in read_text_lines(path, "data"):
        if line.strip():
            try:
                first = json.loads(line)
            except json.JSONDecodeError:
                return False
            return isinstance(first, dict) and ("messages" in first or "instruction" in first)
    return False


def read_instructions(path: str | Path, field: str, style: PromptStyle) -> list[Example]:
    """Examples of a JSONL instruction file (see the module docstring).

    Raises:
        BiolmError: a line that is not such an object (named by file and line), or no example at all.
    """
    examples = []
    expected = '{"instruction", "input", "output"} or {"messages": [...]} per line'
    for number, where, row in json_lines(read_text_lines(path, field), path, expected):
        if "messages" in row:
            messages = chat_messages(row["messages"], where)
        elif isinstance(row.get("instruction"), str) and isinstance(row.get("output"), str) and isinstance(row.get("input", ""), str):
            content = f"{row['instruction']}\n\nText: {row['input']}" if row.get("input") else row["instruction"]
            messages = [*style.opening(), {"role": "user", "content": content}, {"role": "assistant", "content": row["output"]}]
        else:
            raise BiolmError(f'{where}: expected "instruction" and "output" strings (and an optional "input"), or "messages"')
        examples.append(Example(str(row.get("id", f"{Path(path).name}:{number}")), messages))
    if not examples:
        raise BiolmError(f"{field}: {path} holds no example")
    return examples


def instruction_rows(examples: list[Example]) -> list[dict]:
    """Examples as JSONL rows: ``{"id", "instruction", "input", "output"}`` for a one-question chat about a
    text, ``{"id", "messages"}`` otherwise (both read back by `read_instructions`)."""
    rows = []
    for example in examples:
        turns = [m for m in example.messages if m["role"] != "system"]
        if len(turns) == 2 and len(turns) == len(example.messages) and "\n\nText: " in turns[0]["content"]:
            instruction, _, text = turns[0]["content"].rpartition("\n\nText: ")
            rows.append({"id": example.id, "instruction": instruction, "input": text, "output": turns[1]["content"]})
        else:
            rows.append({"id": example.id, "messages": example.messages})
    return rows


def few_shot_turns(pool: list[Example], k: int, seed: int, field: str = "shots_from") -> list[dict]:
    """``k`` worked examples (user + assistant turns) drawn with ``seed`` from ``pool`` (read from ``field``),
    preferring ones whose answer is not empty, to put before the question.

    Raises:
        BiolmError: ``k`` is negative or larger than the pool.
    """
    if k < 0:
        raise BiolmError(f"shots={k}: accepted: 0 (zero-shot) or more worked examples")
    if k == 0:
        return []
    if len(pool) < k:
        raise BiolmError(f"shots={k}: the example pool ({field}) has only {len(pool)} examples")
    rich = [e for e in pool if e.sentence is None or e.sentence.spans()]
    chosen = random.Random(seed).sample(rich if len(rich) >= k else pool, k)
    return [turn for example in chosen for turn in example.messages if turn["role"] != "system"]


def encode_example(tokenizer, messages: list[dict], max_tokens: int) -> tuple[list[int], list[int]] | None:
    """``(input_ids, labels)`` of a chat, the prompt's labels -100 (see the module docstring); None when longer than ``max_tokens``.

    Raises:
        BiolmError: the chat template renders the prompt differently once the answer follows it (the answer
            cannot be separated from the prompt).
    """
    from biolm.models.causal_lm import render_chat

    prompt = render_chat(tokenizer, messages[:-1], add_generation_prompt=True)
    full = render_chat(tokenizer, messages, add_generation_prompt=False)
    if not full.startswith(prompt):
        raise BiolmError("the model's chat template does not render the prompt as the start of the full chat; "
                         "answer-only loss needs one that does: set model.chat_template=plain")
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    answer_ids = tokenizer(full[len(prompt) :], add_special_tokens=False)["input_ids"]
    if len(prompt_ids) + len(answer_ids) > max_tokens:
        return None
    return prompt_ids + answer_ids, [-100] * len(prompt_ids) + answer_ids


def pack_examples(encoded: list[tuple[list[int], list[int]]], max_tokens: int) -> list[tuple[list[int], list[int]]]:
    """Encoded examples concatenated, in order, into blocks of at most ``max_tokens`` (none is split)."""
    blocks: list[tuple[list[int], list[int]]] = []
    for ids, labels in encoded:
        if blocks and len(blocks[-1][0]) + len(ids) <= max_tokens:
            blocks[-1][0].extend(ids)
            blocks[-1][1].extend(labels)
        else:
            blocks.append((list(ids), list(labels)))
    return blocks

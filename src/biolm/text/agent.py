"""``biolm agent``: a generator that plans and calls biolm's own tools (`biolm.text.agent_tools`) until it answers.

In: a task in words, a `Generator`, the tools (name -> function), a step budget. Out: an `AgentResult` with the
answer, the number of generator calls, why it stopped (``answer`` or ``step limit``) and the transcript path.

Two ways of calling tools, chosen by ``generator.native_tools``:

- native (an OpenAI-compatible endpoint): the tool schemas go in the request's ``tools``; the assistant message
  with its ``tool_calls`` and one ``{"role": "tool", "tool_call_id", "content"}`` message per call go back,
  until a reply calls no tool; its text is the answer.
- JSON actions (a small local model): the system prompt lists the tools and asks for one JSON object per turn,
  ``{"tool": name, "arguments": {...}}`` or ``{"answer": "..."}``; results come back as user turns.

Whatever goes wrong in a step (malformed JSON, an unknown tool, arguments that do not fit, a tool raising)
goes back to the model as an error message and counts as a step: the loop never crashes on the model's
mistakes. Every turn is appended to the transcript (JSONL: ``step``, ``role``, ``content`` or ``tool``/
``arguments``/``result``/``error``, ``time``) as it happens, so an interrupted session still leaves one.
"""

from __future__ import annotations

import inspect
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from biolm.errors import BiolmError
from biolm.text.agent_tools import argument_problem, tool_schema
from biolm.text.generators import Generator

log = logging.getLogger(__name__)

MAX_RESULT_CHARS = 4000
NO_GENERATOR = ("the agent needs a generator to plan and call tools: pick generator=local (a model in this process) "
                "or generator=endpoint generator.base_url=<http://host:port/v1> generator.model=<name>")
ROLE = ("You are biolm's agent. You solve the user's task by calling biolm's tools on DNA sequences, variants "
        "and the literature, then answer from what the tools returned. If a tool reports an error, fix the call "
        "or explain what is missing; do not invent results.")
ACTION_FORMAT = ('Answer with exactly one JSON object per turn and nothing else: {"tool": "<tool name>", "arguments": {...}} '
                 'to call a tool (its result comes back in the next message), or {"answer": "<your final answer>"} when you are done.')


@dataclass
class AgentResult:
    """What an agent session ended with.

    Attributes:
        answer: the final answer; at the step limit, in native mode the text the model wrote beside its last tool calls
            (possibly empty), in JSON-action mode empty (its last turn was an action, not an answer).
        steps: generator calls made.
        stopped_reason: ``answer`` or ``step limit``.
        transcript: the JSONL transcript of every turn.
    """

    answer: str
    steps: int
    stopped_reason: str
    transcript: Path


class Transcript:
    """Appends one JSON object per turn to ``path`` and flushes it, so a crash leaves what happened."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "w", encoding="utf-8")  # noqa: SIM115  (closed by `close`; one session per file)
        except OSError as err:
            raise BiolmError(f"transcript: cannot write {self.path} ({err.strerror or err})") from None

    def write(self, step: int, role: str, **fields) -> None:
        """One turn: ``step`` (0 for the prompt), ``role``, the given fields and the time (UTC, ISO 8601)."""
        record = {"step": step, "role": role, **fields, "time": datetime.now(UTC).isoformat(timespec="milliseconds")}
        self._file.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def _bounded(text: str) -> str:
    """A tool result cut to `MAX_RESULT_CHARS`, saying so."""
    if len(text) <= MAX_RESULT_CHARS:
        return text
    return f"{text[:MAX_RESULT_CHARS]} ... [truncated: the first {MAX_RESULT_CHARS} of {len(text)} characters]"


def call_tool(tools: Mapping[str, Callable], schemas: Mapping[str, dict], name: str, arguments) -> tuple[str | None, str | None]:
    """Run one tool call the model asked for -> ``(result JSON, None)`` or ``(None, error message)``; never raises
    on the model's mistakes or the tool's failures (a `BiolmError` or any other exception)."""
    if name not in tools:
        return None, f"unknown tool {name!r}; known tools: {', '.join(tools)}"
    if not isinstance(arguments, dict):
        return None, f"the arguments of {name} must be a JSON object, not {json.dumps(arguments)[:80]}"
    if "__unparsed__" in arguments:  # the endpoint's arguments string was not JSON
        return None, f"the arguments of {name} are not valid JSON: {str(arguments['__unparsed__'])[:200]}"
    problem = argument_problem(schemas[name], arguments)
    if problem is None:
        try:
            inspect.signature(tools[name]).bind(**arguments)
        except TypeError as err:
            problem = str(err)
    if problem is not None:
        return None, f"arguments do not fit {name}: {problem}"
    try:
        result = tools[name](**arguments)
    except BiolmError as err:
        return None, str(err)
    except Exception as err:  # a tool's bug must not end the session: the model reads it and the transcript keeps it
        log.warning("tool %s raised %s: %s", name, type(err).__name__, err)
        return None, f"{name} failed: {type(err).__name__}: {err}"
    return _bounded(json.dumps(result, ensure_ascii=False, default=str)), None


def _tool_turn(transcript: Transcript, step: int, tools, schemas, name: str, arguments) -> str:
    """Call a tool, log it, and return what the model reads back."""
    started = time.perf_counter()
    result, error = call_tool(tools, schemas, name, arguments)
    outcome = {"result": result} if error is None else {"error": error}
    transcript.write(step, "tool", tool=name, arguments=arguments, **outcome, elapsed_s=round(time.perf_counter() - started, 3))
    return result if error is None else f"error: {error}"


def _chat(generator: Generator, transcript: Transcript, step: int, messages: list[dict], max_new_tokens: int, tools: list[dict] | None):
    started = time.perf_counter()
    reply = generator.chat(messages, max_new_tokens, tools=tools)
    fields = {"tool_calls": reply.tool_calls} if reply.tool_calls else {}
    transcript.write(step, "assistant", content=reply.content, **fields, elapsed_s=round(time.perf_counter() - started, 3))
    return reply


def action_prompt(schemas: list[dict]) -> str:
    """The system prompt of the JSON-action mode: the role, each tool (name, description, parameters) and the format."""
    lines = [ROLE, "", "Tools:"]
    for schema in schemas:
        function = schema["function"]
        lines.append(f"- {function['name']}: {function['description']}")
        for name, prop in function["parameters"]["properties"].items():
            need = "required" if name in function["parameters"]["required"] else f"optional, default {json.dumps(prop.get('default'))}"
            kind = f"array of {prop['items']['type']}" if prop["type"] == "array" else prop["type"]
            lines.append(f"    {name} ({kind}, {need}): {prop.get('description', '')}".rstrip(": "))
    return "\n".join([*lines, "", ACTION_FORMAT])


def parse_action(text: str) -> tuple[dict | None, str | None]:
    """The model's turn -> ``({"answer": str} or {"tool": str, "arguments": dict}, None)`` or ``(None, what is wrong)``.

    The action is the JSON object that starts at the first ``{`` (text around it is ignored).
    """
    start = text.find("{")
    if start < 0:
        return None, "no JSON object found"
    try:
        action, _ = json.JSONDecoder().raw_decode(text[start:])
    except json.JSONDecodeError as err:
        return None, f"malformed JSON ({err.msg} at character {err.pos + 1} of the object)"
    if not isinstance(action, dict):
        return None, "the JSON value is not an object"
    if "answer" in action:
        answer = action["answer"]
        return {"answer": answer if isinstance(answer, str) else json.dumps(answer, ensure_ascii=False)}, None
    if not isinstance(action.get("tool"), str):
        return None, 'the object has neither "answer" nor a "tool" name'
    return {"tool": action["tool"], "arguments": action.get("arguments", {})}, None


def run_agent(task: str, generator: Generator | None, tools: Mapping[str, Callable], max_steps: int = 6, max_new_tokens: int = 512,
              transcript_path: str | Path = "agent.jsonl") -> AgentResult:
    """Let ``generator`` solve ``task`` with ``tools`` (see the module docstring).

    Args:
        task: the user's request, in words.
        generator: who plans and writes (None, the ``generator=none`` choice, is refused).
        tools: tool name -> function with type hints and a Google-style docstring (`biolm.text.agent_tools.Toolbox.tools`).
        max_steps: generator calls at most; then the session stops with ``stopped_reason="step limit"``.
        max_new_tokens: per generator call.
        transcript_path: the JSONL transcript, appended to turn by turn.

    Raises:
        BiolmError: no generator, ``max_steps`` below 1, an unwritable transcript, or a generator that fails
            (an unreachable endpoint); the transcript keeps the turns before it.
    """
    if generator is None:
        raise BiolmError(NO_GENERATOR)
    if int(max_steps) < 1:
        raise BiolmError(f"max_steps={max_steps}: the agent needs at least 1 step")
    schemas = {name: tool_schema(fn) for name, fn in tools.items()}
    for name, schema in schemas.items():  # a bound tool answers to its given name
        schema["function"]["name"] = name
    transcript = Transcript(transcript_path)
    try:
        loop = _native_loop if generator.native_tools else _action_loop
        answer, steps, reason = loop(task, generator, tools, schemas, int(max_steps), int(max_new_tokens), transcript)
        transcript.write(steps, "result", content=answer, stopped_reason=reason)
    finally:
        transcript.close()
    return AgentResult(answer, steps, reason, transcript.path)


def _native_loop(task, generator, tools, schemas, max_steps, max_new_tokens, transcript) -> tuple[str, int, str]:
    messages = [{"role": "system", "content": ROLE}, {"role": "user", "content": task}]
    for message in messages:
        transcript.write(0, message["role"], content=message["content"])
    transcript.write(0, "tools", content=list(schemas.values()))
    last_text = ""
    for step in range(1, max_steps + 1):
        reply = _chat(generator, transcript, step, messages, max_new_tokens, list(schemas.values()))
        last_text = reply.content or last_text
        if not reply.tool_calls:
            return reply.content, step, "answer"
        calls = [{**call, "id": call.get("id") or f"call_{step}_{k}"} for k, call in enumerate(reply.tool_calls)]
        messages.append({"role": "assistant", "content": reply.content or None, "tool_calls": [
            {"id": call["id"], "type": "function", "function": {"name": call["name"], "arguments": json.dumps(call["arguments"], ensure_ascii=False)}}
            for call in calls
        ]})
        for call in calls:
            content = _tool_turn(transcript, step, tools, schemas, call["name"], call["arguments"])
            messages.append({"role": "tool", "tool_call_id": call["id"], "content": content})
    return last_text, max_steps, "step limit"  # the text that came with the last tool calls, if any


def _action_loop(task, generator, tools, schemas, max_steps, max_new_tokens, transcript) -> tuple[str, int, str]:
    messages = [{"role": "system", "content": action_prompt(list(schemas.values()))}, {"role": "user", "content": task}]
    for message in messages:
        transcript.write(0, message["role"], content=message["content"])
    for step in range(1, max_steps + 1):
        reply = _chat(generator, transcript, step, messages, max_new_tokens, None)
        messages.append({"role": "assistant", "content": reply.content})
        action, problem = parse_action(reply.content)
        if action is None:
            error = f'not a valid action: {problem}; answer with one JSON object: {{"tool": "<name>", "arguments": {{...}}}} or {{"answer": "..."}}'
            transcript.write(step, "error", error=error)
            messages.append({"role": "user", "content": f"error: {error}"})
        elif "answer" in action:
            return action["answer"], step, "answer"
        else:
            content = _tool_turn(transcript, step, tools, schemas, action["tool"], action["arguments"])
            messages.append({"role": "user", "content": f"result of {action['tool']}: {content}"})
    return "", max_steps, "step limit"  # the last turn was an action or an error, not an answer

"""Who writes the answers of ``biolm rag ask`` and ``biolm agent``: a configured generator, never a hard-wired one.

``generator.kind`` (configs/text/generator/):

- ``none``: no generator; the commands return what was retrieved and say so.
- ``local``: a transformers causal LM in this process (`biolm.text.llm.load_llm`: an ``llm sft`` run, a local
  folder or GGUF file, the offline SmolLM2-135M-Instruct by default), greedy.
- ``endpoint``: an OpenAI-compatible HTTP server (``POST <base_url>/chat/completions``: vLLM, llama.cpp's
  server, Ollama, a hosted API), ``temperature`` 0; the key comes from ``generator.api_key`` or the
  environment variable ``generator.api_key_env``, and is never written to a run folder.

Every generator answers `Generator.chat`: ``messages`` (``{"role", "content"}`` dicts) -> a `Reply` with
the text and, for an endpoint given ``tools`` (OpenAI function-calling schemas), the tool calls it made.
A local model has no native tool calling; the agent asks it for a JSON action instead.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import DictConfig

from biolm.errors import BiolmError

KINDS = ("none", "local", "endpoint")


@dataclass
class Reply:
    """A generator's answer: its text, and the tool calls (``{"id", "name", "arguments" (dict)}``) it asked for."""

    content: str
    tool_calls: list[dict] = field(default_factory=list)


class Generator:
    """The interface (see the module docstring)."""

    name: str = "generator"
    native_tools: bool = False  # whether `chat` accepts OpenAI function-calling ``tools``

    def chat(self, messages: list[dict], max_new_tokens: int, tools: list[dict] | None = None) -> Reply:
        raise NotImplementedError


class LocalGenerator(Generator):
    """A causal LM in this process (`biolm.text.llm.LlmRun`), greedy."""

    def __init__(self, llm, name: str, batch_size: int = 1):
        self.llm, self.name, self.batch_size = llm, name, batch_size

    def chat(self, messages: list[dict], max_new_tokens: int, tools: list[dict] | None = None) -> Reply:
        from biolm.text.llm import ask

        return Reply(ask(self.llm, [messages], max_new_tokens, self.batch_size)[0])

    def chat_many(self, chats: list[list[dict]], max_new_tokens: int) -> list[Reply]:
        """Several independent chats in length-sorted batches (``rag evaluate`` asks hundreds)."""
        from biolm.text.llm import ask

        return [Reply(text) for text in ask(self.llm, chats, max_new_tokens, self.batch_size)]


class EndpointGenerator(Generator):
    """An OpenAI-compatible chat-completions endpoint (see the module docstring).

    Args:
        base_url: e.g. ``http://127.0.0.1:8000/v1`` (``/chat/completions`` is appended).
        model: the model name the server expects.
        api_key: the bearer token, or None for servers without one.
        timeout_s: per request.
        native_tools: the server does OpenAI function calling (``generator.tool_mode=native``); false: the agent
            asks for JSON actions in plain text (servers or models without tool support).
    """

    def __init__(self, base_url: str, model: str, api_key: str | None = None, timeout_s: float = 120.0, native_tools: bool = True):
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model, self.api_key, self.timeout_s, self.native_tools = model, api_key, timeout_s, native_tools
        self.name = f"{model} at {base_url}"

    def chat(self, messages: list[dict], max_new_tokens: int, tools: list[dict] | None = None) -> Reply:
        import httpx

        body: dict = {"model": self.model, "messages": messages, "max_tokens": int(max_new_tokens), "temperature": 0}
        if tools:
            body["tools"] = tools
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        try:
            response = httpx.post(self.url, json=body, headers=headers, timeout=self.timeout_s)
        except httpx.HTTPError as err:
            raise BiolmError(f"generator.base_url: cannot reach {self.url} ({type(err).__name__}: {err})") from None
        if response.status_code != 200:
            raise BiolmError(f"generator: {self.url} answered HTTP {response.status_code}: {response.text[:200]}")
        try:
            message = response.json()["choices"][0]["message"]
        except (ValueError, KeyError, IndexError, TypeError):
            raise BiolmError(f"generator: {self.url} did not answer in the chat-completions format: {response.text[:200]}") from None
        if not isinstance(message, dict):
            raise BiolmError(f"generator: {self.url} did not answer in the chat-completions format: {response.text[:200]}")
        calls = []
        for call in message.get("tool_calls") or []:
            function = call.get("function") if isinstance(call, dict) else None
            if not isinstance(function, dict):
                raise BiolmError(f"generator: {self.url} sent a malformed tool call: {json.dumps(call)[:200]}")
            raw = function.get("arguments")
            if isinstance(raw, dict):  # some servers send the object itself, not its JSON text
                arguments = raw
            else:
                try:
                    arguments = json.loads(raw or "{}")
                except (json.JSONDecodeError, TypeError):
                    arguments = {"__unparsed__": raw}
            calls.append({"id": call.get("id", ""), "name": function.get("name", ""), "arguments": arguments})
        return Reply(message.get("content") or "", calls)


def build_generator(cfg: DictConfig) -> Generator | None:
    """The generator of a ``generator`` config group (None for ``kind: none``).

    Raises:
        BiolmError: an unknown kind, or an endpoint without ``base_url``/``model``.
    """
    kind = str(cfg.get("kind", "none"))
    if kind not in KINDS:
        raise BiolmError(f"generator.kind={kind!r}: accepted: {', '.join(KINDS)}")
    if kind == "none":
        return None
    if kind == "local":
        from biolm.text.llm import load_llm, pretrained_path

        source = str(cfg.run) if cfg.get("run") else pretrained_path(cfg.model)
        llm = load_llm(run=source) if cfg.get("run") else load_llm(pretrained=source)
        return LocalGenerator(llm, Path(source).name, int(cfg.batch_size))
    if not cfg.get("base_url") or not cfg.get("model"):
        raise BiolmError("generator=endpoint: set generator.base_url (e.g. http://127.0.0.1:8000/v1) and generator.model")
    key = cfg.get("api_key") or (os.environ.get(str(cfg.api_key_env)) if cfg.get("api_key_env") else None)
    mode = str(cfg.get("tool_mode", "native"))
    if mode not in ("native", "json"):
        raise BiolmError(f"generator.tool_mode={mode!r}: accepted: native (OpenAI function calling), json (JSON actions in text)")
    return EndpointGenerator(str(cfg.base_url), str(cfg.model), key, float(cfg.timeout_s), mode == "native")

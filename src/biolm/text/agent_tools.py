"""The tools of ``biolm agent``: thin JSON-friendly wrappers over biolm's own functions, and their schemas.

A tool takes JSON values (strings, numbers, booleans, lists of them) and returns a list of dicts that
``json.dumps`` can write. What a tool needs besides its arguments (the run folder, the reference FASTA,
the NER run, the knowledge base) comes from the command's config and is bound in a `Toolbox`, so the model
never sees or chooses a path:

- ``predict_sequences(sequences)``: `biolm.prediction.predict` with the fine-tuned DNA run ``run``;
- ``score_variants(variants)``: ``"chr17:43045712 G>A"`` spellings scored by `biolm.variants.scoring.score_variants`
  with ``run`` and ``reference``;
- ``extract_entities(text)``: the entities the NER run ``ner_run`` finds (`biolm.text.documents.annotate`);
- ``search_knowledge_base(query, k)``: the ``k`` best passages of the literature index ``kb``
  (`biolm.text.retrieval`).

`tool_schema` writes a tool's OpenAI function-calling schema from its signature and Google-style docstring,
so the description the model reads is the one in the code.
"""

from __future__ import annotations

import functools
import inspect
import json
import re
import types
import typing
from collections.abc import Callable

from biolm.errors import BiolmError

TOOL_NAMES = ("predict_sequences", "score_variants", "extract_entities", "search_knowledge_base")
PASSAGE_CHARS = 600  # per passage returned to the agent (5 passages fit its 4,000-character tool results)
MAX_SEARCH_RESULTS = 20
JSON_TYPES = {str: "string", int: "integer", float: "number", bool: "boolean"}
VARIANT = re.compile(r"\s*([^\s:]+):(\d+)\s+([ACGTNacgtn]+)\s*>\s*([ACGTNacgtn]+)\s*")
VARIANT_FORM = "'chrom:pos ref>alt' with a 1-based position, e.g. 'chr17:43045712 G>A'"


def _json_type(annotation, where: str) -> dict:
    """The JSON schema of a parameter's type: str/int/float/bool, ``list[...]`` of those, ``X | None`` as X."""
    if annotation in JSON_TYPES:
        return {"type": JSON_TYPES[annotation]}
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is list and len(args) == 1:
        return {"type": "array", "items": _json_type(args[0], where)}
    if origin in (typing.Union, types.UnionType) and type(None) in args and len(args) == 2:
        return _json_type(next(a for a in args if a is not type(None)), where)
    raise TypeError(f"{where}: type {annotation!r} has no JSON schema (accepted: str, int, float, bool, list[...] of them)")


def _docstring_parts(doc: str) -> tuple[str, dict[str, str]]:
    """A Google-style docstring -> (its summary paragraph, {argument: description} of its Args section)."""
    lines = inspect.cleandoc(doc or "").splitlines()
    summary = []
    for line in lines:
        if not line.strip() or re.fullmatch(r"\w+:", line.strip()):
            break
        summary.append(line.strip())
    described: dict[str, str] = {}
    start = next((i + 1 for i, line in enumerate(lines) if line.strip() == "Args:"), len(lines))
    name, indent = None, None
    for line in lines[start:]:
        if line.strip() and not line.startswith(" "):  # the next section
            break
        depth = len(line) - len(line.lstrip())
        entry = re.fullmatch(r" +(\*{0,2}\w+)(?: \([^)]*\))?: ?(.*)", line)
        if entry and depth == (indent or depth):
            name, indent = entry.group(1).lstrip("*"), depth
            described[name] = entry.group(2).strip()
        elif name is not None and line.strip():
            described[name] = f"{described[name]} {line.strip()}"
    return " ".join(summary), described


def tool_schema(fn: Callable) -> dict:
    """The OpenAI function-calling schema of a tool, from its signature and Google-style docstring.

    Args:
        fn: a function, a bound method (``self`` is left out) or a `functools.partial` (its bound
            arguments are left out). Parameters need type hints (str, int, float, bool or ``list[...]`` of
            them); those without a default are required; each is described by its line under ``Args:``.

    Returns:
        ``{"type": "function", "function": {"name", "description", "parameters"}}``, ``parameters`` a JSON schema.

    Raises:
        TypeError: a parameter without a type hint or with a type JSON cannot carry.
    """
    target, bound = fn, set()
    while isinstance(target, functools.partial):
        bound |= set(target.keywords)
        target = target.func
    name = target.__name__
    hints = typing.get_type_hints(target)
    summary, described = _docstring_parts(target.__doc__ or "")
    properties, required = {}, []
    for parameter in inspect.signature(fn).parameters.values():
        if parameter.name in bound or parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        if parameter.name not in hints:
            raise TypeError(f"{name}: parameter {parameter.name!r} has no type hint")
        prop = _json_type(hints[parameter.name], f"{name}.{parameter.name}")
        if described.get(parameter.name):
            prop["description"] = described[parameter.name]
        if parameter.default is inspect.Parameter.empty:
            required.append(parameter.name)
        else:
            prop["default"] = parameter.default
        properties[parameter.name] = prop
    parameters = {"type": "object", "properties": properties, "required": required}
    return {"type": "function", "function": {"name": name, "description": summary, "parameters": parameters}}


def argument_problem(schema: dict, arguments: dict) -> str | None:
    """What is wrong with JSON ``arguments`` for a tool's ``schema`` (unknown, missing, mistyped), or None."""
    parameters = schema["function"]["parameters"]
    known = parameters["properties"]
    unknown = [key for key in arguments if key not in known]
    missing = [key for key in parameters["required"] if key not in arguments]
    if unknown or missing:
        problems = [f"unknown {', '.join(map(repr, unknown))}" if unknown else "", f"missing {', '.join(map(repr, missing))}" if missing else ""]
        return f"{'; '.join(p for p in problems if p)} (parameters: {', '.join(known) or 'none'}; required: {', '.join(parameters['required']) or 'none'})"
    for key, value in arguments.items():
        if not _fits(known[key], value):
            return f"argument {key!r} must be {_spelled(known[key])}, not {json.dumps(value)[:80]}"
    return None


def _fits(schema: dict, value) -> bool:
    kind = schema["type"]
    if kind == "array":
        return isinstance(value, list) and all(_fits(schema["items"], item) for item in value)
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, {"string": str, "boolean": bool}[kind])


def _spelled(schema: dict) -> str:
    """``an array of strings``, ``an integer``, ..."""
    if schema["type"] == "array":
        return f"an array of {_spelled(schema['items']).split(' ', 1)[1]}s"
    return f"{'an' if schema['type'][0] in 'aeiou' else 'a'} {schema['type']}"


def parse_variant(text: str) -> tuple[str, int, str, str]:
    """``"chr17:43045712 G>A"`` -> ``("chr17", 43045712, "G", "A")`` (1-based position, alleles upper-cased).

    Raises:
        BiolmError: another spelling; the message names the accepted form.
    """
    match = VARIANT.fullmatch(str(text))
    if match is None or int(match.group(2)) < 1:
        raise BiolmError(f"variant {text!r}: expected {VARIANT_FORM}")
    chrom, pos, ref, alt = match.groups()
    return chrom, int(pos), ref.upper(), alt.upper()


def _records(frame) -> list[dict]:
    """A DataFrame as JSON-ready rows (numpy scalars -> Python numbers, NaN -> None)."""
    return json.loads(frame.to_json(orient="records"))


class Toolbox:
    """The agent's tools, bound to the folders of the config (each may be None; a tool that needs a missing one
    raises a `BiolmError` naming the key to set).

    Args:
        run: a fine-tuned DNA run folder (predictions, variant scores).
        reference: the reference FASTA of the variants.
        ner_run: a ``biolm ner train`` run folder.
        kb: a knowledge-base (literature index) folder.
    """

    def __init__(self, run: str | None = None, reference: str | None = None, ner_run: str | None = None, kb: str | None = None):
        self.context = {"run": run, "reference": reference, "ner_run": ner_run, "kb": kb}
        self._loaded: dict[str, object] = {}

    def usable(self) -> list[str]:
        """The tools whose folders are configured (what the agent offers by default)."""
        needs = {"predict_sequences": ("run",), "score_variants": ("run", "reference"), "extract_entities": ("ner_run",), "search_knowledge_base": ("kb",)}
        return [name for name in TOOL_NAMES if all(self.context[key] for key in needs[name])]

    def tools(self, names: list[str] | tuple[str, ...] = TOOL_NAMES) -> dict[str, Callable]:
        """The tools called ``names`` (bound methods), by name.

        Raises:
            BiolmError: an unknown tool name.
        """
        unknown = [name for name in names if name not in TOOL_NAMES]
        if unknown:
            raise BiolmError(f"tools: unknown tool {unknown[0]!r}; accepted: {', '.join(TOOL_NAMES)}")
        return {name: getattr(self, name) for name in dict.fromkeys(names)}

    def _needs(self, key: str, tool: str, what: str) -> str:
        if not self.context[key]:
            raise BiolmError(f"{tool} needs {what}: set {key}=<path> on the biolm agent command line")
        return str(self.context[key])

    def _load(self, kind: str, load: Callable[[], object]):
        """Load each run, reference or index once per agent session."""
        if kind not in self._loaded:
            self._loaded[kind] = load()
        return self._loaded[kind]

    def predict_sequences(self, sequences: list[str]) -> list[dict]:
        """Predict DNA sequences with the configured fine-tuned model: per-class probabilities (or values) and the predicted label.

        Args:
            sequences: DNA sequences (A, C, G, T, N), e.g. ["TATAAAAGGC..."]; ids seq0, seq1, ... in the answer follow this order.
        """
        from biolm.prediction import predict
        from biolm.runs import load_run

        folder = self._needs("run", "predict_sequences", "a fine-tuned DNA run")
        return _records(predict(self._load("run", lambda: load_run(folder)), sequences))

    def score_variants(self, variants: list[str]) -> list[dict]:
        """Score genomic variants with the configured DNA model: alt minus ref (the fine-tuned model's positive-class
        probability or value, or a language model's log-likelihood; negative: the alt allele is less likely); the method is in each row.

        Args:
            variants: variants spelled "chrom:pos ref>alt" with a 1-based position, e.g. ["chr17:43045712 G>A"].
        """
        from biolm.variants.reference import Reference
        from biolm.variants.scoring import load_scoring_run, score_variants

        parsed = [parse_variant(variant) for variant in variants]
        folder = self._needs("run", "score_variants", "a fine-tuned DNA run")
        fasta = self._needs("reference", "score_variants", "the reference genome FASTA")
        run = self._load("scoring run", lambda: load_scoring_run(folder))
        return _records(score_variants(run, parsed, self._load("reference", lambda: Reference(fasta))))

    def extract_entities(self, text: str) -> list[dict]:
        """Find named entities (genes, diseases, ... as the NER model was trained) in a text, with character offsets.

        Args:
            text: the text to read, e.g. an abstract or a sentence.
        """
        from biolm.text.documents import annotate
        from biolm.text.ner import load_ner_run

        folder = self._needs("ner_run", "extract_entities", "an NER run")
        return annotate(self._load("ner_run", lambda: load_ner_run(folder)).tagger, [("text", text)])[0]["entities"]

    def search_knowledge_base(self, query: str, k: int = 5) -> list[dict]:
        """Search the literature knowledge base: the passages that best match the query, best first.

        Args:
            query: what to look for, in words, e.g. "BRCA1 promoter methylation in breast cancer".
            k: how many passages to return (1 to 20).
        """
        from biolm.text.retrieval import load_index, search

        folder = self._needs("kb", "search_knowledge_base", "a knowledge base")
        if not 1 <= k <= MAX_SEARCH_RESULTS:
            raise BiolmError(f"search_knowledge_base: k={k}; accepted: 1 to {MAX_SEARCH_RESULTS}")
        hits = search(self._load("kb", lambda: load_index(folder)), query, k)
        # compact: what the model needs to read and cite, each passage capped so that k of them fit one tool result
        return [{"rank": h["rank"], "doc_id": h["doc_id"], "text": h["text"][:PASSAGE_CHARS] + ("…" if len(h["text"]) > PASSAGE_CHARS else "")}
                for h in hits]

"""``biolm agent``: the tool-calling loop in both modes, the tools' schemas and errors, and the command.

The native mode talks to a scripted stand-in for an OpenAI-compatible endpoint (an http.server on 127.0.0.1
that answers each chat-completions request with the next scripted message) through the real
`EndpointGenerator`; the JSON-action mode is driven by a `Generator` that returns fixed strings.
"""

from __future__ import annotations

import json
import sys
import threading
import types
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from biolm.cli import main
from biolm.errors import BiolmError
from biolm.text.agent import MAX_RESULT_CHARS, parse_action, run_agent
from biolm.text.agent_tools import TOOL_NAMES, Toolbox, parse_variant, tool_schema
from biolm.text.generators import EndpointGenerator, Generator, Reply


class StandInEndpoint:
    """A stand-in chat-completions server: request i gets ``script[i]`` (an assistant message) back; requests are kept."""

    def __init__(self):
        self.script: list[dict] = []
        self.requests: list[dict] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                owner.requests.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                message = owner.script[len(owner.requests) - 1]
                body = json.dumps({"id": "x", "object": "chat.completion", "choices": [{"index": 0, "message": message, "finish_reason": "stop"}]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()


@pytest.fixture
def endpoint():
    stand_in = StandInEndpoint()
    yield stand_in
    stand_in.server.shutdown()
    stand_in.server.server_close()


def _tool_call(call_id: str, name: str, arguments: dict | str) -> dict:
    text = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return {"role": "assistant", "content": None, "tool_calls": [{"id": call_id, "type": "function", "function": {"name": name, "arguments": text}}]}


class ScriptedGenerator(Generator):
    """A local-model stand-in: returns ``replies`` in order and keeps the chats it was sent."""

    def __init__(self, replies: list[str]):
        self.replies, self.chats = list(replies), []

    def chat(self, messages, max_new_tokens, tools=None):
        self.chats.append([dict(m) for m in messages])
        return Reply(self.replies.pop(0))


def _lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_tool_schema_comes_from_the_signature_and_the_docstring():
    def find_motifs(sequence: str, motifs: list[str], max_mismatches: int = 0, both_strands: bool = True, min_score: float | None = None) -> list[dict]:
        """Find motifs in a DNA sequence.

        More text that is not the summary.

        Args:
            sequence: the DNA to search,
                on the forward strand.
            motifs: IUPAC motifs.
            max_mismatches: mismatches allowed per hit.
            both_strands: search the reverse complement too.
            min_score: the lowest score kept.

        Returns:
            The hits.
        """

    schema = tool_schema(find_motifs)
    assert schema["type"] == "function"
    function = schema["function"]
    assert function["name"] == "find_motifs" and function["description"] == "Find motifs in a DNA sequence."
    parameters = function["parameters"]
    assert parameters["type"] == "object" and parameters["required"] == ["sequence", "motifs"]
    props = parameters["properties"]
    assert props["sequence"] == {"type": "string", "description": "the DNA to search, on the forward strand."}
    assert props["motifs"] == {"type": "array", "items": {"type": "string"}, "description": "IUPAC motifs."}
    assert props["max_mismatches"] == {"type": "integer", "description": "mismatches allowed per hit.", "default": 0}
    assert props["both_strands"]["type"] == "boolean" and props["min_score"]["type"] == "number"


def test_toolbox_schemas_leave_the_context_out():
    schemas = {name: tool_schema(fn)["function"] for name, fn in Toolbox(run="runs/x").tools().items()}
    assert list(schemas) == list(TOOL_NAMES)
    assert schemas["search_knowledge_base"]["parameters"]["required"] == ["query"]
    assert schemas["search_knowledge_base"]["parameters"]["properties"]["k"]["default"] == 5
    assert schemas["score_variants"]["parameters"]["properties"]["variants"]["items"] == {"type": "string"}
    assert all(set(s["parameters"]["properties"]).isdisjoint({"self", "run", "reference", "ner_run", "kb"}) for s in schemas.values())
    with pytest.raises(BiolmError, match="tools: unknown tool 'blast'; accepted: predict_sequences"):
        Toolbox().tools(["blast"])


def test_variant_spellings():
    assert parse_variant("chr17:43045712 G>A") == ("chr17", 43045712, "G", "A")
    assert parse_variant(" 17:100  ac > t ") == ("17", 100, "AC", "T")
    for bad in ("chr17 43045712 G>A", "chr17:43045712", "chr17:0 G>A", "chr17:12 G/A", "chr17:-5 G>A"):
        with pytest.raises(BiolmError, match=r"expected 'chrom:pos ref>alt' with a 1-based position, e\.g\. 'chr17:43045712 G>A'"):
            parse_variant(bad)


def test_score_variants_parses_the_spellings_and_needs_run_and_reference(monkeypatch):
    import biolm.variants.reference as reference
    import biolm.variants.scoring as scoring

    seen = {}
    monkeypatch.setattr(scoring, "load_scoring_run", lambda folder: f"loaded {folder}")
    monkeypatch.setattr(reference, "Reference", lambda path: f"fasta {path}")

    def fake_score(run, variants, ref):
        import pandas as pd

        seen.update(run=run, variants=variants, ref=ref)
        return pd.DataFrame([{"chrom": c, "pos": p, "ref": r, "alt": a, "score": float("nan") if p > 2 else 0.5} for c, p, r, a in variants])

    monkeypatch.setattr(scoring, "score_variants", fake_score)
    rows = Toolbox(run="runs/brca", reference="hg38.fa").score_variants(["chr17:1 G>A", "chr17:3 C>T"])
    assert seen == {"run": "loaded runs/brca", "variants": [("chr17", 1, "G", "A"), ("chr17", 3, "C", "T")], "ref": "fasta hg38.fa"}
    assert rows == [{"chrom": "chr17", "pos": 1, "ref": "G", "alt": "A", "score": 0.5}, {"chrom": "chr17", "pos": 3, "ref": "C", "alt": "T", "score": None}]
    with pytest.raises(BiolmError, match="set reference=<path>"):
        Toolbox(run="runs/brca").score_variants(["chr17:1 G>A"])
    with pytest.raises(BiolmError, match="set run=<path>"):
        Toolbox().predict_sequences(["ACGT"])


def test_predict_and_extract_wrap_biolm_and_load_each_run_once(monkeypatch):
    import pandas as pd

    import biolm.prediction as prediction
    import biolm.runs as runs
    import biolm.text.documents as documents
    import biolm.text.ner as ner

    loads = []
    monkeypatch.setattr(runs, "load_run", lambda folder: loads.append(folder) or "dna run")
    frame = lambda seqs: pd.DataFrame({"id": [f"seq{i}" for i in range(len(seqs))], "prob_1": [0.25] * len(seqs), "prediction": [1] * len(seqs)})  # noqa: E731
    monkeypatch.setattr(prediction, "predict", lambda run, seqs: frame(seqs) if run == "dna run" else None)
    monkeypatch.setattr(ner, "load_ner_run", lambda folder: loads.append(folder) or types.SimpleNamespace(tagger="tagger"))
    entity = {"start": 0, "end": 5, "label": "Gene", "text": "BRCA1"}
    monkeypatch.setattr(documents, "annotate", lambda tagger, docs: [{"id": docs[0][0], "text": docs[0][1], "entities": [entity] if tagger == "tagger" else []}])
    box = Toolbox(run="runs/dna", ner_run="runs/ner")
    assert box.predict_sequences(["ACGT", "TTTT"]) == [{"id": "seq0", "prob_1": 0.25, "prediction": 1}, {"id": "seq1", "prob_1": 0.25, "prediction": 1}]
    assert box.predict_sequences(["ACGT"])[0]["id"] == "seq0"
    assert box.extract_entities("BRCA1 is methylated.") == box.extract_entities("BRCA1 again.") == [entity]
    assert loads == ["runs/dna", "runs/ner"]
    with pytest.raises(BiolmError, match="set ner_run=<path>"):
        Toolbox().extract_entities("BRCA1")


def _stub_retrieval(monkeypatch, passages: list[dict]) -> list:
    """`biolm.text.retrieval` replaced by a module whose search returns ``passages``; returns the calls made."""
    calls = []
    module = types.ModuleType("biolm.text.retrieval")
    module.load_index = lambda folder: calls.append(("load_index", folder)) or f"index of {folder}"
    module.search = lambda index, query, k: calls.append(("search", index, query, k)) or passages[:k]
    monkeypatch.setitem(sys.modules, "biolm.text.retrieval", module)
    return calls


PASSAGES = [{"doc_id": "pmid1", "chunk_id": 0, "text": "BRCA1 c.5266dupC is pathogenic.", "score": 0.9, "rank": 1}]
COMPACT = [{"rank": p["rank"], "doc_id": p["doc_id"], "text": p["text"]} for p in PASSAGES]  # what the tool returns


def test_native_mode_calls_the_tool_and_sends_the_result_back(endpoint, monkeypatch, tmp_path):
    calls = _stub_retrieval(monkeypatch, PASSAGES)
    endpoint.script = [
        _tool_call("call_a", "search_knowledge_base", {"query": "BRCA1 variant", "k": 3}),
        {"role": "assistant", "content": "BRCA1 c.5266dupC is pathogenic (pmid1)."},
    ]
    tools = Toolbox(kb=str(tmp_path / "kb")).tools(["search_knowledge_base", "predict_sequences"])
    transcript = tmp_path / "t" / "agent.jsonl"
    result = run_agent("What is known about BRCA1?", EndpointGenerator(endpoint.base_url, "stand-in"), tools, 4, 64, transcript)
    assert (result.answer, result.steps, result.stopped_reason, result.transcript) == ("BRCA1 c.5266dupC is pathogenic (pmid1).", 2, "answer", transcript)
    assert calls == [("load_index", str(tmp_path / "kb")), ("search", f"index of {tmp_path / 'kb'}", "BRCA1 variant", 3)]
    first, second = endpoint.requests
    assert [t["function"]["name"] for t in first["tools"]] == ["search_knowledge_base", "predict_sequences"]
    assert first["max_tokens"] == 64 and first["messages"][-1] == {"role": "user", "content": "What is known about BRCA1?"}
    assistant, tool = second["messages"][-2:]
    assert assistant["role"] == "assistant" and assistant["tool_calls"][0]["id"] == "call_a"
    assert json.loads(assistant["tool_calls"][0]["function"]["arguments"]) == {"query": "BRCA1 variant", "k": 3}
    assert tool == {"role": "tool", "tool_call_id": "call_a", "content": json.dumps(COMPACT)}
    lines = _lines(transcript)
    assert [(r["step"], r["role"]) for r in lines] == [(0, "system"), (0, "user"), (0, "tools"), (1, "assistant"), (1, "tool"), (2, "assistant"), (2, "result")]
    assert lines[4]["tool"] == "search_knowledge_base" and lines[4]["arguments"] == {"query": "BRCA1 variant", "k": 3}
    assert json.loads(lines[4]["result"]) == COMPACT and "error" not in lines[4]
    assert lines[-1]["stopped_reason"] == "answer" and lines[-1]["content"] == result.answer
    assert all(r["time"].endswith("+00:00") for r in lines)


def test_native_mode_errors_go_back_to_the_model_and_the_loop_goes_on(endpoint, tmp_path):
    endpoint.script = [
        _tool_call("c1", "predict_sequences", {"sequences": ["ACGT"]}),  # no run configured
        _tool_call("c2", "blast", {"query": "ACGT"}),
        _tool_call("c3", "predict_sequences", {"sequences": "ACGT"}),
        _tool_call("c4", "predict_sequences", "{not json"),
        _tool_call("c5", "predict_sequences", {"seqs": ["ACGT"]}),
        {"role": "assistant", "content": "I need a run folder."},
    ]
    tools = Toolbox().tools(["predict_sequences", "score_variants"])
    result = run_agent("Predict ACGT", EndpointGenerator(endpoint.base_url, "stand-in"), tools, 6, 32, tmp_path / "t.jsonl")
    assert (result.answer, result.steps, result.stopped_reason) == ("I need a run folder.", 6, "answer")
    replies = [m["content"] for m in endpoint.requests[-1]["messages"] if m["role"] == "tool"]
    assert replies[0] == "error: predict_sequences needs a fine-tuned DNA run: set run=<path> on the biolm agent command line"
    assert replies[1] == "error: unknown tool 'blast'; known tools: predict_sequences, score_variants"
    assert replies[2] == 'error: arguments do not fit predict_sequences: argument \'sequences\' must be an array of strings, not "ACGT"'
    assert replies[3].startswith("error: the arguments of predict_sequences are not valid JSON: {not json")
    assert replies[4].startswith("error: arguments do not fit predict_sequences: unknown 'seqs'; missing 'sequences'")
    errors = [r["error"] for r in _lines(tmp_path / "t.jsonl") if r["role"] == "tool"]
    assert errors == [r.removeprefix("error: ") for r in replies]


def test_native_mode_stops_at_the_step_limit_with_the_last_text(endpoint, tmp_path):
    endpoint.script = [{**_tool_call(f"c{i}", "predict_sequences", {"sequences": ["ACGT"]}), "content": f"thinking {i}"} for i in range(3)]
    result = run_agent("Loop", EndpointGenerator(endpoint.base_url, "stand-in"), Toolbox().tools(), 2, 32, tmp_path / "t.jsonl")
    assert (result.answer, result.steps, result.stopped_reason) == ("thinking 1", 2, "step limit")
    assert len(endpoint.requests) == 2
    assert _lines(tmp_path / "t.jsonl")[-1]["stopped_reason"] == "step limit"


def test_action_mode_calls_the_tool_and_answers(monkeypatch, tmp_path):
    calls = _stub_retrieval(monkeypatch, PASSAGES * 10)
    generator = ScriptedGenerator([
        'I will search.\n```json\n{"tool": "search_knowledge_base", "arguments": {"query": "BRCA1 methylation"}}\n```',
        '{"answer": "BRCA1 is methylated in breast cancer."}',
    ])
    result = run_agent("BRCA1?", generator, Toolbox(kb="kb").tools(), 6, 32, tmp_path / "t.jsonl")
    assert (result.answer, result.steps, result.stopped_reason) == ("BRCA1 is methylated in breast cancer.", 2, "answer")
    assert calls[-1] == ("search", "index of kb", "BRCA1 methylation", 5)
    system = generator.chats[0][0]["content"]
    assert "- score_variants: Score genomic variants with the configured DNA model" in system and "k (integer, optional, default 5)" in system
    assert '{"answer": "<your final answer>"}' in system
    assert generator.chats[1][-1] == {"role": "user", "content": f"result of search_knowledge_base: {json.dumps(COMPACT * 5)}"}


def test_action_mode_reports_bad_actions_and_stops_at_the_step_limit(tmp_path):
    generator = ScriptedGenerator([
        "Let me think about it.",
        '{"tool": "predict_sequences", "arguments": {"sequences": ["AC"]',
        '{"arguments": {}}',
        '{"tool": "nope", "arguments": {}}',
        '{"tool": "extract_entities", "arguments": {"text": "BRCA1"}}',
    ])
    result = run_agent("Go", generator, Toolbox().tools(), 5, 32, tmp_path / "t.jsonl")
    assert (result.answer, result.steps, result.stopped_reason) == ("", 5, "step limit")  # an action is not an answer
    feedback = [chat[-1]["content"] for chat in generator.chats[1:]]
    assert feedback[0].startswith("error: not a valid action: no JSON object found; answer with one JSON object: {\"tool\"")
    assert feedback[1].startswith("error: not a valid action: malformed JSON")
    assert feedback[2].startswith('error: not a valid action: the object has neither "answer" nor a "tool" name')
    assert feedback[3] == "result of nope: error: unknown tool 'nope'; known tools: " + ", ".join(TOOL_NAMES)
    roles = [(r["step"], r["role"]) for r in _lines(tmp_path / "t.jsonl")]
    assert roles == [(0, "system"), (0, "user"), (1, "assistant"), (1, "error"), (2, "assistant"), (2, "error"), (3, "assistant"), (3, "error"),
                     (4, "assistant"), (4, "tool"), (5, "assistant"), (5, "tool"), (5, "result")]


def test_a_failing_tool_and_a_huge_result_never_end_the_session(tmp_path):
    def explode(text: str) -> list[dict]:
        """Fails.

        Args:
            text: anything.
        """
        raise ValueError("boom")

    def flood(n: int) -> list[dict]:
        """Writes a lot.

        Args:
            n: how many rows.
        """
        return [{"row": "x" * 100}] * n

    generator = ScriptedGenerator(['{"tool": "explode", "arguments": {"text": "a"}}', '{"tool": "flood", "arguments": {"n": 1000}}', '{"answer": "done"}'])
    result = run_agent("Go", generator, {"explode": explode, "flood": flood}, 3, 32, tmp_path / "t.jsonl")
    assert result.answer == "done"
    assert generator.chats[1][-1]["content"] == "result of explode: error: explode failed: ValueError: boom"
    flooded = generator.chats[2][-1]["content"]
    assert f"[truncated: the first {MAX_RESULT_CHARS} of " in flooded and len(flooded) < MAX_RESULT_CHARS + 200


def test_parse_action():
    assert parse_action('ok {"answer": "yes"} trailing') == ({"answer": "yes"}, None)
    assert parse_action('{"answer": {"gene": "BRCA1"}}') == ({"answer": '{"gene": "BRCA1"}'}, None)
    assert parse_action('{"tool": "t"}') == ({"tool": "t", "arguments": {}}, None)
    assert parse_action("[1, 2]")[0] is None


def test_run_agent_refuses_no_generator(tmp_path):
    with pytest.raises(BiolmError, match="pick generator=local .* or generator=endpoint"):
        run_agent("Go", None, Toolbox().tools(), transcript_path=tmp_path / "t.jsonl")


def test_biolm_agent_command(endpoint, monkeypatch, tmp_path, capsys):
    _stub_retrieval(monkeypatch, PASSAGES)
    endpoint.script = [_tool_call("c1", "search_knowledge_base", {"query": "BRCA1"}), {"role": "assistant", "content": "BRCA1 variants are pathogenic."}]
    transcript = tmp_path / "agent.jsonl"
    # a bare sentence is the task; with only kb= set, only the search tool is offered
    argv = ["agent", "What about BRCA1? Say it in one line.", "generator=endpoint", f"generator.base_url={endpoint.base_url}",
            "generator.model=stand-in", f"kb={tmp_path}", f"transcript={transcript}"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "BRCA1 variants are pathogenic." in out and "2 step(s), stopped: answer" in out and str(transcript) in " ".join(out.split())
    assert [t["function"]["name"] for t in endpoint.requests[0]["tools"]] == ["search_knowledge_base"]
    assert _lines(transcript)[-1]["content"] == "BRCA1 variants are pathogenic."

    assert main(["agent", "task=What about BRCA1?"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("biolm agent: error: the agent needs a generator") and "generator=endpoint" in err
    assert main(["agent", "generator=endpoint"]) == 2
    assert capsys.readouterr().err.strip().startswith("biolm agent: error: task: missing")

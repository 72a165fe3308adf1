"""Text track: biomedical named entities, structured records, a local LLM that answers in JSON, retrieval and the agent.

    python tutorials/text_track.py            # the full run: a few minutes on 2 CPU cores
    python tutorials/text_track.py --fast     # a tiny budget (well under a minute), as CI runs it

Every step is one `biolm` command, run here through `biolm.cli.main` with the same arguments the page shows, so
the script and docs/course/text.md cannot drift apart. The steps, on the bundled corpora (data/text, data/rag):

1. a subsample of the BioNLP-ST 2013 Cancer Genetics methylation corpus (IOB2: Gene, Cancer, Chemical,
   DNA_methylation, DNA_demethylation);
2. two taggers on it: a BiLSTM-CRF trained from scratch, and the offline MiniLM encoder fine-tuned as a token
   classifier; `ner evaluate` and `ner predict`;
3. `extract` turns the tagger's spans into one record for the course's example sentence;
4. SmolLM2-135M-Instruct (offline GGUF): `llm generate`, `llm extract` (3-shot), then `llm data` + `llm sft`
   (LoRA, a tiny budget) scored before and after tuning;
5. RAG on a subset of the cancer-epigenetics abstracts: `rag index`, `rag search`, `rag ask`, `rag evaluate`;
6. `agent`: a small model that may call biolm's tools (here the knowledge base and the tagger).
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from _common import arguments, biolm, check, read_json, read_jsonl, write_summary

from biolm.api import read_corpus

args = arguments(__doc__.splitlines()[0], "text_track")
out: Path = args.out
DATA = Path(__file__).resolve().parents[1] / "data"
SENTENCE = ("We have recently identified promoter DNA methylation of the genes ADAMTS1 and BNC1 as potential "
            "blood biomarkers of pancreas cancer")








# The budgets: --fast only proves that every step runs; the full run is sized for a few minutes on 2 CPU cores.
if args.fast:
    budget = dict(train_docs=8, test_docs=3, bilstm_epochs=1, encoder_docs=5, encoder_epochs=1, sft_docs=3,
                  sft_steps=2, sft_sample=2, kb_docs=40, qa=8, new_tokens=24)
else:
    budget = dict(train_docs=120, test_docs=50, bilstm_epochs=4, encoder_docs=30, encoder_epochs=2, sft_docs=60,
                  sft_steps=12, sft_sample=8, kb_docs=150, qa=30, new_tokens=96)
runs = out / "runs"
common = [f"output_dir={runs}", "overwrite=true", "progress_bar=false"]

# --8<-- [start:subsample]
# 1. A subsample of a bundled corpus. IOB2 files are "token<TAB>tag" lines, a blank line between sentences and a
#    "-DOCSTART-" line before each abstract; keeping whole abstracts keeps the held-out validation split honest
#    (biolm holds out 10% of the training *documents* when there is no data.val).
CG = DATA / "text" / "methylation"


def first_documents(source: Path, target: Path, n_documents: int | None) -> int:
    """Copy the first ``n_documents`` abstracts (all if None) of an IOB2 file; return the number of sentences kept."""
    with gzip.open(source, "rt") as handle:
        documents = handle.read().split("-DOCSTART-")[1:]
    kept = documents if n_documents is None else documents[:n_documents]
    target.write_text("".join("-DOCSTART-" + doc for doc in kept))
    return len(read_corpus(target))


# The test abstracts: the first 50 devel abstracts have genes, cancers and chemicals, and no trigger (a type the
# training subsample may lack would only count as missed entities, with a warning; the scores stay comparable).
corpus = out / "corpus"
corpus.mkdir(exist_ok=True)
train_tsv, test_tsv, encoder_tsv = corpus / "train.tsv", corpus / "test.tsv", corpus / "encoder_train.tsv"
n_train = first_documents(CG / "cg_gene_cancer_chemical_methylation_bio_train.tsv.gz", train_tsv, budget["train_docs"])
n_test = first_documents(CG / "cg_gene_cancer_chemical_methylation_bio_devel.tsv.gz", test_tsv, budget["test_docs"])
first_documents(CG / "cg_gene_cancer_chemical_methylation_bio_train.tsv.gz", encoder_tsv, budget["encoder_docs"])
print(f"corpus: {n_train} training and {n_test} test sentences")
# --8<-- [end:subsample]

# --8<-- [start:ner]
# 2. Two taggers on the same data. The experiment config names the model and corpus; data.* points it at our files.
#    BiLSTM-CRF: word vectors and a character CNN learnt from scratch, a CRF on top that forbids invalid IOB2 moves.
#    Batches of 8 sentences instead of 32: four times the optimiser steps per epoch (test F1 0.38 -> 0.53 at 4 epochs).
biolm("ner", "train", "experiment=methylation_bilstm_crf", f"data.train={train_tsv}", f"data.test={test_tsv}",
      f"trainer.max_epochs={budget['bilstm_epochs']}", "data.batch_size=8", "run_name=cg_bilstm_crf", *common)
bilstm = runs / "cg_bilstm_crf"
bilstm_f1 = read_json(bilstm / "test_metrics.json")["f1"]

#    The offline all-MiniLM-L6-v2 encoder (22.7 M parameters, general domain) as a token classifier: the first
#    sub-token of each word carries the word's tag. Pretrained, so fewer sentences go further, but each step costs
#    about 8x more on a CPU. Its default rate (model.lr=5e-5) suits thousands of steps; ~100 steps need a higher one.
biolm("ner", "train", "model=encoder", "data=methylation_cg", f"data.train={encoder_tsv}", f"data.test={test_tsv}",
      f"trainer.max_epochs={budget['encoder_epochs']}", "data.batch_size=8", "model.lr=3e-4", "run_name=cg_minilm", *common)
encoder_f1 = read_json(runs / "cg_minilm" / "test_metrics.json")["f1"]
# --8<-- [end:ner]

# --8<-- [start:evaluate]
# `ner evaluate` re-scores a run on any labelled file (seqeval: exact span and type), `ner predict` tags plain text.
biolm("ner", "evaluate", f"run={bilstm}", f"data.test={test_tsv}", f"output={out / 'ner_metrics.json'}")
evaluated = read_json(out / "ner_metrics.json")
check(abs(evaluated["f1"] - bilstm_f1) < 1e-6, f"ner evaluate gives F1 {evaluated['f1']}, the run's test F1 was {bilstm_f1}")

sentence_txt = out / "sentence.txt"
sentence_txt.write_text(SENTENCE + "\n")          # one document per line
biolm("ner", "predict", f"run={bilstm}", f"input={sentence_txt}", f"output={out / 'entities.jsonl'}")
entities = read_jsonl(out / "entities.jsonl")[0]["entities"]
print("entities:", [(e["label"], e["text"]) for e in entities])
# --8<-- [end:evaluate]

# --8<-- [start:extract]
# 3. Spans -> one record per text: Gene spans fill "genes", Cancer spans "cancer_types", a DNA_methylation trigger
#    sets "methylation" (configs/text/record/default.yaml maps entity types to fields).
biolm("extract", f"run={bilstm}", f"input={sentence_txt}", f"output={out / 'records.jsonl'}")
record = read_jsonl(out / "records.jsonl")[0]
print("record:", {key: record[key] for key in ("genes", "cancer_types", "methylation")})
check({"genes", "cancer_types", "methylation"} <= set(record), f"an extraction record has genes, cancer_types, methylation: {record}")
# --8<-- [end:extract]

# --8<-- [start:llm]
# 4. A local LLM. SmolLM2-135M-Instruct ships as a GGUF file (offline); transformers dequantises it once.
#    Prompted as it is, it writes JSON-looking text; shots=3 puts three worked examples before the question.
new_tokens = f"generation.max_new_tokens={budget['new_tokens']}"
biolm("llm", "generate", f"prompt=Which genes are methylated in: {SENTENCE}?", new_tokens, f"output={out / 'answers.jsonl'}")
biolm("llm", "extract", f"input={sentence_txt}", "shots=3", f"shots_from={train_tsv}", new_tokens,
      f"output={out / 'llm_records.jsonl'}")
few_shot = read_jsonl(out / "llm_records.jsonl")[0]

#    Instruction tuning: the labelled corpus becomes (instruction, sentence) -> JSON record chats, and LoRA adapters
#    (peft) learn to answer them; the loss is on the answer's tokens only. sft scores data.test before and after.
sft_tsv = corpus / "sft_train.tsv"
first_documents(CG / "cg_gene_cancer_chemical_methylation_bio_train.tsv.gz", sft_tsv, budget["sft_docs"])
biolm("llm", "data", f"from_ner={sft_tsv}", f"output={out / 'sft.jsonl'}")
chats = read_jsonl(out / "sft.jsonl")
print("an instruction row:", json.dumps(chats[0])[:400])
biolm("llm", "sft", f"data.train={out / 'sft.jsonl'}", f"data.test={test_tsv}", "data.batch_size=4",
      "trainer.max_epochs=null", f"+trainer.max_steps={budget['sft_steps']}",
      f"trainer.val_check_interval={budget['sft_steps']}", "early_stopping.patience=0",
      f"evaluate.sample={budget['sft_sample']}", new_tokens, "run_name=cg_smollm2_lora", *common)
sft = read_json(runs / "cg_smollm2_lora" / "test_metrics.json")
print("sft test metrics:", json.dumps(sft)[:600])
# --8<-- [end:llm]

# --8<-- [start:rag]
# 5. Retrieval-augmented answers on a subset of the 1,840 cancer-epigenetics abstracts: the gold abstracts of the
#    first unambiguous methylation questions plus others as distractors. Each question asks whether a gene is
#    methylated in a cancer; its gold document is the abstract that says so.
RAG = DATA / "rag" / "cancer_epigenetics"
with gzip.open(RAG / "methylation_qa.jsonl.gz", "rt") as handle:
    questions = [q for q in map(json.loads, handle) if not q["ambiguous"]][: budget["qa"]]
with gzip.open(RAG / "kb_docs.jsonl.gz", "rt") as handle:
    documents = [json.loads(line) for line in handle]
gold = {q["gold_doc_id"] for q in questions}
subset = [d for d in documents if d["doc_id"] in gold]
subset += [d for d in documents if d["doc_id"] not in gold][: budget["kb_docs"] - len(subset)]
(out / "kb_docs.jsonl").write_text("".join(json.dumps(d) + "\n" for d in subset))
(out / "qa.jsonl").write_text("".join(json.dumps(q) + "\n" for q in questions))
kb = out / "kb"
print(f"knowledge base: {len(subset)} abstracts; {len(questions)} questions")

#    index: sentence-aware chunks, BM25 (bm25s) and MiniLM vectors (FAISS); hybrid search fuses both rankings.
biolm("rag", "index", f"docs={out / 'kb_docs.jsonl'}", f"output={kb}", "progress_bar=false")
biolm("rag", "search", f"kb={kb}", "query=ADAMTS1 methylation pancreatic cancer", "k=5", f"output={out / 'hits.jsonl'}")
check(len(read_jsonl(out / "hits.jsonl")) == 5, "rag search returns k=5 hits")
#    ask without a generator (generator=none, the default): the passages, the sentence closest to the question marked.
biolm("rag", "ask", f"kb={kb}", "question=Is BNC1 promoter methylation a blood biomarker of pancreatic cancer?", "k=3",
      f"output={out / 'ask.json'}")
#    evaluate: recall@k and MRR of each question's gold abstract for bm25, dense and hybrid retrieval.
biolm("rag", "evaluate", f"kb={kb}", f"qa={out / 'qa.jsonl'}", f"output_dir={runs}", "run_name=rag_methylation")
retrieval = read_json(runs / "rag_methylation" / "metrics.json")["retrieval"]
for method, row in retrieval.items():
    print(f"{method:>7}: recall@1 {row['recall@1']:.3f}  recall@5 {row['recall@5']:.3f}  MRR {row['mrr']:.3f}")
# --8<-- [end:rag]

# --8<-- [start:agent]
# 6. The agent: SmolLM2 in this process (generator=local) writes JSON actions that call biolm's tools (here the
#    knowledge base and the tagger); every turn is written to the transcript. A 135 M model is a weak planner: the
#    point is the loop (tool schemas, tool errors fed back to the model, max_steps), not the answer.
transcript = out / "agent.jsonl"
biolm("agent", f"task=Which genes are methylated in: {SENTENCE}? Search the literature.", "generator=local",
      f"kb={kb}", f"ner_run={bilstm}", "max_steps=2", f"max_new_tokens={budget['new_tokens']}", f"transcript={transcript}")
turns = read_jsonl(transcript)
# --8<-- [end:agent]

check(len(turns) >= 2, f"the agent's transcript has the task and at least one model turn ({len(turns)} lines)")
check(sft["steps"] == budget["sft_steps"], f"llm sft ran {sft['steps']} steps, not {budget['sft_steps']}")
check(0 <= sft["after"]["parse_rate"] <= 1, "llm sft scored the test sentences after tuning")
if not args.fast:  # what the page promises a student on the full budget
    check(bilstm_f1 > 0.4, f"the BiLSTM-CRF test F1 {bilstm_f1:.3f} is above 0.4")
    check(encoder_f1 > 0.1, f"the MiniLM tagger test F1 {encoder_f1:.3f} is above 0.1")
    check({"ADAMTS1", "BNC1"} & set(record["genes"]), f"the course sentence's genes are found: {record['genes']}")
    check(retrieval["bm25"]["recall@5"] > 0.5, f"BM25 recall@5 {retrieval['bm25']['recall@5']:.3f} is above 0.5")

write_summary(args, "text_track", {
    "train_sentences": n_train, "test_sentences": n_test,
    "bilstm_crf_f1": round(bilstm_f1, 4), "minilm_f1": round(encoder_f1, 4),
    "course_sentence": {key: record[key] for key in ("genes", "cancer_types", "methylation")},
    "llm_3shot_valid": bool(few_shot.get("valid", False)),
    "sft_entity_f1_before": round(sft["before"]["entity_f1"], 4), "sft_entity_f1_after": round(sft["after"]["entity_f1"], 4),
    "sft_parse_rate_before": round(sft["before"]["parse_rate"], 4), "sft_parse_rate_after": round(sft["after"]["parse_rate"], 4),
    **{f"rag_{method}_recall@5": round(row["recall@5"], 4) for method, row in retrieval.items()},
    "agent_transcript_lines": len(turns),
})

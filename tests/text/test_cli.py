"""The text commands end to end on a tiny templated corpus: ner train -> evaluate -> predict -> extract -> serve."""

from __future__ import annotations

import json
import random

import pytest
import torch

from biolm.cli import main
from biolm.text.corpus import Sentence, split_text, write_conll

pytest.importorskip("seqeval")
pytest.importorskip("torchcrf")

GENES = ["BRCA1", "TP53", "MLH1", "KRAS", "APC", "BNC1", "ADAMTS1", "CDH1", "PTEN", "RB1"]
DISEASES = ["breast cancer", "colon cancer", "glioma", "lung adenocarcinoma", "melanoma", "pancreas cancer"]
TEMPLATES = [
    "Promoter methylation of {g} is frequent in {d} .",
    "Loss of {g} expression was seen in patients with {d} .",
    "We found that {g} and {g2} are silenced in {d} .",
    "The {d} samples showed hypermethylation of {g} .",
]
TINY = ["model.tagger.word_dim=16", "model.tagger.char_dim=8", "model.tagger.char_filters=8", "model.tagger.hidden=16",
        "model.lr=2e-2", "data.batch_size=8", "trainer.max_epochs=8", "trainer.accelerator=cpu", "progress_bar=false", "seed=0"]


def _corpus(n: int, seed: int) -> list[Sentence]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        words, tags = [], []
        for slot in rng.choice(TEMPLATES).split():
            if slot in ("{g}", "{g2}"):
                words.append(rng.choice(GENES))
                tags.append("B-Gene")
            elif slot == "{d}":
                disease = rng.choice(DISEASES).split()
                words += disease
                tags += ["B-Disease"] + ["I-Disease"] * (len(disease) - 1)
            else:
                words.append(slot)
                tags.append("O")
        (sentence,) = split_text(" ".join(words))
        assert sentence.tokens == words
        sentence.tags = tags
        out.append(sentence)
    return out


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("corpus")
    for name, n, seed in (("train", 120, 0), ("dev", 30, 1), ("test", 30, 2)):
        write_conll(_corpus(n, seed), folder / f"{name}.tsv")
    return folder


@pytest.fixture(scope="module")
def ner_run(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    code = main(["ner", "train", f"data.train={corpus / 'train.tsv'}", f"data.val={corpus / 'dev.tsv'}", f"data.test={corpus / 'test.tsv'}",
                 f"output_dir={out}", "run_name=tiny_ner", *TINY])
    assert code == 0
    return out / "tiny_ner"


def test_train_writes_a_complete_run_that_learned(ner_run):
    names = {p.name for p in ner_run.iterdir()}
    assert {"config.yaml", "tags.json", "tagger", "model.safetensors", "metrics.csv", "test_metrics.json", "test_predictions.tsv", "report.md", "plots"} <= names
    metrics = json.loads((ner_run / "test_metrics.json").read_text())
    assert metrics["f1"] > 0.9, metrics  # templated sentences: a working tagger gets them nearly all
    assert set(metrics["per_type"]) == {"Disease", "Gene"}
    assert {p.name for p in (ner_run / "plots").iterdir()} >= {"curves.png", "type_f1.png", "type_confusion.png"}
    assert not list(ner_run.parent.glob(".*incomplete"))


def test_evaluate_equals_the_test_metrics_of_training(ner_run, corpus, tmp_path):
    out = tmp_path / "m.json"
    assert main(["ner", "evaluate", f"run={ner_run}", f"data.test={corpus / 'test.tsv'}", f"output={out}"]) == 0
    again, first = json.loads(out.read_text()), json.loads((ner_run / "test_metrics.json").read_text())
    assert again["f1"] == pytest.approx(first["f1"]) and again["errors"] == first["errors"]


def test_predict_and_extract_on_plain_text(ner_run, tmp_path):
    text = "Promoter methylation of PTEN is frequent in glioma .  We found that  TP53 and KRAS are silenced in melanoma ."
    (tmp_path / "docs.txt").write_text(text + "\n")
    out = tmp_path / "entities.jsonl"
    assert main(["ner", "predict", f"run={ner_run}", f"input={tmp_path / 'docs.txt'}", f"output={out}"]) == 0
    (row,) = [json.loads(line) for line in out.read_text().splitlines()]
    found = [(e["text"], e["label"]) for e in row["entities"]]
    assert ("PTEN", "Gene") in found and ("melanoma", "Disease") in found
    assert all(text[e["start"] : e["end"]] == e["text"] for e in row["entities"])
    records = tmp_path / "records.jsonl"
    assert main(["extract", f"run={ner_run}", f"input={tmp_path / 'docs.txt'}", f"output={records}"]) == 0
    (record,) = [json.loads(line) for line in records.read_text().splitlines()]
    assert "PTEN" in record["genes"] and "melanoma" in record["diseases"]
    assert record["methylation"] == "none"  # this run has no trigger type


def test_extract_scores_fields_on_a_labelled_corpus(ner_run, corpus, capsys):
    assert main(["extract", f"run={ner_run}", f"gold={corpus / 'test.tsv'}"]) == 0
    out = capsys.readouterr().out
    rows = {line.split("│")[1].strip(): line for line in out.splitlines() if line.count("│") > 3}
    assert {"genes", "diseases"} <= set(rows) and "cancer_types" not in rows  # fields the corpus does not annotate are left out


def test_service_serves_entities_and_records(ner_run):
    from fastapi.testclient import TestClient

    from biolm.service import ServeSettings
    from biolm.service.app import create_app

    with TestClient(create_app(ner_run, ServeSettings())) as client:
        assert client.get("/v1/model").json()["types"] == ["Disease", "Gene"]
        body = client.post("/v1/ner", json={"texts": ["Loss of MLH1 expression was seen in patients with colon cancer ."]}).json()
        assert [(e["text"], e["label"]) for e in body["documents"][0]["entities"]] == [("MLH1", "Gene"), ("colon cancer", "Disease")]
        record = client.post("/v1/extract", json={"texts": ["Loss of MLH1 expression was seen in patients with colon cancer ."], "ids": ["a"]}).json()
        assert record["records"][0]["genes"] == ["MLH1"] and record["records"][0]["id"] == "a"
        bad = client.post("/v1/ner", json={"texts": []})
        assert bad.status_code == 422 and "texts" in bad.json()["detail"]
        assert "<mark" in client.get("/").text
    custom = ner_run.parent / "extract.yaml"
    custom.write_text("fields:\n  targets: [Gene]\n  conditions: [Disease]\n")
    with TestClient(create_app(ner_run, ServeSettings(extract=str(custom)))) as client:
        record = client.post("/v1/extract", json={"texts": ["Loss of MLH1 expression was seen in patients with colon cancer ."]}).json()["records"][0]
        assert record["targets"] == ["MLH1"] and record["conditions"] == ["colon cancer"] and record["methylation"] == "none"


def test_bad_corpus_is_one_line_and_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad.tsv"
    bad.write_text("BRCA1\tB-Gene\ncauses\tO\textra\n")
    assert main(["ner", "train", f"data.train={bad}", f"data.val={bad}", f"data.test={bad}", f"output_dir={tmp_path}", *TINY]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "bad.tsv:2" in err
    assert main(["ner", "evaluate", f"run={tmp_path / 'nope'}", f"data.test={bad}"]) == 2
    assert "not a finished NER run" in capsys.readouterr().err


def test_lora_on_an_encoder_keeps_the_adapter_and_merged_weights(corpus, tiny_wordpiece_bert, tmp_path):
    code = main(["ner", "train", "model=encoder", f"model.pretrained={tiny_wordpiece_bert}", "adapter=lora", "model.lr=5e-3",
                 f"data.train={corpus / 'train.tsv'}", f"data.val={corpus / 'dev.tsv'}", f"data.test={corpus / 'test.tsv'}",
                 f"output_dir={tmp_path}", "run_name=lora", "data.batch_size=16", "trainer.max_epochs=2", "trainer.accelerator=cpu", "progress_bar=false"])
    assert code == 0
    run = tmp_path / "lora"
    assert (run / "adapter" / "adapter_model.safetensors").exists() and (run / "model.safetensors").exists()
    out = tmp_path / "m.json"
    assert main(["ner", "evaluate", f"run={run}", f"data.test={corpus / 'test.tsv'}", f"output={out}"]) == 0
    assert json.loads(out.read_text())["f1"] == pytest.approx(json.loads((run / "test_metrics.json").read_text())["f1"])
    # the merged weights are the base encoder plus the saved (best) adapter: same emissions as peft's own wrapping
    from peft import PeftModel

    from biolm.models.hf_tagger import HfTokenTagger
    from biolm.text.ner import load_ner_run

    merged = load_ner_run(run).tagger
    base = HfTokenTagger.from_pretrained(tiny_wordpiece_bert, merged.tags)
    base.load_state_dict({k: v for k, v in merged.state_dict().items() if k.startswith("model.classifier")}, strict=False)
    adapted = PeftModel.from_pretrained(base, str(run / "adapter")).eval()
    batch = merged.collate([merged.encode(["BRCA1", "mutations", "in", "breast", "cancer"])])
    torch.testing.assert_close(adapted.base_model.model.emissions(batch), merged.emissions(batch), atol=1e-5, rtol=1e-5)
    assert main(["ner", "train", "adapter=lora", f"data.train={corpus / 'train.tsv'}", f"data.val={corpus / 'dev.tsv'}",
                 f"data.test={corpus / 'test.tsv'}", f"output_dir={tmp_path}", *TINY]) == 2


def test_user_mistakes_are_one_line_and_exit_2(corpus, tmp_path, capsys):
    data = [f"data.train={corpus / 'train.tsv'}", f"data.val={corpus / 'dev.tsv'}", f"data.test={corpus / 'test.tsv'}", f"output_dir={tmp_path}"]
    base = ["trainer.max_epochs=1", "trainer.accelerator=cpu", "progress_bar=false"]
    cases = [
        (["model=encoder", f"model.pretrained={tmp_path}"], "no config.json"),              # a folder that is no encoder
        ([*TINY, "model.tagger.dropout=1.5"], "dropout"),                                    # a bad hyper-parameter
        ([*TINY, "trainer.devices=2"], "one device"),
    ]
    for extra, expected in cases:
        assert main(["ner", "train", *data, *base, *extra]) == 2, extra
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and expected in err, err
    unlabelled = tmp_path / "u.jsonl"
    unlabelled.write_text('{"text": "BRCA1 is mutated."}\n')
    assert main(["ner", "train", f"data.train={unlabelled}", *data[1:], *TINY]) == 2
    assert "u.jsonl:1: no labels" in capsys.readouterr().err
    (tmp_path / "abstracts.csv").write_text("a,b\n")
    assert main(["ner", "predict", f"run={tmp_path}", f"input={tmp_path / 'abstracts.csv'}"]) == 2  # not a run
    capsys.readouterr()


def test_a_test_type_the_run_never_learned_counts_as_missed(ner_run, corpus, tmp_path, capsys):
    # the test corpus gains a Chemical entity: evaluation warns and scores it as missed instead of refusing the file
    sentences = _corpus(10, 5)
    sentences[0].tags = ["B-Chemical" if tag == "B-Gene" else tag for tag in sentences[0].tags]
    write_conll(sentences, tmp_path / "test.tsv")
    out = tmp_path / "m.json"
    assert main(["ner", "evaluate", f"run={ner_run}", f"data.test={tmp_path / 'test.tsv'}", f"output={out}"]) == 0
    scores = json.loads(out.read_text())
    chemical = scores["per_type"]["Chemical"]
    assert chemical["support"] == sentences[0].tags.count("B-Chemical") and chemical["recall"] == 0.0
    assert "not trained on" in " ".join(capsys.readouterr().err.split())

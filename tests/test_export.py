"""biolm export: the exported folder predicts as the run, in biolm and in plain transformers."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
import transformers
from safetensors.torch import load_file

from biolm import api
from biolm.cli import main
from biolm.errors import BiolmError
from biolm.models.bert import BertEncoder

SEQUENCES = [
    "ACGTACGTTTGACCATGACGTAGCTAGCTAGGATCCGATCGATCGTAGCTAGCTAGCTAAC",
    "TTTTAAAACCCCGGGGACGTACGATCGATCGACTAGCTAGC",  # shorter: padded in the batch
    "GATTACAGATTACAGATTACAGATTACAGATTACAGATTACAGATTACAGATTACAGATTA",
]


def _kmer_texts(tokenizer) -> list[str]:
    """The text transformers' BertTokenizer reads: k-mers every `stride` bases, space-separated (as the model card says)."""
    k, stride = tokenizer.k, tokenizer.stride
    return [" ".join(seq[i : i + k] for i in range(0, len(seq) - k + 1, stride)) for seq in SEQUENCES]


@pytest.fixture(scope="module")
def exported(tiny_binary_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "tiny-hf"
    assert main(["export", f"run={tiny_binary_run}", f"out={out}"]) == 0
    return out


def test_export_layout_and_card(exported, tiny_binary_run):
    names = {p.name for p in exported.iterdir()}
    assert {"config.json", "model.safetensors", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json", "README.md", "biolm"} <= names
    assert not any(name.startswith(".") for name in {p.name for p in exported.parent.iterdir()})  # no staging folder left
    card = (exported / "README.md").read_text()
    metrics = json.loads((tiny_binary_run / "test_metrics.json").read_text())
    assert all(key in card for key in metrics)
    assert "train.csv" in card and "library_name: transformers" in card and "0.1.0" in card
    config = json.loads((exported / "config.json").read_text())
    assert config["model_type"] == "bert" and config["id2label"] == {"0": "0", "1": "1"}


def test_biolm_folder_predicts_as_the_run(exported, tiny_binary_run):
    expected = api.predict(api.load_run(tiny_binary_run), SEQUENCES)
    got = api.predict(api.load_run(exported / "biolm"), SEQUENCES)
    assert got.equals(expected)


def test_transformers_predicts_as_biolm(exported, tiny_binary_run):
    run = api.load_run(tiny_binary_run)
    expected = api.predict(run, SEQUENCES)["prob_1"].to_numpy()
    model = transformers.AutoModelForSequenceClassification.from_pretrained(exported).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(exported)
    assert isinstance(model, transformers.BertForSequenceClassification)
    batch = tokenizer(_kmer_texts(run.tokenizer), return_tensors="pt", padding=True)
    reference = run.tokenizer.encode_batch(SEQUENCES)
    for row, ids in enumerate(reference):
        assert batch["input_ids"][row, : len(ids)].tolist() == ids.tolist()
    with torch.no_grad():
        probabilities = model(**batch).logits.softmax(-1)[:, 1].numpy()
    assert np.abs(probabilities - expected).max() < 1e-5


def test_pretrained_import_of_the_export_gives_the_run_trunk(exported, tiny_binary_run):
    run = api.load_run(tiny_binary_run)
    trunk = BertEncoder.from_pretrained(str(exported), vocab_size=run.tokenizer.vocab_size, pad_token_id=run.tokenizer.pad_id).eval()
    ids = torch.tensor(np.stack(run.tokenizer.encode_batch([SEQUENCES[0], SEQUENCES[2]])))
    mask = torch.ones_like(ids)
    with torch.no_grad():
        assert torch.equal(trunk(ids, mask), run.model.trunk(ids, mask))


def test_mean_pooling_exports_for_biolm_only(tiny_binary_run, tmp_path):
    run_copy = tmp_path / "run"
    shutil.copytree(tiny_binary_run, run_copy)
    config = (run_copy / "config.yaml").read_text().replace("pooling: cls", "pooling: mean")
    (run_copy / "config.yaml").write_text(config)
    out = api.export_run(run_copy, tmp_path / "out")
    assert not (out / "model.safetensors").exists()
    with pytest.raises(ValueError):
        transformers.AutoConfig.from_pretrained(out)
    assert "Not loadable with transformers" in (out / "README.md").read_text()
    assert api.predict(api.load_run(out / "biolm"), SEQUENCES).equals(api.predict(api.load_run(run_copy), SEQUENCES))


def test_existing_out_is_refused_without_overwrite(exported, tiny_binary_run):
    with pytest.raises(BiolmError, match="already exists"):
        api.export_run(tiny_binary_run, exported)
    weights = load_file(str(exported / "model.safetensors"))
    api.export_run(tiny_binary_run, exported, overwrite=True)
    assert load_file(str(exported / "model.safetensors")).keys() == weights.keys()


def test_regression_head_folds_mean_and_std(tiny_binary_run, tmp_path):
    run_copy = tmp_path / "run"
    shutil.copytree(tiny_binary_run, run_copy)
    (run_copy / "labels.json").write_text(json.dumps({"task": "regression", "classes": [], "delimiter": ";", "mean": 2.5, "std": 3.0}))
    out = api.export_run(run_copy, tmp_path / "out")
    expected = api.predict(api.load_run(run_copy), SEQUENCES)["prediction"].to_numpy()
    model = transformers.AutoModelForSequenceClassification.from_pretrained(out).eval()
    batch = transformers.AutoTokenizer.from_pretrained(out)(_kmer_texts(api.load_run(run_copy).tokenizer), return_tensors="pt", padding=True)
    with torch.no_grad():
        values = model(**batch).logits[:, 0].numpy()
    assert np.abs(values - expected).max() < 1e-4


def test_export_needs_run_and_out(capsys):
    assert main(["export", "run=runs/none"]) == 2
    assert capsys.readouterr().err.strip().count("\n") == 0


def test_models_lists_every_model_config(capsys):
    rows = {row["name"]: row for row in api.model_catalog(4101)}
    assert rows["hyenadna_tiny_1k"]["source"] == "LongSafari/hyenadna-tiny-1k-seqlen"
    assert rows["bert_tiny"]["pretrained"] and not rows["cnn"]["pretrained"]
    head = 128 + 1  # the one-output head the count includes
    assert rows["bert_tiny"]["parameters"] == 987_520 + head  # 4101 x 128 embedding + 512 positions + 2 blocks
    assert main(["models", "vocab_size=69"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in rows)

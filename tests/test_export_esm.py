"""biolm export of EsmEncoder runs: NT v1 and ESM-2 style runs predict the same in plain transformers
(`EsmForSequenceClassification` + `EsmTokenizer`) as in biolm; NT v2's gated MLP stays biolm-only.

The runs are fine-tuned through the CLI from tiny checkpoint folders written by transformers itself
(NT v2's by hand, in its remote-code layout), one epoch each."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
import transformers
from safetensors.torch import save_file

from biolm import api
from biolm.cli import main
from biolm.models import EsmEncoder
from tests.api.test_letter_checkpoint_runs import protein_rows, write_rows
from tests.models.test_esm import NT_V2_TINY_CONFIG, nt_v2_state_dict
from tests.tokenizers.test_letter_tokenizer import ESM2_VOCAB
from tests.tokenizers.test_nt_tokenizer import V1_LINES, V2_LINES

QUICK = ["model.head.pooling=cls", "trainer.max_epochs=1", "trainer.accelerator=cpu", "progress_bar=false", "data.batch_size=32"]
DNA = [
    "ACGTACGTTTGACCATGACGTAGCTAGCTAGGATCCGATCGATCGTAGCTAGCTAGCTAAC",
    "ttttaaaaccccgggGACGTACNNGATCGATCGACTAGCTAGC",  # lower case, N splits the 6-mers, shorter: padded
    "GATTACAGATTACAGATTACAGATTACAGATTACAGATTACAGATTACAGATTACAGATTAC",
]
PROTEINS = ["MKTAYIAKQRQISFVKSHFSRQKKRKLLE", "mkvlaag", "ACDEFGHIKLMNPQRSTVWYXBUZOKKRK"]


def _esm_folder(root, vocab_lines: list[str], **config):
    """A tiny `EsmForMaskedLM` folder saved by transformers, every tensor perturbed (biases and LayerNorms too)."""
    torch.manual_seed(0)
    model = transformers.EsmForMaskedLM(transformers.EsmConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64, pad_token_id=1,
        emb_layer_norm_before=False, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, **config))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    model.save_pretrained(root)
    (root / "vocab.txt").write_text("\n".join(vocab_lines))
    return root


def _finetune(folder, paths, runs, name: str, *extra: str):
    args = ["finetune", f"model.pretrained={folder}", *extra, f"data.train={paths['train']}", f"data.val={paths['dev']}",
            f"data.test={paths['test']}", f"output_dir={runs}", f"run_name={name}", *QUICK]
    assert main(args) == 0
    return runs / name


@pytest.fixture(scope="module")
def nt_v1_run(tiny_task, tmp_path_factory):
    """NT v1 style: learned positions, token dropout, GELU MLP; v1 vocab.txt (its trailing <eos>, <bos> are not model rows)."""
    root = tmp_path_factory.mktemp("nt_v1")
    folder = _esm_folder(root / "nt-v1", V1_LINES, vocab_size=len(V1_LINES) - 2, max_position_embeddings=200, mask_token_id=2,
                         position_embedding_type="absolute", token_dropout=True, tie_word_embeddings=False)
    return _finetune(folder, tiny_task, root / "runs", "nt1", "tokenizer=pretrained")


@pytest.fixture(scope="module")
def esm2_run(tmp_path_factory):
    """ESM-2 style: rotary positions, token dropout, GELU MLP; protein letters framed <cls> ... <eos>."""
    root = tmp_path_factory.mktemp("esm2")
    folder = _esm_folder(root / "esm2", ESM2_VOCAB, vocab_size=len(ESM2_VOCAB), max_position_embeddings=1026, mask_token_id=32,
                         position_embedding_type="rotary", token_dropout=True)
    paths = {split: write_rows(root / f"{split}.csv", protein_rows(n, seed)) for split, n, seed in (("train", 32, 0), ("dev", 16, 1), ("test", 16, 2))}
    return _finetune(folder, paths, root / "runs", "esm2")


def _transformers_outputs(out, sequences: list[str]) -> tuple[np.ndarray, dict]:
    """`(B, C)` logits of the exported folder in plain transformers (the input as the model card writes it), and the batch."""
    model, info = transformers.AutoModelForSequenceClassification.from_pretrained(out, output_loading_info=True)
    assert isinstance(model, transformers.EsmForSequenceClassification)
    assert not any(info[kind] for kind in ("missing_keys", "unexpected_keys", "mismatched_keys", "error_msgs")), info
    tokenizer = transformers.AutoTokenizer.from_pretrained(out)
    assert isinstance(tokenizer, transformers.EsmTokenizer)
    batch = tokenizer([seq.upper() for seq in sequences], return_tensors="pt", padding=True)
    with torch.no_grad():
        return model.eval()(**batch).logits.numpy(), batch


def _assert_same_ids(batch, run, sequences: list[str]) -> None:
    for row, ids in enumerate(run.tokenizer.encode_batch(sequences)):
        assert batch["input_ids"][row, : len(ids)].tolist() == ids.tolist()
        assert int(batch["attention_mask"][row].sum()) == len(ids)


@pytest.mark.parametrize(("family", "sequences"), [("nt_v1_run", DNA), ("esm2_run", PROTEINS)])
def test_transformers_predicts_as_biolm(family, sequences, request, tmp_path):
    run_path = request.getfixturevalue(family)
    out = tmp_path / "hf"
    assert main(["export", f"run={run_path}", f"out={out}"]) == 0
    run = api.load_run(run_path)
    expected = api.predict(run, sequences)["prob_1"].to_numpy()
    logits, batch = _transformers_outputs(out, sequences)
    _assert_same_ids(batch, run, sequences)
    probabilities = torch.from_numpy(logits).softmax(-1)[:, 1].numpy()
    assert np.abs(probabilities - expected).max() < 1e-5
    config = json.loads((out / "config.json").read_text())
    assert config["vocab_size"] == run.tokenizer.vocab_size == len((out / "vocab.txt").read_text().splitlines())
    card = (out / "README.md").read_text()
    assert "library_name: transformers" in card and "seq.upper()" in card and "out_proj(tanh(dense(h_cls)))" in card


def test_nt_v1_framing_and_vocabulary(nt_v1_run, tmp_path):
    out = api.export_run(nt_v1_run, tmp_path / "hf")
    config = json.loads((out / "config.json").read_text())
    assert config["vocab_size"] == 4105 and config["position_embedding_type"] == "absolute" and config["token_dropout"]
    assert (config["pad_token_id"], config["mask_token_id"], config["eos_token_id"]) == (1, 2, None)
    tokenizer = transformers.AutoTokenizer.from_pretrained(out)
    assert tokenizer.eos_token is None and tokenizer("ACGTACG")["input_ids"] == [3, *tokenizer.convert_tokens_to_ids(["ACGTAC", "G"])]  # no <eos>
    assert json.loads((out / "tokenizer_config.json").read_text())["model_max_length"] == 200 - 2


def test_regression_head_folds_mean_and_std(nt_v1_run, tmp_path):
    run_copy = tmp_path / "run"
    shutil.copytree(nt_v1_run, run_copy)
    (run_copy / "labels.json").write_text(json.dumps({"task": "regression", "classes": [], "delimiter": ";", "mean": 2.5, "std": 3.0}))
    out = api.export_run(run_copy, tmp_path / "hf")
    expected = api.predict(api.load_run(run_copy), DNA)["prediction"].to_numpy()
    logits, _ = _transformers_outputs(out, DNA)
    assert np.abs(logits[:, 0] - expected).max() < 1e-4


def test_pretrained_import_of_the_export_gives_the_run_trunk(esm2_run, tmp_path):
    out = api.export_run(esm2_run, tmp_path / "hf")
    run = api.load_run(esm2_run)
    trunk = EsmEncoder.from_pretrained(str(out)).eval()
    ids = torch.tensor(np.stack(run.tokenizer.encode_batch([PROTEINS[0], PROTEINS[2]])))
    mask = torch.ones_like(ids)
    with torch.no_grad():
        assert torch.equal(trunk(ids, mask), run.model.trunk(ids, mask))


def test_nt_v2_gated_mlp_exports_for_biolm_only(tiny_task, tmp_path):
    folder = tmp_path / "nt-v2"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(NT_V2_TINY_CONFIG))
    save_file({k: v.contiguous() for k, v in nt_v2_state_dict(4107, 32, 48, 2, 2050, 4).items()}, folder / "model.safetensors")
    (folder / "vocab.txt").write_text("\n".join(V2_LINES))
    run = _finetune(folder, tiny_task, tmp_path / "runs", "nt2", "tokenizer=pretrained")
    out = api.export_run(run, tmp_path / "hf")
    assert not (out / "model.safetensors").exists()
    with pytest.raises(ValueError):
        transformers.AutoConfig.from_pretrained(out)
    reason = json.loads((out / "config.json").read_text())["biolm"]["transformers_incompatible_because"]
    assert "gated SiLU MLP (mlp: swiglu" in reason
    assert f"Not loadable with transformers: {reason}" in (out / "README.md").read_text()
    assert api.predict(api.load_run(out / "biolm"), DNA).equals(api.predict(api.load_run(run), DNA))


def test_mean_pooling_esm_run_exports_for_biolm_only(esm2_run, tmp_path):
    run_copy = tmp_path / "run"
    shutil.copytree(esm2_run, run_copy)
    (run_copy / "config.yaml").write_text((run_copy / "config.yaml").read_text().replace("pooling: cls", "pooling: mean"))
    out = api.export_run(run_copy, tmp_path / "hf")
    assert not (out / "model.safetensors").exists()
    assert "pools by mean; transformers' ESM classifier reads the first token only" in (out / "README.md").read_text()

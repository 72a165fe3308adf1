"""Checkpoints whose tokenizer is one token per letter, end to end through `biolm finetune model.pretrained=<folder>`
with nothing else named: a HyenaDNA -hf folder (tokenizer, family and last-token pooling read from it) and an
ESM-2 protein folder (written by transformers itself) fine-tuned on protein sequences."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
import transformers
from omegaconf import OmegaConf
from safetensors.torch import save_file

from biolm.cli import main
from tests.models.test_hyena_hub import HF_CONFIG, MAX_LEN, hyenadna_state_dict
from tests.tokenizers.test_letter_tokenizer import ESM2_VOCAB

QUICK = ["trainer.max_epochs=1", "trainer.accelerator=cpu", "progress_bar=false", "data.batch_size=16"]


def write_rows(path, rows):
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["sequence", "label"])
        writer.writerows(rows)
    return path


def test_finetune_from_a_hyenadna_folder(tiny_task, tmp_path):
    folder = tmp_path / "hyenadna-tiny-hf"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(HF_CONFIG))
    save_file({k: v.contiguous() for k, v in hyenadna_state_dict().items()}, folder / "model.safetensors")
    window = MAX_LEN - 1  # + the appended [SEP] = the checkpoint's max_seq_len
    args = ["finetune", f"model.pretrained={folder}", f"data.train={tiny_task['train']}", f"data.val={tiny_task['dev']}",
            f"data.test={tiny_task['test']}", f"data.window_bp={window}", f"output_dir={tmp_path / 'runs'}", "run_name=h", *QUICK]
    assert main(args) == 0
    run = tmp_path / "runs" / "h"
    cfg = OmegaConf.load(run / "config.yaml")
    assert cfg.model.trunk._target_ == "biolm.models.hyena.HyenaEncoder" and cfg.model.head.pooling == "last"
    meta = json.loads((run / "tokenizer" / "biolm_tokenizer.json").read_text())
    assert meta["_target_"] == "biolm.tokenizers.letters.LetterTokenizer" and meta["open"] is None and meta["close"] == "sep"
    assert np.isfinite(json.loads((run / "test_metrics.json").read_text())["auroc"])


@pytest.fixture
def esm2_folder(tmp_path):
    config = transformers.EsmConfig(
        vocab_size=len(ESM2_VOCAB), hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
        max_position_embeddings=1026, pad_token_id=1, mask_token_id=32, position_embedding_type="rotary",
        token_dropout=True, emb_layer_norm_before=False,
    )
    torch.manual_seed(0)
    folder = tmp_path / "esm2"
    transformers.EsmForMaskedLM(config).save_pretrained(folder)
    (folder / "vocab.txt").write_text("\n".join(ESM2_VOCAB) + "\n")
    return folder


def protein_rows(n, seed):
    """Random 30-residue proteins; label 1 when a lysine-rich motif (KKRK) was planted."""
    rng = np.random.default_rng(seed)
    residues = np.array(list("ACDEFGHILMNPQSTVWY"))
    rows = []
    for i in range(n):
        seq = "".join(rng.choice(residues, 30))
        if i % 2:
            at = int(rng.integers(0, 26))
            seq = seq[:at] + "KKRK" + seq[at + 4 :]
        rows.append((seq.lower() if i % 7 == 0 else seq, i % 2))
    return rows


def test_finetune_esm2_on_proteins(esm2_folder, tmp_path, capsys):
    paths = {split: write_rows(tmp_path / f"{split}.csv", protein_rows(n, seed)) for split, n, seed in (("train", 64, 0), ("dev", 16, 1), ("test", 16, 2))}
    args = ["finetune", f"model.pretrained={esm2_folder}", f"data.train={paths['train']}", f"data.val={paths['dev']}",
            f"data.test={paths['test']}", f"output_dir={tmp_path / 'runs'}", "run_name=p", *QUICK]
    assert main(args) == 0
    run = tmp_path / "runs" / "p"
    assert json.loads((run / "tokenizer" / "biolm_tokenizer.json").read_text())["alphabet"] == "protein"
    out = tmp_path / "pred.csv"
    assert main(["predict", f"run={run}", f"input={paths['test']}", f"output={out}"]) == 0
    assert out.read_text().count("\n") == 17
    bad = write_rows(tmp_path / "bad.csv", [("MKV*LL", 1)])
    assert main(["predict", f"run={run}", f"input={bad}", f"output={tmp_path / 'x.csv'}"]) == 2
    assert "bad.csv line 2: invalid character '*' at position 4 (accepted: the 20 amino acids" in capsys.readouterr().err
    # reverse complements make no sense for proteins: a clear error, not complemented letters
    assert main([*args[:-len(QUICK) - 1], "run_name=q", "data.augment.rc_prob=0.5", *QUICK]) == 2
    assert "data.augment: reverse complements and base substitutions apply to nucleotides, not to protein" in capsys.readouterr().err

"""bench/port_parity.py, the command a user with internet runs to confirm a port against its reference, works
on checkpoints in the real layout that transformers writes itself (DNABERT-style BERT, NT v1-style ESM), hidden
states and MLM logits both within 1e-5."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
import transformers

from biolm.tokenizers import KmerTokenizer
from tests.tokenizers.test_nt_tokenizer import V2_LINES

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "port_parity.py"


def parity():
    spec = importlib.util.spec_from_file_location("port_parity", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def test_dnabert_style_folder_matches_bert(tmp_path, capsys):
    vocab = KmerTokenizer(k=6).vocab
    config = transformers.BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                     intermediate_size=64, max_position_embeddings=128, pad_token_id=0)
    torch.manual_seed(0)
    transformers.BertForMaskedLM(config).save_pretrained(tmp_path)
    (tmp_path / "vocab.txt").write_text("\n".join(sorted(vocab, key=vocab.get)))
    assert parity()([str(tmp_path), "--tol", "1e-5"]) == 0
    out = capsys.readouterr().out
    assert "family BertEncoder" in out and "max |diff| hidden" in out and "max |diff| logits" in out


def test_nt_v1_style_folder_matches_esm_including_logits(tmp_path, capsys):
    config = transformers.EsmConfig(
        vocab_size=len(V2_LINES), hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
        max_position_embeddings=200, pad_token_id=1, mask_token_id=2, position_embedding_type="absolute",
        token_dropout=True, tie_word_embeddings=False, emb_layer_norm_before=False,
    )
    torch.manual_seed(0)
    transformers.EsmForMaskedLM(config).save_pretrained(tmp_path)
    (tmp_path / "vocab.txt").write_text("\n".join(V2_LINES))
    assert parity()([str(tmp_path), "--tol", "1e-5"]) == 0
    out = capsys.readouterr().out
    assert "family EsmEncoder" in out and "max |diff| logits" in out

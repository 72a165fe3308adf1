"""tokenizer=pretrained: the tokenizer is read from the checkpoint folder's own files."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from biolm.cli import compose
from biolm.errors import BiolmError
from biolm.runs import instantiate_config
from biolm.tokenizers import BpeTokenizer, KmerTokenizer, NtTokenizer
from biolm.tokenizers.checkpoint import from_checkpoint
from tests.tokenizers.test_nt_tokenizer import V2_LINES

REPO = Path(__file__).resolve().parents[2]


def test_dnabert2_tokenizer_json_is_bpe(tmp_path):
    shutil.copy(REPO / "data" / "tokenizers" / "dnabert2_117m" / "tokenizer.json", tmp_path / "tokenizer.json")
    tokenizer = from_checkpoint(tmp_path)
    assert isinstance(tokenizer, BpeTokenizer) and tokenizer.vocab_size == 4096


def test_nucleotide_transformer_vocab(tmp_path):
    (tmp_path / "vocab.txt").write_text("\n".join(V2_LINES))
    tokenizer = from_checkpoint(tmp_path)
    assert isinstance(tokenizer, NtTokenizer) and tokenizer.encode_batch(["AAAAAA"])[0].tolist()[-1] == 6


def test_dnabert_kmer_vocab_in_biolm_order_and_refused_otherwise(tmp_path):
    vocab = KmerTokenizer(k=4).vocab
    (tmp_path / "vocab.txt").write_text("\n".join(sorted(vocab, key=vocab.get)))
    tokenizer = from_checkpoint(tmp_path)
    assert isinstance(tokenizer, KmerTokenizer) and tokenizer.vocab == vocab
    lines = sorted(vocab, key=vocab.get)
    lines[5], lines[6] = lines[6], lines[5]
    (tmp_path / "vocab.txt").write_text("\n".join(lines))
    with pytest.raises(BiolmError, match="another order"):
        from_checkpoint(tmp_path)


def test_no_tokenizer_files_is_one_line(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(BiolmError, match="has no tokenizer biolm can read.*tokenizer=<name>"):
        from_checkpoint(tmp_path)


def test_the_config_reads_model_pretrained(tmp_path):
    (tmp_path / "vocab.txt").write_text("\n".join(V2_LINES))
    cfg = compose("finetune", ["tokenizer=pretrained", f"model.pretrained={tmp_path}"])
    assert isinstance(instantiate_config(cfg.tokenizer, "tokenizer"), NtTokenizer)
    with pytest.raises(BiolmError, match="set model.pretrained"):
        instantiate_config(compose("finetune", ["tokenizer=pretrained", "model=cnn"]).tokenizer, "tokenizer")

"""Save/load round trips for every kind, and every configs/tokenizer/*.yaml instantiates."""

import json
from pathlib import Path

import numpy as np
import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from biolm.errors import BiolmError
from biolm.tokenizers import (
    BpeTokenizer,
    CharTokenizer,
    DnaTokenizer,
    KmerTokenizer,
    load_tokenizer,
)

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = sorted((ROOT / "configs/tokenizer").glob("*.yaml"))
SEQS = ["ACGTACGTTAGGCTANNACGT", "gattaca", "AC", "TTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTT", ""]


def make_tokenizers() -> list[DnaTokenizer]:
    return [
        CharTokenizer(),
        CharTokenizer(invalid="n", add_special_tokens=False),
        KmerTokenizer(k=3),
        KmerTokenizer(k=6, stride=6, invalid="n"),
        KmerTokenizer(k=5, stride=2, add_special_tokens=False),
        BpeTokenizer.from_file(ROOT / "data/tokenizers/dnabert2_117m/tokenizer.json"),
        BpeTokenizer.from_file(ROOT / "data/tokenizers/dnabert2_117m/tokenizer.json", add_special_tokens=False),
    ]


@pytest.mark.parametrize("tok", make_tokenizers(), ids=repr)
def test_save_load_gives_identical_ids(tok, tmp_path):
    tok.save(tmp_path / "tok")
    loaded = load_tokenizer(tmp_path / "tok")
    assert type(loaded) is type(tok) and loaded.config() == tok.config()
    assert loaded.vocab == tok.vocab
    assert [a.tolist() for a in loaded.encode_batch(SEQS)] == [a.tolist() for a in tok.encode_batch(SEQS)]
    meta = json.loads((tmp_path / "tok/biolm_tokenizer.json").read_text())
    assert meta["kind"] == tok.kind
    hf_file = "tokenizer.json" if tok.kind == "bpe" else "vocab.txt"
    assert sorted(p.name for p in (tmp_path / "tok").iterdir()) == sorted(["biolm_tokenizer.json", hf_file])


def test_load_errors_name_the_file(tmp_path):
    with pytest.raises(BiolmError, match="biolm_tokenizer.json"):
        load_tokenizer(tmp_path)
    (tmp_path / "biolm_tokenizer.json").write_text('{"kind": "wordpiece"}')
    with pytest.raises(BiolmError, match="unknown tokenizer kind 'wordpiece'"):
        load_tokenizer(tmp_path)
    KmerTokenizer(k=3).save(tmp_path)
    (tmp_path / "vocab.txt").write_text("[PAD]\n")
    with pytest.raises(BiolmError, match="vocab.txt"):
        load_tokenizer(tmp_path)


def test_all_configs_present():
    names = {p.stem for p in CONFIGS}
    assert {"char", "kmer3", "kmer4", "kmer5", "kmer6", "kmer6_stride6", "bpe_dnabert2"} <= names


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_config_instantiates(path, monkeypatch):
    monkeypatch.chdir(ROOT)  # paths in configs are relative to the repo root, where the CLI runs
    tok = instantiate(OmegaConf.load(path))
    assert isinstance(tok, DnaTokenizer)
    ids = tok.encode("ACGTACGTACGT")
    assert ids.dtype == np.int64 and ids[0] == tok.cls_id and ids[-1] == tok.sep_id

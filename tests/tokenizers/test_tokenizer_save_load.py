"""Save/load round trips (``_target_`` layout, and the older ``kind`` layout); every configs/tokenizer/*.yaml instantiates."""

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
from biolm.tokenizers.letters import hyenadna_tokenizer

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
        hyenadna_tokenizer(),
        hyenadna_tokenizer(invalid="n", add_special_tokens=False),
    ]


@pytest.mark.parametrize("tok", make_tokenizers(), ids=repr)
def test_save_load_gives_identical_ids(tok, tmp_path):
    tok.save(tmp_path / "tok")
    loaded = load_tokenizer(tmp_path / "tok")
    assert type(loaded) is type(tok) and loaded.config() == tok.config()
    assert loaded.vocab == tok.vocab
    assert [a.tolist() for a in loaded.encode_batch(SEQS)] == [a.tolist() for a in tok.encode_batch(SEQS)]
    meta = json.loads((tmp_path / "tok/biolm_tokenizer.json").read_text())
    assert meta["_target_"] == f"biolm.tokenizers.{tok.kind}.{type(tok).__name__}" and "kind" not in meta
    hf_file = "tokenizer.json" if tok.kind == "bpe" else "vocab.txt"
    assert sorted(p.name for p in (tmp_path / "tok").iterdir()) == sorted(["biolm_tokenizer.json", hf_file])


def test_load_errors_name_the_file(tmp_path):
    with pytest.raises(BiolmError, match="biolm_tokenizer.json"):
        load_tokenizer(tmp_path)
    (tmp_path / "biolm_tokenizer.json").write_text('{"kind": "wordpiece"}')
    with pytest.raises(BiolmError, match="unknown tokenizer kind 'wordpiece'"):
        load_tokenizer(tmp_path)
    (tmp_path / "biolm_tokenizer.json").write_text('{"invalid": "error"}')
    with pytest.raises(BiolmError, match="no '_target_' field"):
        load_tokenizer(tmp_path)
    KmerTokenizer(k=3).save(tmp_path)
    (tmp_path / "vocab.txt").write_text("[PAD]\n")
    with pytest.raises(BiolmError, match="vocab.txt"):
        load_tokenizer(tmp_path)


def test_all_configs_present():
    names = {p.stem for p in CONFIGS}
    assert {"char", "kmer3", "kmer4", "kmer5", "kmer6", "kmer6_stride6", "bpe_dnabert2"} <= names


# configs that read the model.pretrained checkpoint are tested with one (tests/tokenizers/test_checkpoint_tokenizer.py)
STANDALONE = [p for p in CONFIGS if "model.pretrained" not in p.read_text()]


@pytest.mark.parametrize("path", STANDALONE, ids=lambda p: p.stem)
def test_config_instantiates(path, monkeypatch):
    monkeypatch.chdir(ROOT)  # paths in configs are relative to the repo root, where the CLI runs
    tok = instantiate(OmegaConf.load(path))
    assert isinstance(tok, DnaTokenizer)
    ids = tok.encode("ACGTACGTACGT")
    assert ids.dtype == np.int64 and ids[0] == tok.cls_id and ids[-1] == tok.sep_id


@pytest.mark.parametrize(
    ("tok", "old_meta"),
    [
        (CharTokenizer(invalid="n"), {"kind": "char", "invalid": "n", "add_special_tokens": True}),
        (KmerTokenizer(k=3, stride=3), {"kind": "kmer", "k": 3, "stride": 3, "invalid": "error", "add_special_tokens": True}),
        (
            BpeTokenizer.from_file(ROOT / "data/tokenizers/dnabert2_117m/tokenizer.json", add_special_tokens=False),
            {"kind": "bpe", "invalid": "error", "add_special_tokens": False},
        ),
    ],
    ids=lambda x: getattr(x, "kind", ""),
)
def test_folders_of_the_old_kind_layout_still_load(tok, old_meta, tmp_path):
    tok.save(tmp_path)
    (tmp_path / "biolm_tokenizer.json").write_text(json.dumps(old_meta))  # the layout before _target_
    loaded = load_tokenizer(tmp_path)
    assert type(loaded) is type(tok) and loaded.config() == tok.config() and loaded.kind == old_meta["kind"]
    assert [a.tolist() for a in loaded.encode_batch(SEQS)] == [a.tolist() for a in tok.encode_batch(SEQS)]


def test_target_round_trip_keeps_roles(tmp_path):
    roles = {"pad": "<pad>", "unk": "<unk>", "cls": "<cls>", "sep": "<eos>", "mask": "<mask>", "bos": "<bos>", "eos": "<eos>"}
    tok = KmerTokenizer(k=4, stride=2, special_tokens=roles)
    tok.save(tmp_path)
    meta = json.loads((tmp_path / "biolm_tokenizer.json").read_text())
    assert meta == {"_target_": "biolm.tokenizers.kmer.KmerTokenizer", **tok.config()} and meta["special_tokens"] == roles
    loaded = load_tokenizer(tmp_path)
    assert loaded.special_tokens == tok.special_tokens and loaded.vocab == tok.vocab
    assert (loaded.bos_id, loaded.eos_id, loaded.sep_id) == (5, 3, 3)
    assert "special_tokens" not in KmerTokenizer(k=4).config()  # default roles are not written


@pytest.mark.parametrize("target", ["os.system", "collections.OrderedDict", "biolm.errors.BiolmError", "biolm.no_such_module.Tokenizer", "biolm", 7])
def test_a_foreign_target_is_refused_without_importing_it(target, tmp_path, monkeypatch):
    CharTokenizer().save(tmp_path)
    meta = tmp_path / "biolm_tokenizer.json"
    meta.write_text(json.dumps({"_target_": target, "invalid": "error"}))
    if not (isinstance(target, str) and target.startswith("biolm.")):
        monkeypatch.setattr("biolm.tokenizers.base.importlib.import_module", lambda name: pytest.fail(f"imported {name}"))
    with pytest.raises(BiolmError) as info:
        load_tokenizer(tmp_path)
    message = str(info.value)
    assert str(meta) in message and "not a biolm tokenizer class" in message and "\n" not in message


def test_one_atomic_write_helper():
    import biolm.atomic
    import biolm.data.io

    assert biolm.data.io.atomic_path is biolm.atomic.atomic_path

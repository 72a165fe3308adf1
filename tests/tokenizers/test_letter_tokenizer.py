"""One token per letter with a checkpoint's ids: HyenaDNA (published ids, [SEP] appended) and ESM-2 protein
(ids equal to transformers' EsmTokenizer on the same vocab.txt); U is read as T; protein letters are checked."""

from __future__ import annotations

import json

import numpy as np
import pytest

from biolm.errors import BiolmError, InvalidSequenceError
from biolm.tokenizers import LetterTokenizer, load_tokenizer
from biolm.tokenizers.checkpoint import from_checkpoint
from biolm.tokenizers.letters import esm_protein_tokenizer, hyenadna_tokenizer

# facebook/esm2_t6_8M_UR50D vocab.txt, line i = id i (the same 33 tokens for every ESM-2 size)
ESM2_VOCAB = ["<cls>", "<pad>", "<eos>", "<unk>", *"LAGVSERTIDPKQNFYMHWCXBUZO", ".", "-", "<null_1>", "<mask>"]
PROTEINS = ["MKTAYIAKQRQISFVKSHFSRQ", "mkv", "ACDEFGHIKLMNPQRSTVWYXBUZO"]


def test_hyenadna_published_ids():
    tok = hyenadna_tokenizer()
    # layouts file 4.4: [CLS]0 [SEP]1 [BOS]2 [MASK]3 [PAD]4 [RESERVED]5 [UNK]6 A7 C8 G9 T10 N11; ids + [SEP]
    assert tok.encode("ACGTN").tolist() == [7, 8, 9, 10, 11, 1]
    assert [ids.tolist() for ids in tok.encode_batch(["ACTG", "A"])] == [[7, 8, 10, 9, 1], [7, 1]]
    assert (tok.pad_id, tok.mask_id, tok.cls_id, tok.bos_id, tok.unk_id, tok.vocab_size) == (4, 3, 0, 2, 6, 12)
    assert tok.special_ids == [0, 1, 2, 3, 4, 5, 6]  # [RESERVED] too: never a target or a replacement
    assert tok.decode([7, 8, 5, 9, 1, 4]) == "ACNG"
    assert tok.token_spans("ACG").tolist() == [[0, 1], [1, 2], [2, 3], [-1, -1]]
    assert tok.tokens_covering("ACGT", 2, 3) == (2, 3)
    assert hyenadna_tokenizer(add_special_tokens=False).encode("acgu").tolist() == [7, 8, 9, 10]  # any case; U read as T


def test_hyenadna_folder_is_recognised(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "hyenadna", "d_model": 128}))
    assert from_checkpoint(tmp_path).encode("AC").tolist() == [7, 8, 1]
    other = tmp_path / "other"
    other.mkdir()
    (other / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "CharacterTokenizer", "model_max_length": 1026}))
    assert from_checkpoint(other).vocab == hyenadna_tokenizer().vocab


def test_esm2_ids_equal_transformers(tmp_path):
    from transformers import EsmTokenizer

    (tmp_path / "vocab.txt").write_text("\n".join(ESM2_VOCAB) + "\n")
    ours = from_checkpoint(tmp_path)
    assert isinstance(ours, LetterTokenizer) and ours.alphabet.name == "protein" and ours.vocab_size == 33
    reference = EsmTokenizer(str(tmp_path / "vocab.txt"))
    for seq in PROTEINS:
        assert ours.encode(seq).tolist() == reference(seq.upper())["input_ids"]
    assert ours.encode("MK").tolist() == [0, 20, 15, 2]  # <cls> M K <eos>
    assert ours.decode(ours.encode("MKX")) == "MKX" and ours.token_spans(2).tolist() == [[-1, -1], [0, 1], [1, 2], [-1, -1]]
    assert set(ours.special_ids) == {0, 1, 2, 3, 29, 30, 31, 32}  # <cls> <pad> <eos> <unk> . - <null_1> <mask>


def test_protein_letters_are_checked(tmp_path):
    (tmp_path / "vocab.txt").write_text("\n".join(ESM2_VOCAB))
    tok = esm_protein_tokenizer(tmp_path)
    with pytest.raises(InvalidSequenceError, match=r"'\*' at position 4 \(accepted: the 20 amino acids.*read other letters as X"):
        tok.encode_batch(["MKV*"])
    assert esm_protein_tokenizer(tmp_path, invalid="n").encode("MK*").tolist() == [0, 20, 15, 24, 2]  # * -> X
    (tmp_path / "vocab.txt").write_text("\n".join(t for t in ESM2_VOCAB if t != "W"))
    with pytest.raises(BiolmError, match=r"lacks the letters \['W'\]"):
        esm_protein_tokenizer(tmp_path)


def test_protein_tokenizer_round_trips_through_a_folder(tmp_path):
    (tmp_path / "vocab.txt").write_text("\n".join(ESM2_VOCAB))
    tok = esm_protein_tokenizer(tmp_path)
    tok.save(tmp_path / "saved")
    loaded = load_tokenizer(tmp_path / "saved")
    assert loaded.config() == tok.config() and loaded.alphabet.name == "protein"
    assert [a.tolist() for a in loaded.encode_batch(PROTEINS)] == [a.tolist() for a in tok.encode_batch(PROTEINS)]


def test_unequal_and_equal_lengths_encode_alike():
    tok = hyenadna_tokenizer()
    seqs = ["ACGT", "GG", "", "TTTT"]
    batch = tok.encode_batch(seqs)
    assert [b.tolist() for b in batch] == [tok.encode_batch([s])[0].tolist() for s in seqs]
    assert all(b.dtype == np.int64 for b in batch)


def test_bad_framing_role_is_named():
    with pytest.raises(BiolmError, match="tokenizer.close='eos': not a role with a token"):
        LetterTokenizer({t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *"ACGTN"])}, close="eos")
    with pytest.raises(BiolmError, match="tokenizer.alphabet='RNA': unknown"):
        LetterTokenizer({}, alphabet="RNA")

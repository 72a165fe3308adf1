"""BpeTokenizer: ids equal tokenizers.Tokenizer on DNABERT-2's tokenizer.json; specials; round trips."""

from pathlib import Path

import numpy as np
import pytest
import tokenizers

from biolm.errors import BiolmError, InvalidSequenceError
from biolm.tokenizers import BpeTokenizer

DNABERT2 = Path(__file__).resolve().parents[2] / "data/tokenizers/dnabert2_117m/tokenizer.json"
SEQS = [
    "ACGTAGCATCGGATCTATCTATCGACACTTGGTTATCGATCTACGAGCATCTCGTTAGC",
    "TATAAAAGGCGCGCCGCGCGGCGCTTTTTTTTTATATATATGCGCAAAAAAAAAAAAAAAA",
    "GATTACA",
    "A",
    "CCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCC",
]


@pytest.fixture(scope="module")
def dnabert2() -> BpeTokenizer:
    return BpeTokenizer.from_file(DNABERT2)


def test_specials_and_known_ids(dnabert2):
    assert (dnabert2.unk_id, dnabert2.cls_id, dnabert2.sep_id, dnabert2.pad_id, dnabert2.mask_id) == (0, 1, 2, 3, 4)
    assert dnabert2.vocab_size == 4096
    assert (dnabert2.vocab["A"], dnabert2.vocab["C"], dnabert2.vocab["G"], dnabert2.vocab["T"]) == (5, 6, 7, 8)
    assert dnabert2.encode("A").tolist() == [1, 5, 2]
    assert dnabert2.encode("C").tolist() == [1, 6, 2]


def test_ids_equal_hugging_face_tokenizer(dnabert2):
    reference = tokenizers.Tokenizer.from_file(str(DNABERT2))
    rng = np.random.default_rng(2)
    seqs = SEQS + ["".join(rng.choice(list("ACGT"), size=n)) for n in rng.integers(1, 400, size=20)]
    encoded = dnabert2.encode_batch(seqs)
    assert all(ids.dtype == np.int64 for ids in encoded)
    assert [ids.tolist() for ids in encoded] == [reference.encode(s).ids for s in seqs]
    assert [ids.tolist() for ids in encoded] == [dnabert2.encode(s.lower()).tolist() for s in seqs]
    no_specials = BpeTokenizer.from_file(DNABERT2, add_special_tokens=False)
    assert [ids.tolist() for ids in no_specials.encode_batch(seqs)] == [ids.tolist()[1:-1] for ids in encoded]


def test_round_trip_and_n_as_unk(dnabert2):
    for seq in SEQS:
        assert dnabert2.decode(dnabert2.encode(seq)) == seq
    ids = dnabert2.encode("ACGTNNACGT")
    assert ids.tolist().count(dnabert2.unk_id) == 2
    assert dnabert2.decode(ids) == "ACGTNNACGT"


def test_invalid_policy(dnabert2):
    with pytest.raises(InvalidSequenceError) as info:
        dnabert2.encode_batch(["ACGT", "ACGX"])
    assert (info.value.index, info.value.position, info.value.char) == (1, 3, "X")
    lenient = BpeTokenizer.from_file(DNABERT2, invalid="n")
    assert lenient.encode("ACGX").tolist() == dnabert2.encode("ACGN").tolist()
    assert dnabert2.encode("ACGUu").tolist() == dnabert2.encode("ACGTT").tolist()  # RNA read as DNA


def test_bases_per_token_is_a_plausible_estimate(dnabert2):
    assert 3.0 < dnabert2.bases_per_token < 6.0


def test_missing_or_bad_file_is_user_error(tmp_path):
    with pytest.raises(BiolmError, match="not found"):
        BpeTokenizer.from_file(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(BiolmError, match="bad.json"):
        BpeTokenizer.from_file(bad)


def test_train_small_vocab():
    rng = np.random.default_rng(3)
    seqs = ["".join(rng.choice(list("ACGT"), size=200)) for _ in range(50)]
    tok = BpeTokenizer.train(seqs, vocab_size=64)
    assert tok.vocab_size == 64
    assert (tok.unk_id, tok.cls_id, tok.sep_id, tok.pad_id, tok.mask_id) == (0, 1, 2, 3, 4)
    ids = tok.encode(seqs[0])
    assert ids[0] == tok.cls_id and ids[-1] == tok.sep_id and len(ids) < 200
    assert tok.decode(ids) == seqs[0]


def gena_like_tokenizer_json(path: Path) -> Path:
    """A tiny tokenizer.json in GENA-LM's layout (AIRI-Institute/GENA_LM data/tokenizers/t2t_1000h_multi_32k)."""
    from tokenizers import Regex, normalizers, pre_tokenizers, processors
    from tokenizers.models import BPE

    specials = ["[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]", "-"]
    vocab = {token: i for i, token in enumerate(specials + ["A", "C", "G", "N", "T", "AC", "GT", "ACGT"])}
    tok = tokenizers.Tokenizer(BPE(vocab=vocab, merges=[("A", "C"), ("G", "T"), ("AC", "GT")], unk_token="[UNK]", fuse_unk=False))
    tok.normalizer = normalizers.Sequence([normalizers.Strip(), normalizers.Replace(Regex("N{10,}"), "-")])
    tok.pre_tokenizer = pre_tokenizers.Split("-", behavior="isolated")
    tok.post_processor = processors.BertProcessing(("[SEP]", 2), ("[CLS]", 1))
    tok.add_special_tokens(specials)
    tok.save(str(path))
    return path


def test_gena_lm_layout_uses_the_file_ids_and_collapses_n_runs(tmp_path):
    from biolm.tokenizers import load_tokenizer
    from biolm.tokenizers.checkpoint import from_checkpoint

    path = gena_like_tokenizer_json(tmp_path / "tokenizer.json")
    tok = BpeTokenizer.from_file(path)
    assert (tok.unk_id, tok.cls_id, tok.sep_id, tok.pad_id, tok.mask_id) == (0, 1, 2, 3, 4)
    assert tok.vocab["-"] == 5 and tok.vocab["A"] == 6
    seq = "ACGTAC" + "N" * 12 + "ACGTNNA"  # 12 N -> one "-" (id 5); the 2 N later stay N (id 9)
    expected = [1, 13, 11, 5, 13, 9, 9, 6, 2]
    assert tok.encode(seq).tolist() == expected == tokenizers.Tokenizer.from_file(str(path)).encode(seq).ids
    assert tok.encode(" acgtac" + "n" * 12 + "acgtnna\n").tolist() == expected
    assert tok.encode("N" * 9).tolist() == [1] + [9] * 9 + [2]  # shorter runs are not collapsed
    spans = tok.token_spans(seq)  # the "-" covers all 12 N, so the tokens tile the 25 bases
    assert spans.tolist() == [[-1, -1], [0, 4], [4, 6], [6, 18], [18, 22], [22, 23], [23, 24], [24, 25], [-1, -1]]
    assert tok.tokens_covering(seq, 10, 11) == (3, 4)
    assert tok.token_spans("N" * 12).tolist() == [[-1, -1], [0, 12], [-1, -1]]
    assert tok.decode(tok.encode(seq)) == "ACGTAC" + "N" + "ACGTNNA"  # the run's length is not in the ids
    tok.save(tmp_path / "saved")
    assert load_tokenizer(tmp_path / "saved").encode(seq).tolist() == expected
    assert from_checkpoint(tmp_path).encode(seq).tolist() == expected  # tokenizer=pretrained on a GENA-LM folder

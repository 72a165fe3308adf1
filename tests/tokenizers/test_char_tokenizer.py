"""CharTokenizer: known ids, round trips, mixed lengths, the invalid policy."""

import numpy as np
import pytest

from biolm.errors import InvalidSequenceError
from biolm.tokenizers import CharTokenizer


def test_known_vocab_and_ids():
    tok = CharTokenizer()
    assert list(tok.vocab) == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "A", "C", "G", "T", "N"]
    assert (tok.pad_id, tok.unk_id, tok.cls_id, tok.sep_id, tok.mask_id, tok.vocab_size) == (0, 1, 2, 3, 4, 10)
    ids = tok.encode("ACGTNacgtn")
    assert ids.dtype == np.int64 and ids.ndim == 1
    assert ids.tolist() == [2, 5, 6, 7, 8, 9, 5, 6, 7, 8, 9, 3]
    assert tok.bases_per_token == 1.0
    assert CharTokenizer(add_special_tokens=False).encode("GATTACA").tolist() == [7, 5, 8, 8, 5, 6, 5]


@pytest.mark.parametrize("add_special_tokens", [True, False])
def test_round_trip_mixed_lengths(add_special_tokens):
    rng = np.random.default_rng(1)
    seqs = ["".join(rng.choice(list("ACGTN"), size=n)) for n in [0, 1, 7, 300, 299, 1, 0, 50]]
    tok = CharTokenizer(add_special_tokens=add_special_tokens)
    encoded = tok.encode_batch(seqs)
    for seq, ids in zip(seqs, encoded):
        assert len(ids) == len(seq) + (2 if add_special_tokens else 0)
        assert tok.decode(ids) == seq
    assert [a.tolist() for a in encoded] == [tok.encode(s).tolist() for s in seqs]


def test_equal_length_batch_matches_single():
    seqs = ["ACGT", "TTTT", "NNAA"]
    tok = CharTokenizer()
    assert [a.tolist() for a in tok.encode_batch(seqs)] == [tok.encode(s).tolist() for s in seqs]


def test_decode_drops_pad_cls_sep_and_reads_unk_mask_as_n():
    assert CharTokenizer().decode([2, 5, 4, 1, 8, 3, 0, 0]) == "ANNT"


def test_invalid_policy():
    with pytest.raises(InvalidSequenceError) as info:
        CharTokenizer().encode_batch(["ACGT", "AC-GT"])
    assert (info.value.index, info.value.position, info.value.char) == (1, 2, "-")
    assert CharTokenizer(invalid="n").encode("AC-GT").tolist() == [2, 5, 6, 9, 7, 8, 3]

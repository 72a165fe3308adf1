"""Token geometry on hand-made cases: spans, the tokens covering a base range, per-base -> per-token labels."""

from pathlib import Path

import numpy as np
import pytest

from biolm.errors import BiolmError
from biolm.tokenizers import BpeTokenizer, CharTokenizer, KmerTokenizer

DNABERT2 = Path(__file__).resolve().parents[2] / "data/tokenizers/dnabert2_117m/tokenizer.json"
S = [-1, -1]  # the span of a special token


@pytest.fixture(scope="module")
def small_bpe() -> BpeTokenizer:
    # A corpus of AC repeats and 2 merges: AC, then ACAC (vocabulary: 5 specials, A C G T, AC, ACAC).
    tok = BpeTokenizer.train(["AC" * 50], vocab_size=11)
    assert {"AC", "ACAC"} <= set(tok.vocab)
    return tok


def test_char_spans_labels_and_covering():
    tok = CharTokenizer()
    assert tok.token_spans("ACGT").tolist() == [S, [0, 1], [1, 2], [2, 3], [3, 4], S]
    assert tok.token_spans(4).tolist() == tok.token_spans(" acgt\n").tolist()
    assert tok.tokens_covering("ACGT", 2, 3) == (3, 4)
    assert tok.tokens_covering("ACGT", 1, 4) == (2, 5)
    assert tok.token_labels("ACGT", [7, 8, 9, 10]).tolist() == [-100, 7, 8, 9, 10, -100]
    bare = CharTokenizer(add_special_tokens=False)
    assert bare.token_spans("ACG").tolist() == [[0, 1], [1, 2], [2, 3]]
    assert bare.tokens_covering(3, 0, 1) == (0, 1)
    assert tok.token_spans("").tolist() == [S, S]


def test_6mer_stride_1_spans_labels_and_covering():
    tok = KmerTokenizer(k=6, stride=1)
    seq = "ACGTACGT"  # 3 k-mers: bases 0..5, 1..6, 2..7
    assert tok.token_spans(seq).tolist() == [S, [0, 6], [1, 7], [2, 8], S]
    assert tok.tokens_covering(seq, 0, 1) == (1, 2)  # only the first k-mer holds base 0
    assert tok.tokens_covering(seq, 3, 4) == (1, 4)  # every k-mer holds base 3
    assert tok.tokens_covering(seq, 7, 8) == (3, 4)
    assert tok.max_tokens_per_base == 6
    # Centre of [s, s + 6) is s + 2.
    assert tok.token_labels(seq, [0, 1, 2, 3, 4, 5, 6, 7]).tolist() == [-100, 2, 3, 4, -100]
    # A long window: base 10 lies in the six k-mers starting at bases 5..10 (token positions 6..11).
    assert tok.tokens_covering(100, 10, 11) == (6, 12)


def test_3mer_stride_3_spans_labels_and_uncovered_tail():
    tok = KmerTokenizer(k=3, stride=3, add_special_tokens=False)
    seq = "ACGTACGTAC"  # 10 bases: k-mers 0..2, 3..5, 6..8; base 9 is in no token
    assert tok.token_spans(seq).tolist() == [[0, 3], [3, 6], [6, 9]]
    assert tok.tokens_covering(seq, 4, 7) == (1, 3)
    assert tok.tokens_covering(seq, 9, 10) == (0, 0)
    assert tok.max_tokens_per_base == 1
    assert tok.token_labels(seq, np.arange(10) * 10).tolist() == [10, 40, 70]
    with_specials = KmerTokenizer(k=3, stride=3)
    assert with_specials.token_labels(seq, np.arange(10)).tolist() == [-100, 1, 4, 7, -100]


def test_kmer_sequence_shorter_than_k_is_one_unk_over_all_its_bases():
    tok = KmerTokenizer(k=6)
    assert tok.encode("ACG").tolist() == [tok.cls_id, tok.unk_id, tok.sep_id]
    assert tok.token_spans("ACG").tolist() == [S, [0, 3], S]
    assert tok.token_labels("ACG", [5, 6, 7]).tolist() == [-100, 6, -100]


def test_small_bpe_spans_labels_and_covering(small_bpe):
    seq = "ACACACGTN"  # ACAC | AC | G | T | N ([UNK])
    ids = small_bpe.encode(seq)
    assert [small_bpe.decode([i]) for i in ids] == ["", "ACAC", "AC", "G", "T", "N", ""]
    assert small_bpe.token_spans(seq).tolist() == [S, [0, 4], [4, 6], [6, 7], [7, 8], [8, 9], S]
    assert small_bpe.tokens_covering(seq, 3, 5) == (1, 3)
    assert small_bpe.tokens_covering(seq, 8, 9) == (5, 6)
    # Centre of [0, 4) is base 1 (the left middle), of [4, 6) base 4.
    assert small_bpe.token_labels(seq, np.arange(9)).tolist() == [-100, 1, 4, 6, 7, 8, -100]
    assert small_bpe.token_spans(" acacacgtn ").tolist() == small_bpe.token_spans(seq).tolist()
    with pytest.raises(TypeError, match="needs the sequence"):
        small_bpe.token_spans(9)


@pytest.mark.parametrize(
    "tok",
    [
        CharTokenizer(),
        KmerTokenizer(k=6),
        KmerTokenizer(k=5, stride=2, add_special_tokens=False),
        KmerTokenizer(k=4, stride=4),
        BpeTokenizer.from_file(DNABERT2),
        BpeTokenizer.from_file(DNABERT2, add_special_tokens=False),
    ],
    ids=repr,
)
def test_spans_agree_with_encode_and_decode(tok):
    rng = np.random.default_rng(0)
    seqs = ["".join(rng.choice(list("ACGT"), size=n)) for n in (1, 5, 6, 17, 64, 301)] + ["acgtNNacgtACGGT"]
    for seq in seqs:
        ids, spans = tok.encode(seq), tok.token_spans(seq)
        assert spans.shape == (len(ids), 2) and spans.dtype == np.int64
        specials = np.isin(ids, tok.special_ids) & (ids != tok.unk_id)
        assert (spans[specials] == -1).all() and (spans[~specials, 1] > spans[~specials, 0]).all()
        for token, (start, end) in zip(ids[~specials], spans[~specials]):
            piece = tok.decode([token])
            if "N" not in piece and token != tok.unk_id:
                assert piece == seq.upper()[start:end]


def test_bad_labels_and_ranges_are_refused():
    tok = KmerTokenizer(k=3)
    with pytest.raises(BiolmError, match="3 labels for a sequence of 4 bases"):
        tok.token_labels("ACGT", [0, 1, 2])
    with pytest.raises(BiolmError, match="one number per base"):
        tok.token_labels("ACGT", ["a", "b", "c", "d"])
    with pytest.raises(BiolmError, match="empty or negative"):
        tok.tokens_covering("ACGT", 2, 2)
    assert tok.token_labels("ACGT", np.array([0.5, 1.5, 2.5, 3.5])).tolist() == [-100, 1.5, 2.5, -100]

"""KmerTokenizer: product-order ids, edge cases, a naive reference, and DNABERT's BertTokenizer path."""

from itertools import product

import numpy as np
import pytest
import transformers

from biolm.errors import BiolmError, InvalidSequenceError
from biolm.tokenizers import KmerTokenizer

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def naive_kmer_ids(seq: str, k: int, stride: int, add_special_tokens: bool = True) -> list[int]:
    """Pure-Python reference: vocab built from itertools.product, windows sliced one by one."""
    vocab = {tok: i for i, tok in enumerate(SPECIALS + ["".join(p) for p in product("ACGT", repeat=k)])}
    seq = seq.strip().upper()
    if len(seq) < k:
        body = [vocab["[UNK]"]]
    else:
        body = [vocab.get(seq[i : i + k], vocab["[UNK]"]) for i in range(0, len(seq) - k + 1, stride)]
    return [vocab["[CLS]"], *body, vocab["[SEP]"]] if add_special_tokens else body


def random_seqs(rng, lengths, alphabet="ACGT", n_rate=0.0, lower_rate=0.0):
    seqs = []
    for n in lengths:
        chars = rng.choice(list(alphabet), size=n)
        chars[rng.random(n) < n_rate] = "N"
        lower = rng.random(n) < lower_rate
        chars[lower] = np.char.lower(chars[lower])
        seqs.append("".join(chars))
    return seqs


def test_known_ids_kmer3_by_hand():
    tok = KmerTokenizer(k=3)
    # product order: id = 5 + 16*c0 + 4*c1 + c2 with A=0, C=1, G=2, T=3
    acg, cgt, gta = 5 + 0 + 4 * 1 + 2, 5 + 16 * 1 + 4 * 2 + 3, 5 + 16 * 2 + 4 * 3 + 0
    assert (acg, cgt, gta) == (11, 32, 49)
    assert tok.vocab["ACG"] == acg and tok.vocab["CGT"] == cgt and tok.vocab["GTA"] == gta
    assert tok.encode("ACGTA").tolist() == [tok.cls_id, acg, cgt, gta, tok.sep_id] == [2, 11, 32, 49, 3]


def test_vocab_layout_k6():
    tok = KmerTokenizer(k=6)
    assert tok.vocab_size == 5 + 4**6
    assert list(tok.vocab)[:5] == SPECIALS
    assert tok.vocab["AAAAAA"] == 5 and tok.vocab["AAAAAC"] == 6 and tok.vocab["TTTTTT"] == 4100
    assert tok.bases_per_token == 1.0 and KmerTokenizer(k=6, stride=6).bases_per_token == 6.0


def test_edge_cases():
    tok = KmerTokenizer(k=4)
    assert tok.encode("ACG").tolist() == [2, 1, 3]  # shorter than k: one [UNK]
    assert tok.encode("").tolist() == [2, 1, 3]
    assert tok.encode("AAAAN").tolist() == [2, 5, 1, 3]  # a k-mer holding N is [UNK]
    assert tok.encode("acgtac").tolist() == tok.encode("ACGTAC").tolist()
    assert KmerTokenizer(k=4, add_special_tokens=False).encode("ACG").tolist() == [1]
    # non-overlapping: the 2 trailing bases do not fill a 4-mer and are dropped
    strided = KmerTokenizer(k=4, stride=4)
    ids = strided.encode("AAAACCCCGG")
    assert ids.tolist() == [2, strided.vocab["AAAA"], strided.vocab["CCCC"], 3]
    assert strided.decode(ids) == "AAAACCCC"


@pytest.mark.parametrize("k", [3, 4, 5, 6])
@pytest.mark.parametrize("stride_kind", ["one", "two", "k"])
def test_fast_path_equals_naive_reference(k, stride_kind):
    stride = {"one": 1, "two": 2, "k": k}[stride_kind]
    rng = np.random.default_rng(k * 10 + stride)
    mixed = random_seqs(rng, rng.integers(0, 40, size=60).tolist() + [k - 1, k, k + 1, 0], n_rate=0.05, lower_rate=0.2)
    equal = random_seqs(rng, [37] * 20, n_rate=0.05, lower_rate=0.2)
    no_n = random_seqs(rng, [25] * 5)
    for add_special_tokens in (True, False):
        tok = KmerTokenizer(k=k, stride=stride, add_special_tokens=add_special_tokens)
        for batch in (mixed, equal, no_n):
            got = [ids.tolist() for ids in tok.encode_batch(batch)]
            assert got == [naive_kmer_ids(s, k, stride, add_special_tokens) for s in batch]
            assert all(ids.dtype == np.int64 for ids in tok.encode_batch(batch))


@pytest.mark.parametrize("k", [3, 4, 5, 6])
@pytest.mark.parametrize("overlapping", [True, False])
def test_round_trip(k, overlapping):
    stride = 1 if overlapping else k
    tok = KmerTokenizer(k=k, stride=stride)
    rng = np.random.default_rng(k)
    seqs = random_seqs(rng, [k, k + 1, 2 * k, 50, 301, 64])
    for seq, ids in zip(seqs, tok.encode_batch(seqs)):
        covered = (len(seq) - k) // stride * stride + k
        assert tok.decode(ids) == seq[:covered]


def test_decode_with_n_keeps_bases_seen_by_another_window():
    tok = KmerTokenizer(k=3)
    # Position 0 is only in the N window "ANA", so it is lost; position 2 is also in "AAC".
    assert tok.decode(tok.encode("ANAAC")) == "NNAAC"
    assert tok.decode([2, 4, tok.vocab["AAC"], 3, 0]) == "NAAC"  # [MASK] keeps its window


def test_invalid_policy():
    with pytest.raises(InvalidSequenceError) as info:
        KmerTokenizer(k=3).encode_batch(["ACGTACGT", "ACGTAC", "ACGTRY"])
    assert (info.value.index, info.value.position, info.value.char) == (2, 4, "R")
    tok = KmerTokenizer(k=3, invalid="n")
    assert tok.encode("ACGRAC").tolist() == tok.encode("ACGNAC").tolist()


def test_bad_parameters_name_the_field():
    with pytest.raises(BiolmError, match="tokenizer.k"):
        KmerTokenizer(k=7)
    with pytest.raises(BiolmError, match="tokenizer.k"):
        KmerTokenizer(k=2)
    with pytest.raises(BiolmError, match="tokenizer.stride"):
        KmerTokenizer(k=3, stride=4)
    with pytest.raises(BiolmError, match="tokenizer.invalid"):
        KmerTokenizer(k=3, invalid="drop")


def dnabert_kmer_string(seq: str, k: int) -> str:
    """DNABERT's seq2kmer: overlapping k-mers joined by spaces."""
    return " ".join(seq[i : i + k] for i in range(len(seq) + 1 - k))


def test_vocab_txt_matches_dnabert_bert_tokenizer(tmp_path):
    tok = KmerTokenizer(k=6)
    tok.save(tmp_path)
    rng = np.random.default_rng(6)
    seqs = random_seqs(rng, rng.integers(6, 120, size=40).tolist(), n_rate=0.02)
    expected = [ids.tolist() for ids in tok.encode_batch(seqs)]
    references = [transformers.BertTokenizer(str(tmp_path / "vocab.txt"), do_lower_case=False)]
    if hasattr(transformers, "BertTokenizerLegacy"):  # transformers 5: the pure-Python WordPiece DNABERT ran
        references.append(transformers.BertTokenizerLegacy(str(tmp_path / "vocab.txt"), do_lower_case=False))
    for bert in references:
        assert len(bert) == tok.vocab_size
        assert [bert(dnabert_kmer_string(s, 6))["input_ids"] for s in seqs] == expected

"""NtTokenizer: NT v1 and v2 vocab.txt orders (layouts file §0.1, §1.5), ids against EsmTokenizer."""

from itertools import product

import numpy as np
import pytest
import transformers

from biolm.errors import BiolmError
from biolm.tokenizers import NtTokenizer, load_tokenizer

KMERS = ["".join(b) for b in product("ATCG", repeat=6)]  # NT's order: product("ATCG"), not "ACGT"
V1_LINES = ["<unk>", "<pad>", "<mask>", "<cls>", *KMERS, *"ATCGN", "<eos>", "<bos>"]
V2_LINES = ["<unk>", "<pad>", "<mask>", "<cls>", "<eos>", "<bos>", *KMERS, *"ATCGN"]
README = ["ATTCCGATTCCGATTCCG", "ATTTCTCTCTCTCTCTGAGATCGATCGATCGAT"]  # NT README: 4 and 9 tokens


@pytest.fixture(params=["v1", "v2"])
def folder(request, tmp_path):
    lines = V1_LINES if request.param == "v1" else V2_LINES
    (tmp_path / "vocab.txt").write_text("\n".join(lines))  # the Hub files have no trailing newline
    return tmp_path


def test_vocabulary_sizes_and_published_ids(tmp_path):
    (tmp_path / "vocab.txt").write_text("\n".join(V2_LINES))
    v2 = NtTokenizer(tmp_path)
    assert v2.vocab_size == 4107 and len(V2_LINES) == 4107
    assert (v2.unk_id, v2.pad_id, v2.mask_id, v2.cls_id) == (0, 1, 2, 3)
    assert (v2.vocab["AAAAAA"], v2.vocab["AAAAAT"]) == (6, 7)
    assert [v2.vocab[b] for b in "ATCGN"] == [4102, 4103, 4104, 4105, 4106]
    assert v2.sep_id is None and v2.eos_id is None
    (tmp_path / "vocab.txt").write_text("\n".join(V1_LINES))
    v1 = NtTokenizer(tmp_path / "vocab.txt")
    assert v1.vocab_size == 4105  # the model's rows: vocab.txt's trailing <eos>, <bos> are never emitted
    assert v1.vocab["AAAAAA"] == 4 and v1.vocab["N"] == 4104


def test_readme_examples(folder):
    tok = NtTokenizer(folder)
    short, long = tok.encode_batch(README)
    assert len(short) == 4 and len(long) == 9
    assert short[0] == tok.cls_id and short[1] == short[2] == short[3] == tok.vocab["ATTCCG"]
    assert [tok._pieces[i] for i in long[1:]] == ["ATTTCT", "CTCTCT", "CTCTGA", "GATCGA", "TCGATC", "G", "A", "T"]
    assert len(tok.encode("ACGT" * 62 + "ACG")) == 47  # 251 bp: 41 six-mers + 5 singles + <cls>


def test_ids_equal_transformers_esm_tokenizer(folder):
    tok = NtTokenizer(folder)
    reference = transformers.EsmTokenizer(vocab_file=str(folder / "vocab.txt"), eos_token=None)
    seqs = [*README, "ATCGAATNGGCGATCGA", "NNACGTACGTAN", "ACGTACGTACGTACG", "A", "N", "ACGTAC" * 5 + "NNGATTACA"]
    for seq, ids in zip(seqs, tok.encode_batch(seqs)):
        assert ids.tolist() == reference(seq)["input_ids"], seq


def test_split_at_n_and_geometry(folder):
    tok = NtTokenizer(folder)
    seq = "ATCGAATNGGCGATCGA"  # NT docstring example: ATCGAA T N GGCGAT C G A
    assert [tok._pieces[i] for i in tok.encode(seq)[1:]] == ["ATCGAA", "T", "N", "GGCGAT", "C", "G", "A"]
    spans = tok.token_spans(seq)
    assert spans.tolist() == [[-1, -1], [0, 6], [6, 7], [7, 8], [8, 14], [14, 15], [15, 16], [16, 17]]
    assert tok.tokens_covering(seq, 7, 9) == (3, 5)
    assert tok.token_spans(13).tolist() == [[-1, -1], [0, 6], [6, 12], [12, 13]]
    assert tok.decode(tok.encode(seq)) == seq
    assert tok.decode([tok.cls_id, tok.mask_id, tok.vocab["ACGTAC"], tok.pad_id]) == "NACGTAC"


def test_lower_case_is_read_and_bad_letters_follow_the_policy(folder):
    tok = NtTokenizer(folder)
    np.testing.assert_array_equal(tok.encode("acgtacg"), tok.encode("ACGTACG"))
    with pytest.raises(BiolmError):
        tok.encode("ACGTRA")
    np.testing.assert_array_equal(NtTokenizer(folder, invalid="n").encode("ACGTRA"), tok.encode("ACGTNA"))


def test_save_load_round_trip(folder, tmp_path_factory):
    tok = NtTokenizer(folder)
    out = tmp_path_factory.mktemp("saved")
    tok.save(out)
    again = load_tokenizer(out)
    assert isinstance(again, NtTokenizer) and again.vocab == tok.vocab
    np.testing.assert_array_equal(again.encode(README[1]), tok.encode(README[1]))


def test_not_an_nt_vocabulary_is_a_user_error(tmp_path):
    (tmp_path / "vocab.txt").write_text("[PAD]\n[UNK]\nA\nC\n")
    with pytest.raises(BiolmError, match="not a Nucleotide Transformer vocabulary"):
        NtTokenizer(tmp_path)
    with pytest.raises(BiolmError, match="not found"):
        NtTokenizer(tmp_path / "nope")

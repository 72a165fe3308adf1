"""Special tokens by role, and the alphabet each tokenizer owns."""

from pathlib import Path

import pytest
import tokenizers

from biolm.errors import BiolmError, InvalidSequenceError
from biolm.tokenizers import DNA, Alphabet, BpeTokenizer, CharTokenizer, KmerTokenizer, SpecialTokens
from biolm.tokenizers.alphabet import ROLES

DNABERT2 = Path(__file__).resolve().parents[2] / "data/tokenizers/dnabert2_117m/tokenizer.json"
NT_ROLES = {"pad": "<pad>", "unk": "<unk>", "cls": "<cls>", "sep": "<eos>", "mask": "<mask>", "bos": "<bos>", "eos": "<eos>"}


def test_default_roles_and_ids():
    for tok in (CharTokenizer(), KmerTokenizer(k=3)):
        assert tok.special_tokens.by_role() == {"pad": "[PAD]", "unk": "[UNK]", "cls": "[CLS]", "sep": "[SEP]", "mask": "[MASK]"}
        assert [tok.token_id(role) for role in ROLES] == [0, 1, 2, 3, 4, None, None]
        assert (tok.pad_id, tok.unk_id, tok.cls_id, tok.sep_id, tok.mask_id, tok.bos_id, tok.eos_id) == (0, 1, 2, 3, 4, None, None)
        assert tok.special_ids == [0, 1, 2, 3, 4]
    bpe = BpeTokenizer.from_file(DNABERT2)
    assert (bpe.unk_id, bpe.cls_id, bpe.sep_id, bpe.pad_id, bpe.mask_id, bpe.bos_id) == (0, 1, 2, 3, 4, None)


def test_roles_are_configurable_per_instance():
    tok = CharTokenizer(special_tokens=NT_ROLES)
    assert list(tok.vocab)[:6] == ["<pad>", "<unk>", "<cls>", "<eos>", "<mask>", "<bos>"]  # shared strings get one id
    assert (tok.cls_id, tok.sep_id, tok.eos_id, tok.bos_id) == (2, 3, 3, 5)
    assert tok.encode("AC").tolist() == [2, tok.vocab["A"], tok.vocab["C"], 3]
    assert tok.decode(tok.encode("ACGTN")) == "ACGTN"
    partial = KmerTokenizer(k=3, special_tokens={"cls": "<cls>"})  # other roles keep the class default
    assert partial.special_tokens.cls == "<cls>" and partial.special_tokens.pad == "[PAD]"


def test_roles_are_configurable_per_class():
    class NtStyleKmer(KmerTokenizer):
        default_special_tokens = SpecialTokens(**NT_ROLES)

    tok = NtStyleKmer(k=3)
    assert tok.special_tokens == SpecialTokens(**NT_ROLES) and "special_tokens" not in tok.config()
    assert tok.encode("ACGT")[0] == tok.vocab["<cls>"]


def test_bpe_roles_from_a_trained_tokenizer():
    tok = BpeTokenizer.train(["AC" * 20], vocab_size=12, special_tokens={"pad": "<pad>", "cls": "<s>", "sep": "</s>"})
    assert [tok.vocab[t] for t in ("[UNK]", "<s>", "</s>", "<pad>", "[MASK]")] == [0, 1, 2, 3, 4]  # DNABERT-2 order
    ids = tok.encode("ACN")
    assert ids[0] == tok.cls_id and ids[-1] == tok.sep_id and tok.decode(ids) == "ACN"


def test_bad_roles_are_refused():
    with pytest.raises(BiolmError, match="unknown role"):
        CharTokenizer(special_tokens={"start": "<s>"})
    with pytest.raises(BiolmError, match="non-empty string"):
        CharTokenizer(special_tokens={"pad": ""})
    with pytest.raises(BiolmError, match="lacks special tokens"):
        BpeTokenizer(tokenizers.Tokenizer.from_file(str(DNABERT2)), special_tokens={"bos": "<bos>"})


def test_every_tokenizer_owns_the_dna_alphabet():
    assert CharTokenizer().alphabet is DNA and KmerTokenizer().alphabet is DNA and BpeTokenizer.alphabet is DNA
    assert DNA.letters == "ACGTN" and DNA.unknown == "N"
    assert DNA.reverse_complement("AACGTNryk") == "mryNACGTT"


def test_reverse_complement_keeps_its_old_import_path():
    from biolm.data.genome import reverse_complement as old_home
    from biolm.tokenizers.alphabet import reverse_complement

    assert old_home is reverse_complement


def test_another_alphabet_drives_normalisation_and_the_vocabulary():
    rna = Alphabet("RNA", "ACGUN", "N", complement=dict(zip("ACGUN", "UGCAN")))
    assert rna.normalize([" acgu ", "ACGT"], invalid="n") == ["ACGU", "ACGN"]
    assert rna.reverse_complement("AACGu") == "aCGUU"
    with pytest.raises(InvalidSequenceError):
        rna.normalize(["ACGT"])

    class RnaCharTokenizer(CharTokenizer):
        alphabet = rna

    tok = RnaCharTokenizer()
    assert "U" in tok.vocab and "T" not in tok.vocab
    assert tok.decode(tok.encode("ACGU")) == "ACGU"
    protein = Alphabet("protein", "ACDEFGHIKLMNPQRSTVWYX", "X")
    assert protein.normalize(["mkv*"], invalid="n") == ["MKVX"]
    with pytest.raises(BiolmError, match="no complement"):
        protein.reverse_complement("MKV")

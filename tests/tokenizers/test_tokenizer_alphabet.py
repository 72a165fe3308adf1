"""normalize_sequences: case, whitespace, the invalid-character policies."""

import pytest

from biolm.errors import BiolmError, InvalidSequenceError
from biolm.tokenizers import SPECIAL_TOKENS, normalize_sequences


def test_special_token_names():
    assert SPECIAL_TOKENS == ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def test_upper_cases_and_strips():
    assert normalize_sequences(["acgtn", "  AcGt\n", "", "\t"]) == ["ACGTN", "ACGT", "", ""]


def test_error_names_sequence_and_position():
    with pytest.raises(InvalidSequenceError) as info:
        normalize_sequences(["ACGT", "ACGT", "ACXGR"])
    assert (info.value.index, info.value.position, info.value.char) == (2, 2, "X")


def test_error_position_counts_leading_whitespace_and_inner_space_is_invalid():
    with pytest.raises(InvalidSequenceError) as info:
        normalize_sequences(["  AC GT"])
    assert (info.value.index, info.value.position, info.value.char) == (0, 4, " ")


def test_error_on_non_ascii():
    with pytest.raises(InvalidSequenceError) as info:
        normalize_sequences(["ACGT", "AÇGT"])
    assert (info.value.index, info.value.position, info.value.char) == (1, 1, "Ç")


def test_invalid_n_maps_each_bad_character_to_n():
    assert normalize_sequences([" acxgr ", "AÇ-T", "RYKM"], invalid="n") == ["ACNGN", "ANNT", "NNNN"]


def test_bad_policy_and_bad_items_are_user_errors():
    with pytest.raises(BiolmError, match="tokenizer.invalid"):
        normalize_sequences(["ACGT"], invalid="skip")
    with pytest.raises(BiolmError, match="single string"):
        normalize_sequences("ACGT")
    with pytest.raises(BiolmError, match="sequence 1"):
        normalize_sequences(["ACGT", None])


def test_empty_batch():
    assert normalize_sequences([]) == []

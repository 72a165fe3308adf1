"""Sequences shorter than a tokenizer can read (k for k-mers, empty for all) are refused by name,
in files, in the Python API, on the command line and in the service; long sequences whose last
window would be shorter than k still predict (the last window is end-aligned)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from fastapi.testclient import TestClient
from omegaconf import OmegaConf

from biolm import api
from biolm.cli import main
from biolm.data.datasets import tokenize_records
from biolm.data.io import SequenceRecords, read_records
from biolm.errors import BiolmError
from biolm.service import create_app
from biolm.tokenizers import BpeTokenizer, CharTokenizer, KmerTokenizer


@pytest.fixture(scope="module")
def loaded_run(tiny_binary_run):
    return api.load_run(tiny_binary_run)


def _bpe() -> BpeTokenizer:
    return BpeTokenizer.train(["ACGTACGTTTGACCA" * 20, "GGGCCCAAATTT" * 20], vocab_size=40)


@pytest.mark.parametrize(
    ("tokenizer", "minimum", "rule"),
    [
        (CharTokenizer(), 1, "the char tokenizer needs at least 1 base"),
        (KmerTokenizer(k=3), 3, "the 3-mer tokenizer needs at least 3 bases"),
        (KmerTokenizer(k=6, stride=6), 6, "the 6-mer tokenizer needs at least 6 bases"),
        (_bpe(), 1, "the bpe tokenizer needs at least 1 base"),
    ],
)
def test_min_length_bp_is_the_shortest_sequence_with_a_real_token(tokenizer, minimum, rule):
    assert tokenizer.min_length_bp == minimum
    assert tokenizer.length_rule == rule
    assert tokenizer.too_short(["", "  ", "A" * (minimum - 1), "A" * minimum, f" {'C' * minimum} "]) == [0, 1, 2]
    ids = tokenizer.encode("A" * minimum)
    assert tokenizer.unk_id not in ids.tolist()  # at least one token that carries the bases


def test_short_records_are_named_with_their_lines_and_a_count(tmp_path):
    fasta = tmp_path / "short.fa"
    fasta.write_text(">a\nACG\n>b\nTTTTT\n>c\nGGGCC\n>d\nACGTACGTAC\n>e\nAC\n>f\nA\n")
    records = read_records(str(fasta))
    with pytest.raises(BiolmError) as err:
        tokenize_records(KmerTokenizer(k=6), records, None)
    assert str(err.value) == (
        f"{fasta}: 5 sequences are shorter than 6 bases (line 1 'a' (3 bp), line 3 'b' (5 bp), line 5 'c' (5 bp) and 2 more); "
        "the 6-mer tokenizer needs at least 6 bases (remove or lengthen those records)"
    )
    assert len(tokenize_records(KmerTokenizer(k=3), records.subset([0, 1, 2, 3]), None)) == 4


def test_empty_sequences_are_one_error_for_every_tokenizer(tmp_path):
    table = tmp_path / "x.csv"
    table.write_text("id,sequence\nr1,ACGT\nr2,\nr3,  \n")
    records = read_records(str(table))
    for tokenizer in (CharTokenizer(), KmerTokenizer(k=3), _bpe()):
        with pytest.raises(BiolmError, match=r"x.csv: 2 sequences are (empty|shorter than 3 bases) \(line 3 'r2'.*line 4 'r3'"):
            tokenize_records(tokenizer, records, None)
    with pytest.raises(BiolmError, match=r"x.csv: 1 sequence is empty \(line 3 'r2'\); the char tokenizer needs at least 1 base"):
        tokenize_records(CharTokenizer(), records.subset([0, 1]), None)


def test_api_predict_refuses_short_sequences_by_index(loaded_run):
    assert loaded_run.tokenizer.min_length_bp == 3  # the shared tiny run is a 3-mer BERT
    with pytest.raises(BiolmError, match=r"sequences: 2 sequences are shorter than 3 bases \(index 1 'seq1' \(2 bp\), index 2 'seq2' \(0 bp\)\)"):
        api.predict(loaded_run, ["ACGTACGT", "AC", ""])
    with pytest.raises(BiolmError, match=r"sequence 1: expected a string, got int"):
        api.predict(loaded_run, ["ACGTACGT", 7])
    frame = api.predict(loaded_run, ["ACG", "TTT"])
    assert frame["prob_1"].iloc[0] != frame["prob_1"].iloc[1]  # 3 bases are one real k-mer each


def test_cli_predict_short_fasta_exits_2_with_one_line(tiny_binary_run, tmp_path, capsys):
    fasta = tmp_path / "short.fa"
    fasta.write_text(">a\nAC\n>d\nACGTACGTAC\n")
    out = tmp_path / "p.csv"
    assert main(["predict", f"run={tiny_binary_run}", f"input={fasta}", f"output={out}"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        f"biolm predict: error: {fasta}: 1 sequence is shorter than 3 bases (line 1 'a' (2 bp)); "
        "the 3-mer tokenizer needs at least 3 bases (remove or lengthen those records)"
    )
    assert not out.exists()


def test_service_answers_422_naming_the_short_sequences(loaded_run):
    with TestClient(create_app(loaded_run)) as client:
        response = client.post("/v1/predict", json={"sequences": ["ACGTACGT", "AC", "ACG", "T"]})
        card = client.get("/v1/model").json()
        ok = client.post("/v1/predict", json={"sequences": ["ACG"]})
    assert response.status_code == 422
    assert response.json()["detail"] == (
        "sequences[1] (2 bp), sequences[3] (1 bp): too short; the 3-mer tokenizer needs at least 3 bases (min_length_bp in /v1/model)"
    )
    assert card["window"]["min_length_bp"] == 3
    assert ok.status_code == 200


def _windowed(run, size_bp: int, stride_bp: int):
    cfg = OmegaConf.create(OmegaConf.to_container(run.cfg))
    cfg.data.window_bp, cfg.data.window_stride_bp = size_bp, stride_bp
    return dataclasses.replace(run, cfg=cfg)


def test_a_short_last_window_is_end_aligned_not_a_lone_unk(loaded_run):
    seq = "ACGTTGCAGGCATTACG"  # 17 bp, windows of 8: a 1-base tail would be shorter than k=3
    windowed = _windowed(loaded_run, 8, 8)
    got = api.predict(windowed, [seq], aggregate="mean")["prob_1"].iloc[0]
    parts = api.predict(loaded_run, [seq[0:8], seq[8:16], seq[9:17]])["prob_1"].to_numpy()
    assert got == pytest.approx(float(np.mean(parts)), abs=1e-6)


def test_windows_shorter_than_k_are_refused(loaded_run):
    with pytest.raises(BiolmError, match=r"data.window_bp=2: the 3-mer tokenizer needs at least 3 bases"):
        api.predict(_windowed(loaded_run, 2, 2), ["ACGTACGT"])


def test_short_records_inside_windowed_prediction_are_named_as_records(loaded_run):
    records = SequenceRecords("in.fa", ["long", "tiny"], ["ACGT" * 10, "AC"], None, [1, 3])
    with pytest.raises(BiolmError, match=r"in.fa: 1 sequence is shorter than 3 bases \(line 3 'tiny' \(2 bp\)\)"):
        api.predict_records(_windowed(loaded_run, 8, 4), records)

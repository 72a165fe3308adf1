"""The CLI end to end: finetune -> evaluate -> predict, and every bad input -> one line, exit 2."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from biolm import api
from biolm.cli import main

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def trained_run(tiny_binary_run):
    return tiny_binary_run


def test_finetune_writes_a_complete_run(trained_run):
    names = {p.name for p in trained_run.iterdir()}
    assert {"config.yaml", "tokenizer", "labels.json", "model.safetensors", "metrics.csv", "test_metrics.json", "test_predictions.csv", "checkpoint.json"} <= names
    metrics = json.loads((trained_run / "test_metrics.json").read_text())
    assert set(metrics) >= {"accuracy", "auroc", "auprc", "mcc", "f1", "n_test"}
    assert metrics["n_test"] == 32
    log = pd.read_csv(trained_run / "metrics.csv")
    assert "val/auroc" in log.columns and log["val/auroc"].notna().sum() == 2
    assert not list(trained_run.parent.glob(".*incomplete"))


def test_evaluate_equals_the_test_metrics_of_training(trained_run, tiny_task, tmp_path, capsys):
    out = tmp_path / "eval.json"
    assert main(["evaluate", f"run={trained_run}", f"data.test={tiny_task['test']}", f"output={out}"]) == 0
    again = json.loads(out.read_text())
    first = json.loads((trained_run / "test_metrics.json").read_text())
    for key in ("accuracy", "auroc", "auprc", "mcc", "f1"):
        assert again[key] == pytest.approx(first[key], abs=1e-6)


def test_predict_fasta_csv_stdin_agree_with_the_api(trained_run, tiny_task, tmp_path, monkeypatch):
    frame = pd.read_csv(tiny_task["test"])
    expected = api.predict(trained_run, frame["sequence"].tolist())
    fasta = tmp_path / "x.fa"
    fasta.write_text("".join(f">seq{i}\n{s}\n" for i, s in enumerate(frame["sequence"])))
    assert main(["predict", f"run={trained_run}", f"input={fasta}", f"output={tmp_path / 'a.csv'}"]) == 0
    assert main(["predict", f"run={trained_run}", f"input={tiny_task['test']}", f"output={tmp_path / 'b.parquet'}"]) == 0
    monkeypatch.setattr(sys, "stdin", io.StringIO(fasta.read_text()))
    assert main(["predict", f"run={trained_run}", "input=-", f"output={tmp_path / 'c.tsv'}"]) == 0
    for got in (pd.read_csv(tmp_path / "a.csv"), pd.read_parquet(tmp_path / "b.parquet"), pd.read_csv(tmp_path / "c.tsv", sep="\t")):
        assert list(got.columns) == ["id", "prob_0", "prob_1", "prediction"]
        assert got["prob_1"].to_numpy() == pytest.approx(expected["prob_1"].to_numpy(), abs=1e-6)
        assert got["prediction"].astype(str).tolist() == expected["prediction"].astype(str).tolist()


def test_predictions_are_invariant_to_batching_and_order(trained_run, tiny_task):
    seqs = pd.read_csv(tiny_task["test"])["sequence"].tolist()
    whole = api.predict(trained_run, seqs, batch_size=64)["prob_1"].to_numpy()
    single = api.predict(trained_run, seqs, batch_size=1)["prob_1"].to_numpy()
    reverse = api.predict(trained_run, seqs[::-1], batch_size=7)["prob_1"].to_numpy()[::-1]
    assert single == pytest.approx(whole, abs=1e-5)
    assert reverse == pytest.approx(whole, abs=1e-5)


def test_cfg_job_prints_the_composed_config(capsys):
    assert main(["finetune", "model=cnn", "--cfg", "job"]) == 0
    out = capsys.readouterr().out
    assert "biolm.models.cnn.CnnEncoder" in out and "max_epochs" in out


def _bad(tmp_path, name, content):
    path = tmp_path / name
    path.write_text(content)
    return path


GOOD = "sequence,label\nACGTACGTAA,1\nTTGACCATGA,0\nACGTTTGACA,1\nGGGACATTTA,0\n"


@pytest.mark.parametrize(
    ("make", "extra", "message"),
    [
        (lambda d: d / "missing.csv", [], r"data.train: file not found: .*missing.csv"),
        (lambda d: _bad(d, "empty.csv", ""), [], r"empty.csv: file is empty"),
        (lambda d: _bad(d, "nohead.fa", "ACGT\n"), ["tokenizer=char"], r"nohead.fa line 1: sequence data before the first FASTA header"),
        (lambda d: _bad(d, "chars.csv", GOOD + "ACGTXACGTA,1\n"), [], r"chars.csv line 6: invalid character 'X' at position 5"),
        (lambda d: _bad(d, "nolabel.csv", "sequence,y\nACGT,1\n"), [], r"nolabel.csv: no label column 'label' \(found: sequence, y\)"),
        (lambda d: _bad(d, "nan.csv", GOOD + "ACGTACGTAC,nan\n"), [], r"nan.csv line 6: label is empty or NaN"),
        (lambda d: _bad(d, "three.csv", GOOD + "ACGTACGTAC,2\n"), [], r"task=binary needs exactly 2 label values .* found 3"),
        (lambda d: _bad(d, "reg.csv", GOOD + "ACGTACGTAC,high\n"), ["task=regression"], r"reg.csv line 6: label 'high' is not a number"),
        (lambda d: _bad(d, "ok.csv", GOOD), ["model=nope"], r"unknown model 'nope'; available: .*bert_tiny"),
        (lambda d: _bad(d, "ok.csv", GOOD), ["tokenizer=kmer9"], r"unknown tokenizer 'kmer9'; available: .*kmer6"),
        (lambda d: _bad(d, "ok.csv", GOOD), ["data.nonsense=1"], r"unknown config key 'data.nonsense'"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, make, extra, message):
    path = make(tmp_path)
    out = tmp_path / "runs"
    code = main(["finetune", f"data.train={path}", f"output_dir={out}", "progress_bar=false", *extra])
    err = capsys.readouterr().err.strip()
    assert code == 2
    # the error is one line, the last; log lines may precede it (e.g. a 5-row file split without stratifying)
    lines = err.splitlines()
    assert lines[-1].startswith("biolm finetune: error: ") and sum("error:" in line for line in lines) == 1, err
    assert "Traceback" not in err
    assert re.search(message, lines[-1]), err
    assert not out.exists() or not any(out.iterdir())


def test_console_script_has_no_traceback_and_exit_2(tmp_path):
    exe = Path(sys.executable).parent / "biolm"
    result = subprocess.run([str(exe), "predict", f"run={tmp_path / 'nope'}", "input=x.fa"], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 2
    assert result.stderr.strip() == f"biolm predict: error: run: no run folder at {tmp_path / 'nope'}"


def test_predict_bad_sequence_names_the_record(trained_run, tmp_path, capsys):
    fasta = _bad(tmp_path, "x.fa", ">a\nACGTACGT\n>b\nACGU\n")
    out = tmp_path / "p.csv"
    assert main(["predict", f"run={trained_run}", f"input={fasta}", f"output={out}"]) == 2
    assert "x.fa line 3: invalid character 'U' at position 4" in capsys.readouterr().err
    assert not out.exists()


def test_compare_puts_runs_beside_published_numbers(trained_run, tmp_path):
    from biolm.api import compare_runs

    table = compare_runs([trained_run], str(REPO / "data" / "gue" / "published_mcc.csv"), "prom_300_tata")
    first = json.loads((trained_run / "test_metrics.json").read_text())
    assert table.iloc[0]["model"] == "tiny" and table.iloc[0]["mcc"] == pytest.approx(first["mcc"])
    assert table[table["model"] == "DNABERT (6-mer)"]["mcc"].item() == pytest.approx(0.6156)
    out = tmp_path / "cmp.csv"
    assert main(["compare", f"runs=[{trained_run}]", f"output={out}"]) == 0
    assert pd.read_csv(out)["model"].tolist() == ["tiny"]

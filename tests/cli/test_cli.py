"""The CLI end to end: finetune -> evaluate -> predict, and every bad input -> one line, exit 2."""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pandas as pd
import pytest
from omegaconf import OmegaConf

from biolm import api
from biolm.cli import HANDLERS, main
from biolm.composition import CONFIG_SUBDIRS, RENAMED_KEYS
from biolm.resources import config_dir

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
    assert "biolm.models.onehot_cnn.OneHotCnn" in out and "max_epochs" in out


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
    fasta = _bad(tmp_path, "x.fa", ">a\nACGTACGT\n>b\nACGZ\n")
    out = tmp_path / "p.csv"
    assert main(["predict", f"run={trained_run}", f"input={fasta}", f"output={out}"]) == 2
    assert "x.fa line 3: invalid character 'Z' at position 4" in capsys.readouterr().err
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


def _command_configs() -> dict[str, Path]:
    """``biolm <command>`` -> its config: every configs/*.yaml, and configs/<sub>/*.yaml of the commands with their own root."""
    files = list(config_dir().glob("*.yaml")) + [f for sub in CONFIG_SUBDIRS.values() for f in (config_dir() / sub).glob("*.yaml")]
    return {f.stem.replace("_", " "): f for f in files}


def test_every_command_config_has_one_function_and_every_function_a_config():
    configs = _command_configs()
    assert set(configs) == set(HANDLERS)
    for name, path in configs.items():
        first = path.read_text().splitlines()[0]
        assert re.fullmatch(rf"# biolm {name}: \S.*", first), f"{path}: the first line is the help text, '# biolm {name}: <summary>'"


def test_help_lists_every_command_and_a_command_shows_its_config_header(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in HANDLERS:
        assert re.search(rf"^  {name} +\S", out, re.M), name
    assert main(["variants", "score", "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("biolm variants score: ") and "window_bp=512" in out.splitlines()[1]
    assert main(["gp", "cv", "-h"]) == 0
    assert capsys.readouterr().out.startswith("biolm gp cv: ")


def test_unknown_command_is_one_line_and_exit_2(capsys):
    assert main(["variants", "nope"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("biolm: unknown command 'variants'; accepted: ") and "variants score" in err and len(err.splitlines()) == 1


@pytest.mark.parametrize(
    ("argv", "old"),
    [
        (["finetune", "data.window.size=512"], "data.window.size"),
        (["finetune", "data.window.stride=256"], "data.window.stride"),
        (["variants", "score", "run=r", "window=512"], "window"),
        (["variants", "ism", "+average_rc=true"], "average_rc"),
    ],
)
def test_renamed_keys_are_refused_naming_the_new_key(capsys, argv, old):
    assert main(argv) == 2
    command = " ".join(a for a in argv if "=" not in a)
    assert capsys.readouterr().err.strip() == f"biolm {command}: error: {old} was renamed {RENAMED_KEYS[old]}"


def test_a_run_saved_with_the_old_window_keys_still_windows(trained_run, tiny_task, tmp_path):
    seqs = pd.read_csv(tiny_task["test"])["sequence"].tolist()[:8]  # 60 bp: three 24-bp windows each
    folders = {}
    for layout, window in (("old", {"window": {"size": 24, "stride": 18}}), ("new", {"window_bp": 24, "window_stride_bp": 18})):
        folder = shutil.copytree(trained_run, tmp_path / layout)
        cfg = OmegaConf.load(folder / "config.yaml")
        del cfg.data["window_bp"], cfg.data["window_stride_bp"]
        cfg.data = OmegaConf.merge(cfg.data, window)
        OmegaConf.save(cfg, folder / "config.yaml")
        folders[layout] = folder
    old = api.predict(folders["old"], seqs)["prob_1"].to_numpy()
    assert old == pytest.approx(api.predict(folders["new"], seqs)["prob_1"].to_numpy(), abs=1e-7)
    assert old != pytest.approx(api.predict(trained_run, seqs)["prob_1"].to_numpy(), abs=1e-6)


def test_known_third_party_warnings_are_silenced_around_every_command(monkeypatch):
    def noisy(cfg):
        warnings.warn("`isinstance(treespec, LeafSpec)` is deprecated, use `isinstance(treespec, TreeSpec)` instead.", FutureWarning, stacklevel=1)
        warnings.warn("this one concerns the user", UserWarning, stacklevel=1)

    monkeypatch.setitem(HANDLERS, "report", noisy)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        assert main(["report"]) == 0
    assert [str(w.message) for w in seen] == ["this one concerns the user"]

"""Damaged or hand-edited run folders: `predict`, `evaluate` and `serve` (and `gp predict`) answer
with one line naming the file, exit code 2, no traceback, and nothing loaded or run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from biolm.cli import main


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _other_model(run: Path) -> None:
    from safetensors.torch import load_file, save_file

    state = load_file(str(run / "model.safetensors"))
    state = {key: value[..., :1].clone() if value.ndim else value for key, value in state.items()}  # wrong shapes
    save_file(state, str(run / "model.safetensors"))


def _edit_target(run: Path) -> None:
    text = (run / "config.yaml").read_text()
    (run / "config.yaml").write_text(text.replace("_target_: biolm.models.", "_target_: os.system  # biolm.models.", 1))


DAMAGE = {
    "truncated weights": (lambda run: _truncate(run / "model.safetensors"), "model.safetensors: cannot load these weights"),
    "weights of another model": (_other_model, "model.safetensors: cannot load these weights"),
    "missing tokenizer": (lambda run: shutil.rmtree(run / "tokenizer"), "not a complete biolm run folder (missing: tokenizer)"),
    "tokenizer without its description": (lambda run: (run / "tokenizer" / "biolm_tokenizer.json").unlink(), "biolm_tokenizer.json: not found"),
    "target outside biolm": (_edit_target, "_target_ 'os.system' is not a biolm class"),
    "config not YAML": (lambda run: (run / "config.yaml").write_text("model: [unclosed\n"), "config.yaml: not a readable run config"),
    "labels not JSON": (lambda run: (run / "labels.json").write_text('{"task": "binary"'), "labels.json: not a readable label file"),
}


@pytest.fixture(params=sorted(DAMAGE))
def damaged(request, tiny_binary_run, tmp_path) -> tuple[Path, str]:
    run = tmp_path / "run"
    shutil.copytree(tiny_binary_run, run)
    damage, expected = DAMAGE[request.param]
    damage(run)
    return run, expected


@pytest.mark.parametrize("command", ["predict", "evaluate", "serve"])
def test_a_damaged_run_folder_is_one_line(damaged, command, tiny_task, tmp_path, capsys, monkeypatch):
    import uvicorn

    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: pytest.fail("the service started on a damaged run"))
    run, expected = damaged
    args = {
        "predict": ["predict", f"run={run}", f"input={tiny_task['test']}", f"output={tmp_path / 'out.csv'}"],
        "evaluate": ["evaluate", f"run={run}", f"data.test={tiny_task['test']}"],
        "serve": ["serve", f"run={run}", "port=0"],
    }[command]
    assert main(args) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith(f"biolm {command}: error:")]
    assert len(lines) == 1 and expected in lines[0] and "Traceback" not in err, err
    assert not (tmp_path / "out.csv").exists()


def test_a_damaged_pretraining_run_is_one_line(genome, tmp_path):
    from tests.api.test_pretrain import _pretrain

    pre = _pretrain(genome, tmp_path, "pre", "trainer.max_epochs=1")
    _truncate(pre / "model.safetensors")
    from biolm.errors import BiolmError
    from biolm.runs import load_language_model_run

    with pytest.raises(BiolmError, match="model.safetensors: cannot load these weights"):
        load_language_model_run(pre)


def test_a_damaged_gp_run_is_one_line(tmp_path, capsys):
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    geno = pd.DataFrame(rng.integers(0, 3, size=(30, 12)), columns=[f"m{i}" for i in range(12)])
    geno.insert(0, "line", [f"L{i:02d}" for i in range(30)])
    geno.to_csv(tmp_path / "geno.csv", index=False)
    pd.DataFrame({"line": geno.line, "yield": geno.m0 + rng.normal(0, 0.5, 30)}).to_csv(tmp_path / "pheno.csv", index=False)
    run = tmp_path / "gp"
    data = ["data=files", f"data.genotypes={tmp_path / 'geno.csv'}", f"data.phenotypes={tmp_path / 'pheno.csv'}", "data.id_column=line"]
    assert main(["gp", "fit", *data, "model=rrblup", "trait=yield", f"out={run}"]) == 0
    predict = ["gp", "predict", f"run={run}", f"genotypes={tmp_path / 'geno.csv'}"]
    _truncate(run / "model.safetensors")
    assert main(predict) == 2
    assert "model.safetensors: cannot load these weights" in capsys.readouterr().err
    (run / "markers.json").write_text(json.dumps({"coding": "012"}))
    assert main(predict) == 2
    assert "markers.json: not a readable marker list" in capsys.readouterr().err


@pytest.mark.parametrize("damage", ["config not YAML", "labels not JSON"])
def test_report_on_a_damaged_run_is_one_line(damage, tiny_binary_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(tiny_binary_run, run)
    fix, expected = DAMAGE[damage]
    fix(run)
    assert main(["report", f"run={run}"]) == 2
    err = capsys.readouterr().err
    assert expected in err and "Traceback" not in err


def test_evaluate_without_a_test_file_is_one_line(tiny_binary_run, capsys):
    assert main(["evaluate", f"run={tiny_binary_run}"]) == 2
    assert "data.test: missing" in capsys.readouterr().err


def test_a_checkpoint_that_is_not_one_is_one_line(tiny_task, tmp_path, capsys):
    from tests.conftest import TINY_MODEL

    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"not a checkpoint")
    args = ["finetune", f"data.train={tiny_task['train']}", f"data.val={tiny_task['dev']}", f"data.test={tiny_task['test']}",
            "tokenizer=kmer3", f"output_dir={tmp_path}", "run_name=x", f"ckpt={bad}", *TINY_MODEL]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "bad.ckpt is not a readable checkpoint" in err and "Traceback" not in err

"""Every experiment config runs end to end (one batch of train and validation)."""

from __future__ import annotations

from pathlib import Path

import pytest

from biolm.cli import main

REPO = Path(__file__).resolve().parents[1]
EXPERIMENTS = sorted(p.stem for p in (REPO / "configs" / "experiment").glob("*.yaml"))


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_experiment_smoke_runs(name, tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    code = main(["finetune", f"experiment={name}", "debug=fast_dev_run", f"output_dir={tmp_path}", "run_name=smoke"])
    assert code == 0
    assert (tmp_path / "smoke" / "test_metrics.json").exists()


SMALL_MODELS = sorted(p.stem for p in (REPO / "configs" / "model").glob("*.yaml") if "tiny" in p.stem or p.stem == "cnn")


@pytest.mark.parametrize("model", SMALL_MODELS)
def test_every_small_model_finetunes_from_the_cli(model, tiny_task, tmp_path):
    code = main(
        [
            "finetune",
            f"model={model}",
            "tokenizer=char",
            f"data.train={tiny_task['train']}",
            f"data.val={tiny_task['dev']}",
            f"data.test={tiny_task['test']}",
            "debug=fast_dev_run",
            f"output_dir={tmp_path}",
            "run_name=m",
        ]
    )
    assert code == 0
    assert (tmp_path / "m" / "model.safetensors").exists()

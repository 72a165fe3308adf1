"""Every experiment config runs end to end (one batch of train and validation)."""

from __future__ import annotations

from pathlib import Path

import pytest

from biolm.cli import main
from tests.checkpoints import write_tiny_dnabert2

REPO = Path(__file__).resolve().parents[1]
EXPERIMENTS = sorted(p.stem for p in (REPO / "configs" / "experiment").glob("*.yaml"))


def _command(name: str) -> str:
    """Experiments that choose an objective are pretraining runs; the others fine-tune."""
    text = (REPO / "configs" / "experiment" / f"{name}.yaml").read_text()
    return "pretrain" if "override /objective" in text else "finetune"


def _checkpoint(name: str, tmp_path: Path) -> list[str]:
    """Experiments on a public checkpoint (their tokenizer is read from it) run on a tiny DNABERT-2 folder in its real layout."""
    text = (REPO / "configs" / "experiment" / f"{name}.yaml").read_text()
    if "override /tokenizer: pretrained" not in text:
        return []
    return [f"model.pretrained={write_tiny_dnabert2(tmp_path / 'checkpoint')}"]


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_experiment_smoke_runs(name, tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    command = _command(name)
    code = main([command, f"experiment={name}", "debug=fast_dev_run", f"output_dir={tmp_path}", "run_name=smoke", *_checkpoint(name, tmp_path)])
    assert code == 0
    result = "test_metrics.json" if command == "finetune" else "pretrain_metrics.json"
    assert (tmp_path / "smoke" / result).exists()


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

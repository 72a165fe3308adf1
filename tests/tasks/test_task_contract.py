"""Every task config (configs/task/*.yaml) trains one step and predicts with a tiny model, on the
example data its objective writes: a new task is tested here without editing this file."""

from __future__ import annotations

from pathlib import Path

import pytest

from biolm import api
from biolm.cli import compose
from biolm.data.io import read_records
from biolm.tasks.objectives import objective_class

TASKS = sorted(p.stem for p in (Path(__file__).resolve().parents[2] / "configs" / "task").glob("*.yaml"))


@pytest.mark.parametrize("task", TASKS)
def test_every_task_config_trains_and_predicts(task, tmp_path):
    objective_cls = objective_class(compose("finetune", [f"task={task}"]).task)
    data = objective_cls.example_data(tmp_path)
    cfg = compose(
        "finetune",
        [f"task={task}", *(f"data.{k}={v}" for k, v in data.items()), "tokenizer=char", "model=cnn_dilated", "model.trunk.hidden_size=16",
         "model.trunk.num_layers=1", "trainer.max_epochs=1", "+trainer.limit_train_batches=1", "trainer.accelerator=cpu",
         "progress_bar=false", "data.batch_size=8", f"output_dir={tmp_path / 'runs'}", "run_name=r"],
    )
    run_dir = api.fit(cfg)
    assert (run_dir / "test_metrics.json").exists() and (run_dir / "report.md").exists()
    run = api.load_run(run_dir)
    assert type(run.objective) is objective_cls
    frame = api.predict_records(run, read_records(data["test"], field_name="input", label_column=None))
    assert len(frame) > 0 and "id" in frame.columns

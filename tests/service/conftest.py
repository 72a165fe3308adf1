"""A tiny trained run shared by the service tests (kmer3 BERT, 2 epochs on 60 bp GUE rows: seconds)."""

from __future__ import annotations

import pytest

from biolm import api
from biolm.cli import compose


@pytest.fixture(scope="session")
def served_run(tiny_task, tiny_model_overrides, tmp_path_factory):
    out = tmp_path_factory.mktemp("service_runs")
    cfg = compose(
        "finetune",
        [
            f"data.train={tiny_task['train']}",
            f"data.val={tiny_task['dev']}",
            f"data.test={tiny_task['test']}",
            "tokenizer=kmer3",
            "model=bert_tiny",
            "task=binary",
            f"output_dir={out}",
            "run_name=served",
            *tiny_model_overrides,
        ],
    )
    return api.finetune(cfg)


@pytest.fixture(scope="session")
def loaded_run(served_run):
    return api.load_run(served_run)

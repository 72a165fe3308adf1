"""Run folders written before the redesign (labels.json without `objective`, a tokenizer saved
with `kind`, config keys `data.window.size` / `task.type` without `_target_`, no `recipe`) load
and predict exactly as the same run in today's layout."""

from __future__ import annotations

import json
import shutil

import pandas as pd

from biolm import api
from biolm.data.io import read_records


def _to_old_layout(run):
    labels = json.loads((run / "labels.json").read_text())
    labels.pop("objective", None)
    (run / "labels.json").write_text(json.dumps(labels))
    tok_path = run / "tokenizer" / "biolm_tokenizer.json"
    tok = json.loads(tok_path.read_text())
    target = tok.pop("_target_")
    tok["kind"] = {"CharTokenizer": "char", "KmerTokenizer": "kmer", "BpeTokenizer": "bpe"}[target.rsplit(".", 1)[1]]
    tok_path.write_text(json.dumps(tok))
    text = (run / "config.yaml").read_text()
    text = text.replace("  _target_: biolm.tasks.objectives.BinaryClassification\n", "")
    text = text.replace("recipe:\n  _target_: biolm.finetuning.SequenceRecipe\n", "")
    (run / "config.yaml").write_text(text)


def test_a_run_in_the_previous_layout_predicts_the_same(tiny_binary_run, tiny_task, tmp_path):
    old = tmp_path / "old"
    shutil.copytree(tiny_binary_run, old)
    _to_old_layout(old)
    assert "objective" not in (old / "labels.json").read_text() and "kind" in (old / "tokenizer" / "biolm_tokenizer.json").read_text()
    assert "biolm.tasks.objectives" not in (old / "config.yaml").read_text() and "recipe" not in (old / "config.yaml").read_text()
    records = read_records(str(tiny_task["test"]), field_name="input")
    now = api.predict_records(api.load_run(tiny_binary_run), records)
    before = api.predict_records(api.load_run(old), records)
    pd.testing.assert_frame_equal(now, before)
    assert api.evaluate(old, {"test": str(tiny_task["test"])}) == api.evaluate(tiny_binary_run, {"test": str(tiny_task["test"])})

"""`biolm benchmark`: a tiny suite (2 CSV tasks x cnn, bert_tiny x 2 seeds) trained once, tabulated, then reused."""

from __future__ import annotations

import csv
import json

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf, open_dict

import biolm.benchmark as benchmark
from biolm.benchmark_report import published_rows, summarize, write_report
from biolm.cli import main
from biolm.composition import compose
from biolm.errors import BiolmError

MODEL_OVERRIDES = {
    "cnn": ["model.trunk.channels=16"],
    "bert_tiny": ["tokenizer=kmer3", "model.trunk.hidden_size=32", "model.trunk.num_layers=1", "model.trunk.num_heads=2",
                  "model.trunk.intermediate_size=64"],
}


def _write_csv(path, rows) -> str:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["sequence", "label"])
        writer.writerows(rows)
    return str(path)


def _read(path) -> list[list[str]]:
    with open(path, newline="") as handle:
        return list(csv.reader(handle))[1:]


def _config(output, suite: dict, models=("cnn", "bert_tiny"), seeds=(0, 1), finetune=()):
    cfg = compose("benchmark", [f"output={output}", f"models=[{','.join(models)}]", f"seeds=[{','.join(map(str, seeds))}]"])
    with open_dict(cfg):
        cfg.suite = OmegaConf.create(suite)
        cfg.model_overrides = {name: MODEL_OVERRIDES[name] for name in models}
        cfg.finetune = ["trainer.accelerator=cpu", "data.batch_size=32", *finetune]
    return cfg


@pytest.fixture(scope="module")
def tiny_suite(tiny_task, tmp_path_factory):
    """Two user-CSV tasks (a: the shared tiny task; b: its complements) and a published-numbers CSV."""
    root = tmp_path_factory.mktemp("suite")
    complement = str.maketrans("ACGT", "TGCA")
    b = {split: _write_csv(root / f"b_{split}.csv", [(seq.translate(complement), label) for seq, label in _read(tiny_task[split])])
         for split in ("train", "dev", "test")}
    reference = root / "published.csv"
    reference.write_text("task,model,mcc\ntask_a_ref,PubNet,0.5\ntask_a_ref,OtherNet,0.6\nelsewhere,PubNet,0.9\n")
    return {
        "name": "tiny",
        "reference": str(reference),
        "budget": ["trainer.max_epochs=1", "schedule.min_steps=0"],
        "tasks": {
            "a": {"data": {"train": str(tiny_task["train"]), "val": str(tiny_task["dev"]), "test": str(tiny_task["test"])},
                  "task": "binary", "metric": "mcc", "reference_task": "task_a_ref", "overrides": []},
            "b": {"data": {"train": b["train"], "val": b["dev"], "test": b["test"]}, "task": "binary", "metric": "auroc",
                  "reference_task": None, "overrides": ["optim.lr=2e-3"]},
        },
    }


@pytest.fixture(scope="module")
def first_run(tiny_suite, tmp_path_factory):
    output = tmp_path_factory.mktemp("bench") / "out"
    cfg = _config(output, tiny_suite)
    return cfg, benchmark.run_suite(cfg)


def test_suite_trains_every_run_and_writes_its_tables(first_run):
    cfg, suite = first_run
    results = pd.read_csv(suite.folder / "results.csv")
    assert len(results) == 8 and set(results["status"]) == {"trained"} and suite.counts == {"trained": 8, "reused": 0, "failed": 0}
    assert set(zip(results["task"], results["metric"], strict=True)) == {("a", "mcc"), ("b", "auroc")}
    for row in results.itertuples():
        metrics = json.loads((suite.folder / "runs" / f"{row.task}-{row.model}-seed{row.seed}" / "test_metrics.json").read_text())
        assert row.value == pytest.approx(metrics[row.metric]) and row.wall_s > 0
    run_cfg = OmegaConf.load(suite.folder / "runs" / "b-cnn-seed1" / "config.yaml")
    assert run_cfg.seed == 1 and run_cfg.optim.lr == 2e-3 and run_cfg.tokenizer._target_.endswith("CharTokenizer")  # cnn's tokenizer=char
    assert OmegaConf.load(suite.folder / "runs" / "a-bert_tiny-seed0" / "config.yaml").tokenizer.k == 3
    from safetensors.torch import load_file

    seed0, seed1 = (load_file(suite.folder / "runs" / f"a-cnn-seed{seed}" / "model.safetensors") for seed in (0, 1))
    assert seed0.keys() == seed1.keys() and any(not np.array_equal(seed0[k].numpy(), seed1[k].numpy()) for k in seed0)  # seeds differ
    assert OmegaConf.load(suite.folder / "runs" / "a-cnn-seed1" / "composed.yaml").seed == 1

    summary = pd.read_csv(suite.folder / "summary.csv")
    ours = summary[summary["source"] == "this suite"].set_index(["task", "model"])
    expected = results.groupby(["task", "model"])["value"].agg(["mean", "std", "count"])
    assert len(ours) == 4
    for key, row in expected.iterrows():
        assert ours.loc[key, "mean"] == pytest.approx(row["mean"], nan_ok=True)
        assert ours.loc[key, "sd"] == pytest.approx(row["std"], nan_ok=True)
        assert ours.loc[key, "n"] == row["count"] == 2
    published = summary[summary["source"] == "published"]
    assert published[["task", "model", "metric", "mean"]].values.tolist() == [["a", "PubNet", "mcc", 0.5], ["a", "OtherNet", "mcc", 0.6]]
    assert list(summary["task"]) == ["a"] * 4 + ["b"] * 2  # each task's published rows right after its own

    report = (suite.folder / "report.md").read_text()
    assert "| PubNet (published) | 0.500 |  |" in report and "8 trained, 0 reused, 0 failed" in report
    assert (suite.folder / "plots" / "summary.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_second_invocation_reuses_every_finished_run(first_run, monkeypatch):
    cfg, suite = first_run
    weights = sorted((suite.folder / "runs").glob("*/model.safetensors"))
    mtimes = [path.stat().st_mtime_ns for path in weights]
    monkeypatch.setattr(benchmark, "fit", lambda cfg: pytest.fail("a finished run was trained again"))
    again = benchmark.run_suite(cfg)
    assert again.counts == {"trained": 0, "reused": 8, "failed": 0}
    assert [path.stat().st_mtime_ns for path in weights] == mtimes and len(weights) == 8
    pd.testing.assert_series_equal(again.results["value"], suite.results["value"])
    assert (again.results["wall_s"] == suite.results["wall_s"]).all()  # the training times of the first invocation


def test_changed_settings_or_missing_metrics_train_again(first_run, tiny_suite, monkeypatch):
    cfg, suite = first_run
    changed = _config(cfg.output, tiny_suite, finetune=["optim.weight_decay=0.02"])
    assert {benchmark.stale_reason(run) for run in benchmark.plan_suite(changed)} == {"its composed.yaml differs in optim.weight_decay"}
    assert all(benchmark.is_finished(run) for run in benchmark.plan_suite(cfg))

    (suite.folder / "runs" / "a-cnn-seed1" / "test_metrics.json").unlink()  # as if interrupted before the end
    (suite.folder / "runs" / "b-cnn-seed0" / "composed.yaml").unlink()  # as if trained by biolm finetune (or killed before the sidecar)
    assert benchmark.stale_reason(benchmark.plan_suite(cfg)[4]) == "no composed.yaml (not trained by biolm benchmark)"
    trained = []
    real_fit = benchmark.fit
    monkeypatch.setattr(benchmark, "fit", lambda run_cfg: trained.append(run_cfg.run_name) or real_fit(run_cfg))
    again = benchmark.run_suite(cfg)
    assert trained == ["a-cnn-seed1", "b-cnn-seed0"] and again.counts == {"trained": 2, "reused": 6, "failed": 0}


def test_a_subset_of_tasks_keeps_the_other_rows(first_run, monkeypatch):
    cfg, _ = first_run
    monkeypatch.setattr(benchmark, "fit", lambda cfg: pytest.fail("a finished run was trained again"))
    subset = cfg.copy()
    subset.tasks = ["b"]
    result = benchmark.run_suite(subset)
    assert len(result.results) == 8 and list(dict.fromkeys(result.results["task"])) == ["a", "b"]
    assert set(result.summary["task"]) == {"a", "b"} and "| PubNet (published) | 0.500 |  |" in (result.folder / "report.md").read_text()
    assert len(pd.read_csv(result.folder / "results.csv")) == 8


def test_epochs_raised_by_the_step_budget_count_as_the_same_config(tiny_task, tmp_path, step_budget):
    suite = {"name": "budget", "reference": None, "budget": ["trainer.max_epochs=1", "schedule.min_steps=5"],
             "tasks": {"a": {"data": {"train": str(tiny_task["train"]), "val": str(tiny_task["dev"]), "test": str(tiny_task["test"])},
                             "metric": "mcc"}}}
    cfg = _config(tmp_path / "out", suite, models=("cnn",), seeds=(0,))
    benchmark.run_suite(cfg)
    saved = OmegaConf.load(tmp_path / "out" / "runs" / "a-cnn-seed0" / "config.yaml")
    assert saved.trainer.max_epochs == 2  # 96 sequences in batches of 32: 3 steps per epoch, 5 steps need 2 epochs
    assert benchmark.is_finished(benchmark.plan_suite(cfg)[0])
    longer = _config(tmp_path / "out", suite, models=("cnn",), seeds=(0,), finetune=["trainer.max_epochs=3"])
    assert not benchmark.is_finished(benchmark.plan_suite(longer)[0])


def test_a_failing_run_is_recorded_and_the_others_go_on(tiny_task, tmp_path):
    bad = _write_csv(tmp_path / "bad.csv", [("ACGTZZACGT", "1"), ("ACGTACGTAC", "0")] * 8)
    suite = {"name": "errors", "reference": None, "budget": ["trainer.max_epochs=1", "schedule.min_steps=0"],
             "tasks": {"bad": {"data": {"train": bad, "val": bad, "test": bad}, "metric": "mcc"},
                       "good": {"data": {"train": str(tiny_task["train"]), "val": str(tiny_task["dev"]), "test": str(tiny_task["test"])},
                                "metric": "mcc"}}}
    result = benchmark.run_suite(_config(tmp_path / "out", suite, models=("cnn",), seeds=(0,)))
    assert list(result.results["status"]) == ["failed", "trained"]
    assert "invalid character 'Z'" in result.results["error"][0] and np.isnan(result.results["value"][0])
    assert "## Failed runs" in (tmp_path / "out" / "report.md").read_text()
    stop = _config(tmp_path / "stop", suite, models=("cnn",), seeds=(0,))
    stop.on_error = "stop"
    with pytest.raises(BiolmError, match="bad-cnn-seed0: .*invalid character"):
        benchmark.run_suite(stop)


def test_unknown_model_fails_in_one_line_before_any_training(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(benchmark, "fit", lambda cfg: pytest.fail("trained before every config was composed"))
    code = main(["benchmark", "suite=gue_bundled", "models=[cnn,no_such_model]", "seeds=[0]", f"output={tmp_path / 'out'}"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "unknown model 'no_such_model'; available:" in err and "bert_tiny" in err
    assert not (tmp_path / "out").exists()


def test_bundled_suite_composes(capsys):
    assert main(["benchmark", "suite=gue_bundled", "--cfg", "job"]) == 0
    shown = OmegaConf.create(capsys.readouterr().out)
    assert list(shown.suite.tasks) == ["prom_300_tata", "prom_core_all", "tf_human_0"] and shown.output == "runs/bench_gue_bundled"
    runs = benchmark.plan_suite(compose("benchmark", ["suite=gue_bundled", "tasks=[prom_300_tata]", "models=[cnn]", "seeds=[0,1]"]))
    assert [run.folder.name for run in runs] == ["prom_300_tata-cnn-seed0", "prom_300_tata-cnn-seed1"]
    assert runs[1].cfg.seed == 1 and runs[1].cfg.data.train.endswith("gue/prom_300_tata/train.csv.gz")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["tasks=[nope]"], "tasks: 'nope' is not a task of suite gue_bundled"),
        (["seeds=[0,0]"], "seeds: "),
        (["finetune=[optim.lr]"], "finetune: "),
        (['+model_overrides.bert_tiny=["tokenizer=kmer3"]', "models=[cnn]"], "model_overrides.bert_tiny: not among models"),
        (["suite.tasks.prom_300_tata.metric=null"], "suite.tasks.prom_300_tata.metric: missing"),
        (["suite.tasks.prom_300_tata.reference_task=nope"], "no rows for 'nope'"),
        (["on_error=maybe"], "on_error=maybe"),
        (["optim.lrr=2e-3"], "suite task prom_300_tata, model cnn: unknown config key 'optim.lrr'"),
        (["model=cnn"], "finetune: model=cnn is set per run by the benchmark; pass models="),
    ],
)
def test_config_mistakes_are_named(overrides, message, monkeypatch):
    monkeypatch.setattr(benchmark, "fit", lambda cfg: pytest.fail("trained despite a config mistake"))
    with pytest.raises(BiolmError, match=message.replace("(", r"\(")):
        benchmark.run_suite(compose("benchmark", ["models=[cnn]", "seeds=[0]", "output=/nonexistent/out", *overrides]))


def test_an_interrupted_run_says_how_the_suite_goes_on(first_run, tmp_path, monkeypatch):
    from biolm.errors import RunInterrupted

    cfg, _ = first_run
    fresh = cfg.copy()
    fresh.output = str(tmp_path / "out")

    def interrupted(run_cfg):
        raise RunInterrupted(f"interrupted; resume with the same command and run_name={run_cfg.run_name} ckpt=last", 130)

    monkeypatch.setattr(benchmark, "fit", interrupted)
    with pytest.raises(RunInterrupted, match="a-cnn-seed0 interrupted; the same biolm benchmark command goes on") as caught:
        benchmark.run_suite(fresh)
    assert caught.value.exit_code == 130


def test_bare_finetune_overrides_join_the_finetune_list(capsys):
    cfg = compose("benchmark", ["suite=gue_bundled", "models=[cnn]", "seeds=[0]", "optim.lr=2e-3", 'finetune=["trainer.max_epochs=2"]',
                                "+trainer.limit_val_batches=2"])
    assert list(cfg.finetune) == ["trainer.max_epochs=2", "optim.lr=2e-3", "+trainer.limit_val_batches=2"]
    run = benchmark.plan_suite(cfg)[0]
    assert run.cfg.optim.lr == 2e-3 and run.cfg.trainer.max_epochs == 2 and run.cfg.trainer.limit_val_batches == 2
    assert main(["benchmark", "suite=gue_bundled", "models=[cnn]", "optim.lr=2e-3", "--cfg", "job"]) == 0
    assert list(OmegaConf.create(capsys.readouterr().out).finetune) == ["optim.lr=2e-3"]


def test_a_typo_in_a_bare_override_fails_in_one_line_before_training(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(benchmark, "fit", lambda cfg: pytest.fail("trained despite a typo"))
    code = main(["benchmark", "suite=gue_bundled", "models=[cnn]", "seeds=[0]", "optim.lrr=2e-3", f"output={tmp_path / 'out'}"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "unknown config key 'optim.lrr'" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("task,model,mcc\nt,A,0.5\nt,B,n/a\n", r"line 3, column mcc: 'n/a' is not a number"),
        ("task,model,mcc\nt,A,0.5\nt,B,0.6\nt,A,0.7\n", r"lists task 't', model 'A' more than once \(lines 2, 4\)"),
    ],
)
def test_bad_published_numbers_are_named(tmp_path, text, message):
    path = tmp_path / "published.csv"
    path.write_text(text)
    with pytest.raises(BiolmError, match=f"^suite.reference: {path} " + message):
        published_rows(str(path), {"a": ("t", "mcc")})


def test_published_numbers_with_an_empty_cell(tmp_path):
    path = tmp_path / "published.csv"
    path.write_text("task,model,mcc\nt,A,0.5\nt,B,\n")
    rows = published_rows(str(path), {"a": ("t", "mcc")})
    assert rows["mean"].iloc[0] == 0.5 and np.isnan(rows["mean"].iloc[1])


def test_an_undefined_metric_is_not_reported_as_failed(tmp_path):
    results = pd.DataFrame([["a", "m1", 0, "mcc", np.nan, 1.0, "trained", "", "r/a-m1-seed0"],
                            ["a", "m2", 0, "mcc", np.nan, 1.0, "failed", "bad data", "r/a-m2-seed0"],
                            ["a", "m3", 0, "mcc", 0.25, 1.0, "trained", "", "r/a-m3-seed0"]], columns=benchmark.RESULT_COLUMNS)
    report = write_report(tmp_path, "x", results, summarize(results), [], []).read_text()
    assert "| m1 | undefined |" in report and "| m2 | failed |" in report and "| m3 | 0.250 (n=1) |" in report


def test_per_run_keys_are_refused_in_every_override_list(tmp_path):
    """A model= in a task's overrides (or the budget, or model_overrides) would make every model of the table the same run."""
    suite = {"name": "s", "reference": None, "budget": [], "tasks": {"a": {"data": "gue_prom_300_tata", "task": "binary", "metric": "mcc",
                                                                           "reference_task": None, "overrides": ["model=hyena_tiny"]}}}
    with pytest.raises(BiolmError, match=r"^suite.tasks.a.overrides: model=hyena_tiny is set per run by the benchmark; pass models="):
        benchmark.plan_suite(_config(tmp_path, suite))


def test_earlier_rows_are_matched_by_run_not_by_how_output_was_spelled():
    earlier = pd.DataFrame([["a", "m", 0, "mcc", 0.5, 1.0, "trained", "", "runs/b/runs/a-m-seed0"],
                            ["b", "m", 0, "mcc", 0.7, 1.0, "trained", "", "runs/b/runs/b-m-seed0"]], columns=benchmark.RESULT_COLUMNS)
    now = [{"task": "a", "model": "m", "seed": 0, "metric": "mcc", "value": 0.6, "wall_s": 2.0, "status": "reused", "error": "",
            "run": "/abs/runs/b/runs/a-m-seed0"}]
    merged = benchmark._merge(earlier, now, {"a": "mcc", "b": "auroc"})
    assert merged["value"].tolist() == [0.6]  # a's row replaced, not doubled; b's mcc row dropped: b is now scored by auroc

"""``biolm sweep``: a tiny 3-trial study writes its outputs, its experiment/best.yaml trains the best trial again, the
study continues to n_trials, pruning stops trials, failed trials are recorded, and mistakes fail in one line."""

from __future__ import annotations

import fcntl
import json
import math
import os
import shlex
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf

from biolm.cli import main
from biolm.composition import compose, override
from biolm.errors import BiolmError

optuna = pytest.importorskip("optuna")  # the analysis extra

from biolm.sweep import PruneOnValidation, run_sweep  # noqa: E402
from biolm.sweep_space import finetune_config, parse_search_space, trial_config  # noqa: E402

# The demo's search space, narrowed to tiny widths (num_heads 2 divides both) so a trial takes a second or two.
TINY_SPACE = ["search_space=demo", "search_space.model.trunk.hidden_size.choices=[16,32]", "search_space.model.trunk.intermediate_size.choices=[32,64]"]


def _sweep_args(tiny_task: dict, tiny_model_overrides: list[str], output: Path, n_trials: int) -> list[str]:
    data = [f"data.train={tiny_task['train']}", f"data.val={tiny_task['dev']}", f"data.test={tiny_task['test']}"]
    return [*data, "tokenizer=kmer3", "task=binary", "task.monitor=auroc", *tiny_model_overrides, *TINY_SPACE, f"output={output}", f"n_trials={n_trials}"]


@pytest.fixture(scope="module")
def sweep(tiny_task, tiny_model_overrides, tmp_path_factory) -> Path:
    output = tmp_path_factory.mktemp("sweeps") / "tiny_sweep"
    assert main(["sweep", *_sweep_args(tiny_task, tiny_model_overrides, output, 3)]) == 0
    return output


def test_a_sweep_writes_trials_plots_report_and_best(sweep):
    trials = pd.read_csv(sweep / "trials.csv")
    assert list(trials.number) == [0, 1, 2]
    assert list(trials.columns[:7]) == ["number", "state", "value", "wall_s", "validations", "run", "error"]
    assert {"optim.lr", "model.trunk.hidden_size", "model.trunk.intermediate_size", "model.head.dropout"} <= set(trials.columns)
    assert set(trials.state) == {"COMPLETE"}  # MedianPruner prunes from the 4th trial on (n_startup_trials: 3)
    for row in trials.itertuples():
        metrics = json.loads((Path(row.run) / "test_metrics.json").read_text())
        assert row.value == pytest.approx(metrics["best_val"]) and row.validations == 2
        assert Path(row.run) == sweep / "trials" / f"trial_{row.number}"
        assert OmegaConf.load(Path(row.run) / "config.yaml").optim.lr == pytest.approx(trials.loc[row.Index, "optim.lr"])
    for name in ("history.png", "importances.png", "report.md", "experiment/best.yaml", "study.db"):
        assert (sweep / name).stat().st_size > 0, name
    report = (sweep / "report.md").read_text()
    assert "## Best trial" in report and "importances.png" in report and "## Failed trials" not in report
    assert not list((sweep / "trials").glob(".*"))


def test_best_yaml_composes_and_trains_the_best_trial_again(sweep, tmp_path):
    trials = pd.read_csv(sweep / "trials.csv")
    best = trials.loc[trials.value.idxmax()]
    header = (sweep / "experiment" / "best.yaml").read_text().splitlines()
    assert header[0] == "# @package _global_"
    command = next(line for line in header if line.startswith("# Train it again: ")).removeprefix("# Train it again: ")
    assert command in (sweep / "report.md").read_text()
    args = shlex.split(command)
    assert args == ["biolm", "finetune", f"hydra.searchpath=[file://{sweep.resolve()}]", "experiment=best"]
    composed = OmegaConf.to_container(compose("finetune", args[2:]), resolve=True)
    trial = OmegaConf.to_container(OmegaConf.load(Path(best.run) / "config.yaml"), resolve=True)
    for key in ("run_name", "output_dir"):
        composed.pop(key), trial.pop(key)
    assert composed == trial
    assert composed["optim"]["lr"] == best["optim.lr"] and composed["model"]["trunk"]["hidden_size"] == best["model.trunk.hidden_size"]
    assert main(["finetune", *args[2:], f"output_dir={tmp_path}"]) == 0
    again = json.loads(next(tmp_path.glob("*/test_metrics.json")).read_text())
    assert again["best_val"] == pytest.approx(best.value, abs=1e-5)


def test_the_same_command_continues_the_study_to_n_trials(sweep, tiny_task, tiny_model_overrides):
    args = _sweep_args(tiny_task, tiny_model_overrides, sweep, 4)
    result = run_sweep(compose("sweep", args))
    assert list(result.trials.number) == [0, 1, 2, 3]
    assert len(pd.read_csv(sweep / "trials.csv")) == 4
    assert len(run_sweep(compose("sweep", args)).trials) == 4  # nothing left to run
    with pytest.raises(BiolmError, match=r"other settings .*finetune\.optim\.weight_decay"):
        run_sweep(compose("sweep", [*args, "optim.weight_decay=0.5"]))


def test_pruned_trials_leave_no_run_folder(tiny_task, tiny_model_overrides, tmp_path):
    # a threshold no MCC reaches: every trial is pruned at its first validation
    always = ["pruner._target_=optuna.pruners.ThresholdPruner", "~pruner.n_startup_trials", "~pruner.n_warmup_steps", "+pruner.lower=2.0"]
    result = run_sweep(compose("sweep", [*_sweep_args(tiny_task, tiny_model_overrides, tmp_path, 2), *always]))
    assert list(result.trials.state) == ["PRUNED", "PRUNED"] and list(result.trials.validations) == [1, 1]
    assert result.best_trial is None and not (tmp_path / "experiment" / "best.yaml").exists()
    assert not (tmp_path / "trials").exists() or not list((tmp_path / "trials").iterdir())
    assert "importances skipped: 0 complete trial(s)" in (tmp_path / "report.md").read_text()


def _fake_trainer(value: float):
    # every validation in epoch 0, as with trainer.val_check_interval < 1: the callback counts the steps itself
    return SimpleNamespace(callback_metrics={"val/mcc": torch.tensor(value)}, sanity_checking=False, current_epoch=0)


def test_the_pruning_callback_prunes_below_the_median():
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1))
    dist = {"x": optuna.distributions.FloatDistribution(0, 1)}
    for value in (0.6, 0.8):
        study.add_trial(optuna.trial.create_trial(params={"x": 0.5}, distributions=dist, value=value,
                                                  intermediate_values={0: value, 1: value, 2: value}))
    good, bad = PruneOnValidation(study.ask(), "val/mcc"), PruneOnValidation(study.ask(), "val/mcc")
    good.on_validation_end(_fake_trainer(0.75), None)
    bad.on_validation_end(_fake_trainer(0.5), None)  # warm-up step: reported, never pruned
    bad.on_validation_end(_fake_trainer(math.nan), None)  # undefined: step 1, not reported
    with pytest.raises(optuna.TrialPruned, match=r"pruned after validation 2: val/mcc 0\.5000"):
        bad.on_validation_end(_fake_trainer(0.5), None)
    assert study.trials[bad.trial.number].intermediate_values == {0: 0.5, 2: 0.5}


@pytest.mark.parametrize(
    ("space", "message"),
    [
        ({"optim": {"lr": {"type": "uniform", "low": 0.1, "high": 1}}}, "search_space.optim.lr.type: 'uniform' is not a search type"),
        ({"optim": {"lr": {"type": "float", "low": 0.1, "high": 0.01}}}, "search_space.optim.lr: low 0.1 > high 0.01"),
        ({"optim": {"lr": {"type": "float", "low": 0.0, "high": 0.1, "log": True}}}, "search_space.optim.lr: log: true needs low > 0"),
        ({"model": {"trunk": {"num_layers": {"type": "int", "low": 1.5, "high": 3}}}}, "search_space.model.trunk.num_layers.low: 1.5"),
        ({"seed": {"type": "categorical", "choices": []}}, "search_space.seed.choices: []"),
        ({"seed": {"type": "categorical", "choices": [1], "low": 0}}, "search_space.seed: unknown field 'low'"),
        ({"optim": {"lr": 0.1}}, "search_space.optim.lr: 0.1 is not a spec"),
        ({}, "search_space: no key to search"),
    ],
)
def test_a_bad_search_space_fails_naming_the_key(space, message):
    with pytest.raises(BiolmError) as error:
        parse_search_space(space)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_bad_search_space_and_unknown_keys_on_the_command_line(tmp_path, capsys):
    assert main(["sweep", f"output={tmp_path}", "search_space.optim.lr.high=1e-6"]) == 2
    assert capsys.readouterr().err.strip() == "biolm sweep: error: search_space.optim.lr: low 0.0001 > high 1e-06"
    assert main(["sweep", f"output={tmp_path}", "+search_space.optim.momentum={type:float,low:0,high:1}"]) == 2
    assert "search_space.optim.momentum: no such key in the finetune config" in capsys.readouterr().err
    assert main(["sweep", "experiment=demo_prom300"]) == 2
    assert "output: missing" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_overrides_are_exact_hydra_values():
    from hydra.core.override_parser.overrides_parser import OverridesParser

    values = [0.0007263541203968384, 1e-05, 64, True, None, "cnn", "a b", "1e-3", "it's"]
    parsed = OverridesParser.create().parse_overrides([override("k", v) for v in values])
    assert [p.value() for p in parsed] == values


def test_an_interrupted_or_killed_trial_is_dropped_and_the_study_continues(tmp_path, monkeypatch):
    import biolm.training
    from biolm.errors import RunInterrupted

    def interrupted(cfg, callbacks=()):
        (Path(cfg.output_dir) / f".{cfg.run_name}.incomplete").mkdir(parents=True)
        raise RunInterrupted("training stopped by SIGINT at epoch 1, step 12; the last checkpoint ...", 130)

    def trained(cfg, callbacks=()):
        run = Path(cfg.output_dir) / cfg.run_name
        run.mkdir(parents=True)
        (run / "test_metrics.json").write_text(json.dumps({"best_val": cfg.optim.lr, "mcc": 0.5}))
        return run

    args = [f"output={tmp_path}", "n_trials=2", "task.monitor=loss"]
    monkeypatch.setattr(biolm.training, "fit", interrupted)
    with pytest.raises(RunInterrupted, match=r"^sweep: trial 0 stopped by SIGINT at epoch 1, step 12; its partial run was dropped") as error:
        run_sweep(compose("sweep", args))
    assert error.value.exit_code == 130 and not list((tmp_path / "trials").iterdir())
    killed = optuna.load_study(study_name="sweep", storage=f"sqlite:///{tmp_path / 'study.db'}").ask()  # as if the process died in trial 1
    (tmp_path / "trials" / f".trial_{killed.number}.incomplete").mkdir()
    monkeypatch.setattr(biolm.training, "fit", trained)
    result = run_sweep(compose("sweep", args))
    assert list(result.trials.state) == ["FAIL", "FAIL", "COMPLETE", "COMPLETE"]
    assert sorted(p.name for p in (tmp_path / "trials").iterdir()) == ["trial_2", "trial_3"]
    assert result.best_value == min(result.trials["optim.lr"][2:]) and result.direction == "minimize"


def test_the_demo_sweep_trains_what_biolm_finetune_composes():
    sweep = compose("sweep", ["experiment=demo_prom300", "search_space=demo", "n_trials=20", "output=runs/sweep_demo", "trainer.max_epochs=4"])
    assert [p.key for p in parse_search_space(sweep.search_space)][:2] == ["optim.lr", "model.trunk.hidden_size"]
    finetune = compose("finetune", ["experiment=demo_prom300", "trainer.max_epochs=4", "optim.lr=0.002", "run_name=trial_0", "output_dir=x", "progress_bar=false"])
    assert trial_config(finetune_config(sweep), {"optim.lr": 0.002}, "trial_0", "x") == finetune


def _fake_fit(failures: dict):
    """A fit that publishes ``best_val = lr`` at once, or fails as ``failures[lr]`` says (an exception, or None: no best_val)."""

    def fit(cfg, callbacks=()):
        staging = Path(cfg.output_dir) / f".{cfg.run_name}.incomplete"
        staging.mkdir(parents=True)
        lr = cfg.optim.lr
        if isinstance(failures.get(lr), BaseException):
            raise failures[lr]
        (staging / "test_metrics.json").write_text(json.dumps({"best_val": None if lr in failures else lr, "mcc": 0.5}))
        run = Path(cfg.output_dir) / cfg.run_name
        staging.rename(run)
        return run

    return fit


BRUTE_FORCE = ["sampler._target_=optuna.samplers.BruteForceSampler", "~sampler.n_startup_trials", "+search_space.optim.lr={type:categorical,choices:[0.1,0.5,0.7,0.9]}"]


def _only_lr(tmp_path, *extra: str):
    cfg = compose("sweep", [f"output={tmp_path}", "n_trials=4", *BRUTE_FORCE, *extra])
    cfg.search_space = {"optim": {"lr": {"type": "categorical", "choices": [0.1, 0.5, 0.7, 0.9]}}}
    return cfg


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")  # BruteForceSampler
def test_failed_trials_are_recorded_and_the_sweep_goes_on(tmp_path, monkeypatch, caplog):
    import biolm.training

    failures = {0.5: BiolmError("data.train: x.csv line 3: invalid character 'Z'"), 0.7: None, 0.9: torch.cuda.OutOfMemoryError("CUDA out of memory.")}
    monkeypatch.setattr(biolm.training, "fit", _fake_fit(failures))
    result = run_sweep(_only_lr(tmp_path))
    states = dict(zip(result.trials["optim.lr"], result.trials.state, strict=True))
    errors = dict(zip(result.trials["optim.lr"], result.trials.error.fillna(""), strict=True))
    assert states == {0.1: "COMPLETE", 0.5: "FAIL", 0.7: "FAIL", 0.9: "FAIL"}
    assert "invalid character 'Z'" in errors[0.5] and errors[0.7].startswith("monitor never finite") and errors[0.9].startswith("out of GPU memory")
    assert [p.name for p in (tmp_path / "trials").iterdir()] == [f"trial_{int(result.trials.number[result.trials['optim.lr'] == 0.1].iloc[0])}"]
    failed_lines = [r.message for r in caplog.records if "failed" in r.message and r.levelname == "ERROR"]
    assert len(failed_lines) == 3 and all("\n" not in line for line in failed_lines)
    report = (tmp_path / "report.md").read_text()
    assert "## Failed trials" in report and "3 trial(s) failed" in report and "monitor never finite" in report
    assert result.best_value == 0.1 and (tmp_path / "experiment" / "best.yaml").is_file()


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")  # BruteForceSampler
def test_on_error_stop_ends_the_sweep_after_writing_its_outputs(tmp_path, monkeypatch):
    import biolm.training

    monkeypatch.setattr(biolm.training, "fit", _fake_fit({lr: BiolmError("data.train: bad file") for lr in (0.1, 0.5, 0.7, 0.9)}))
    with pytest.raises(BiolmError, match=r"^trial 0 \(optim\.lr=0\.\d\): data\.train: bad file$"):
        run_sweep(_only_lr(tmp_path, "on_error=stop"))
    trials = pd.read_csv(tmp_path / "trials.csv")
    assert list(trials.state) == ["FAIL"] and trials.error[0] == "data.train: bad file"
    assert not list((tmp_path / "trials").iterdir())  # the staging folder was dropped


def test_a_direction_against_the_monitor_is_refused(tmp_path, capsys):
    with pytest.raises(BiolmError, match=r"^direction=minimize: the objective is the best validation mcc, picked as its maximum"):
        run_sweep(compose("sweep", [f"output={tmp_path}", "direction=minimize"]))
    assert main(["sweep", f"output={tmp_path}", "task.monitor=loss", "direction=maximize"]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert not list(tmp_path.iterdir())


def test_a_second_sweep_on_the_same_output_is_refused(tmp_path, monkeypatch):
    import biolm.training

    monkeypatch.setattr(biolm.training, "fit", lambda cfg, callbacks=(): pytest.fail("trained beside a running sweep"))
    fd = os.open(tmp_path / ".lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a running sweep holds it
    try:
        with pytest.raises(BiolmError, match=r"^output: .* is in use by another biolm sweep"):
            run_sweep(compose("sweep", [f"output={tmp_path}"]))
    finally:
        os.close(fd)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".lock"]


def test_a_sweep_whose_every_trial_failed_exits_in_one_line(tmp_path, monkeypatch, capsys):
    import biolm.training

    def missing(cfg, callbacks=()):
        raise BiolmError("data.train: file not found: x.csv")

    monkeypatch.setattr(biolm.training, "fit", missing)
    assert main(["sweep", f"output={tmp_path}", "n_trials=1"]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]  # after the log lines (the trial's failure among them)
    assert last.startswith("biolm sweep: error: no trial completed, 1 failed") and last.endswith("trial 0: data.train: file not found: x.csv")


def test_model_on_the_sweep_command_line_brings_its_recommended_settings():
    from biolm.composition import compose

    cfg = compose("sweep", ["model=cnn", "output=/tmp/unused"])
    assert cfg.tokenizer._target_.endswith("CharTokenizer") and cfg.optim.lr == 1.0e-3  # as biolm finetune model=cnn

"""Benchmark suites: every model x task x seed of a suite fine-tuned, tabulated and plotted (``biolm benchmark``).

In: the composed ``benchmark`` config (``configs/benchmark.yaml``): a suite (``configs/suite/<name>.yaml``: tasks,
each a data config or your own CSV files plus the metric to report, a training budget, published numbers), the
models, the seeds. Each run is composed exactly as ``biolm finetune`` composes it (`biolm.composition.compose`,
with the model's recommended settings) and trained by `biolm.training.fit` into ``<output>/runs/<task>-<model>-seed<seed>``.

Out, in ``<output>/``: ``results.csv`` (a row per run: task, model, seed, metric, value, wall_s, status, error,
run), ``summary.csv`` (mean, sample sd and n per task x model, the published numbers as rows of source
``published``), ``report.md`` and ``plots/summary.png`` (`biolm.benchmark_report`). Every file is written atomically.
Runs of earlier invocations into the same output that this one does not plan keep their rows.

Every run's config is composed before any training, so a config mistake (an unknown model, a bad override, a
missing data file) stops the command before it trains anything. A trained run gets ``composed.yaml`` beside its
files (its composed config); a finished run whose ``composed.yaml`` equals the config composed now is reused, not
trained again; any other is trained afresh (``overwrite=true``).
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from biolm.atomic import atomic_path
from biolm.benchmark_report import RESULT_COLUMNS, published_rows, status_counts, summarize, write_report
from biolm.composition import compose, override
from biolm.data.io import write_table
from biolm.errors import BiolmError, RunInterrupted
from biolm.training import fit

__all__ = ["SuiteResults", "SuiteRun", "is_finished", "plan_suite", "run_suite", "stale_reason"]

log = logging.getLogger(__name__)

COMPOSED_FILE = "composed.yaml"
TASK_KEYS = ("data", "task", "metric", "reference_task", "overrides")
# Keys of a run's config that name where and how it is written, not what it trains.
BOOKKEEPING_KEYS = ("run_name", "output_dir", "overwrite", "ckpt", "progress_bar")
# Finetune keys the benchmark sets for each run, with what to pass instead.
PER_RUN_KEYS = {"model": "pass models=[...]", "seed": "pass seeds=[...]", "run_name": "runs are named <task>-<model>-seed<seed>",
                "output_dir": "pass output=<suite folder>", "overwrite": "pass retrain=true to train finished runs again"}
DATA_FILE_KEYS = ("train", "val", "test", "labels_file", "train_bed", "val_bed", "test_bed")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.]*")


@dataclass(frozen=True)
class SuiteRun:
    """One model x task x seed of a suite, composed and not yet trained.

    Attributes:
        task, model, seed: what the run is.
        metric: the ``test_metrics.json`` key it reports.
        folder: its run folder, ``<output>/runs/<task>-<model>-seed<seed>``.
        overrides: the ``biolm finetune`` overrides that compose ``cfg``.
        cfg: the composed ``finetune`` config.
    """

    task: str
    model: str
    seed: int
    metric: str
    folder: Path
    overrides: tuple[str, ...]
    cfg: DictConfig


@dataclass(frozen=True)
class SuiteResults:
    """What `run_suite` returns: the tables it wrote to ``folder``.

    Attributes:
        results: a row per run (`RESULT_COLUMNS`; ``value`` NaN for a failed run or an undefined metric).
        summary: mean, sd and n per task x model, then the published rows (`SUMMARY_COLUMNS`).
        folder: the suite's output folder.
    """

    results: pd.DataFrame
    summary: pd.DataFrame
    folder: Path

    @property
    def counts(self) -> dict[str, int]:
        """Runs per status: ``trained``, ``reused``, ``failed``."""
        return status_counts(self.results)


def override_list(node, field: str) -> list[str]:
    """A config's list of ``biolm finetune`` overrides (``key=value`` strings), checked.

    Raises:
        BiolmError: ``node`` is not a list of ``key=value`` strings (the message names ``field``).
    """
    items = OmegaConf.to_container(node, resolve=True) if isinstance(node, ListConfig | DictConfig) else node
    if items is None:
        return []
    if not isinstance(items, list) or not all(isinstance(item, str) and "=" in item for item in items):
        raise BiolmError(f"{field}: {items!r}; accepted: a list of finetune overrides, e.g. ['trainer.max_epochs=3','optim.lr=1e-3']")
    return list(items)


def _merged(*groups: list[str]) -> list[str]:
    """Overrides in order, a later one replacing an earlier one of the same key."""
    by_key: dict[str, str] = {}
    for item in (item for group in groups for item in group):
        by_key[item.split("=", 1)[0].lstrip("+~")] = item
    return list(by_key.values())


def _names(node, field: str) -> list[str]:
    values = [node] if isinstance(node, str) else list(node or [])
    if not values:
        raise BiolmError(f"{field}: empty; list one or more, e.g. {field}=[a,b]")
    for value in values:
        if not isinstance(value, str) or not _NAME.fullmatch(value):
            raise BiolmError(f"{field}: {value!r} is not a name (accepted: letters, digits, '_' and '.')")
    if len(set(values)) != len(values):
        raise BiolmError(f"{field}: {values} lists a name twice")
    return values


def _seeds(node) -> list[int]:
    values = [node] if isinstance(node, int) else list(node or [])
    if not values or not all(isinstance(v, int) and not isinstance(v, bool) for v in values) or len(set(values)) != len(values):
        raise BiolmError(f"seeds: {values}: accepted: a list of distinct integers, e.g. seeds=[0,1,2]")
    return values


def _task_overrides(name: str, task: Mapping) -> list[str]:
    """The data, objective and per-task settings of a suite task as finetune overrides (data files checked here)."""
    where = f"suite.tasks.{name}"
    unknown = sorted(set(task) - set(TASK_KEYS))
    if unknown:
        raise BiolmError(f"{where}: unknown key {unknown[0]!r}; accepted: {', '.join(TASK_KEYS)}")
    data = task.get("data")
    if isinstance(data, str) and data:
        overrides = [f"data={data}"]
    elif isinstance(data, Mapping) and data.get("train"):
        for key in DATA_FILE_KEYS:
            if data.get(key) and not Path(str(data[key])).exists():
                raise BiolmError(f"{where}.data.{key}: file not found: {data[key]}")
        overrides = ["data=csv", *(override(f"data.{key}", value) for key, value in data.items())]
    else:
        raise BiolmError(f"{where}.data: missing; a configs/data/ name (e.g. gue_prom_300_tata) or your files: {{train: ..., val: ..., test: ...}}")
    if not task.get("metric"):
        raise BiolmError(f"{where}.metric: missing; the test_metrics.json key to report (mcc, auroc, accuracy, r2, ...)")
    if task.get("task"):
        overrides.append(f"task={task['task']}")
    return overrides + override_list(task.get("overrides"), f"{where}.overrides")


def _selected_tasks(cfg: DictConfig, suite: dict) -> dict[str, dict]:
    tasks = suite.get("tasks") or {}
    if not isinstance(tasks, dict) or not tasks:
        raise BiolmError("suite.tasks: empty; a suite lists its tasks as <name>: {data: ..., metric: ...}")
    if cfg.get("tasks") is None:
        return tasks
    chosen = _names(cfg.tasks, "tasks")
    missing = [name for name in chosen if name not in tasks]
    if missing:
        raise BiolmError(f"tasks: {missing[0]!r} is not a task of suite {suite.get('name')}; its tasks: {', '.join(tasks)}")
    return {name: tasks[name] for name in chosen}


def plan_suite(cfg: DictConfig) -> list[SuiteRun]:
    """Compose the ``finetune`` config of every task x model x seed of a ``benchmark`` config, training nothing.

    Raises:
        BiolmError: a config mistake (an unknown model, task or key, a bad override, a missing data file), naming it.
    """
    suite = OmegaConf.to_container(cfg.suite, resolve=True)
    tasks = _selected_tasks(cfg, suite)
    for name in tasks:
        _names(name, "suite.tasks")
    models, seeds = _names(cfg.models, "models"), _seeds(cfg.seeds)
    model_settings = {str(name): override_list(items, f"model_overrides.{name}") for name, items in (cfg.get("model_overrides") or {}).items()}
    stray = [name for name in model_settings if name not in models]
    if stray:
        raise BiolmError(f"model_overrides.{stray[0]}: not among models={models}")
    budget, extra = override_list(suite.get("budget"), "suite.budget"), override_list(cfg.get("finetune"), "finetune")
    settings = {"finetune": extra, "suite.budget": budget, **{f"model_overrides.{m}": items for m, items in model_settings.items()}}
    settings.update({f"suite.tasks.{t}.overrides": override_list(tasks[t].get("overrides"), f"suite.tasks.{t}.overrides") for t in tasks})
    for field, items in settings.items():  # a model= or seed= here would make every "model" of the table the same run
        for item in items:
            key = item.split("=", 1)[0].lstrip("+~")
            if key in PER_RUN_KEYS:
                raise BiolmError(f"{field}: {item} is set per run by the benchmark; {PER_RUN_KEYS[key]}")
    runs_dir = Path(str(cfg.output)) / "runs"
    runs = []
    for task_name, task in tasks.items():
        task_overrides = _task_overrides(task_name, task)
        for model in models:
            composed = None
            for seed in seeds:
                run_name = f"{task_name}-{model}-seed{seed}"
                overrides = _merged(
                    [f"model={model}", f"seed={seed}"], task_overrides[:1], budget, task_overrides[1:], model_settings.get(model, []), extra,
                    [f"run_name={run_name}", override("output_dir", str(runs_dir)), "overwrite=true", override("progress_bar", bool(cfg.progress_bar))],
                )
                if composed is None:
                    try:
                        composed = compose("finetune", overrides)
                    except BiolmError as err:
                        raise BiolmError(f"suite task {task_name}, model {model}: {err}") from None
                # the seeds differ in two plain values: composing once per task x model gives the same configs, faster
                run_cfg = composed.copy()
                run_cfg.seed, run_cfg.run_name = seed, run_name
                runs.append(SuiteRun(task_name, model, seed, str(task["metric"]), runs_dir / run_name, tuple(overrides), run_cfg))
    return runs


def _flat(node: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(node, dict):
        return {prefix.rstrip("."): node}
    out: dict[str, Any] = {}
    for key, value in node.items():
        out.update(_flat(value, f"{prefix}{key}."))
    return out


def is_finished(run: SuiteRun) -> bool:
    """Whether ``run.folder`` holds this run finished (see `stale_reason`)."""
    return stale_reason(run) is None


def stale_reason(run: SuiteRun) -> str | None:
    """Why ``run.folder`` does not hold this run finished, or None when it does.

    Finished: ``test_metrics.json`` is written and ``composed.yaml`` (the composed config, written beside the run
    once it trained) equals the run's composed config now, bookkeeping keys aside (`BOOKKEEPING_KEYS`). The run's
    own ``config.yaml`` is not compared: the fine-tune rewrites parts of it by design (an imported checkpoint's
    architecture, ``init_from``'s tokenizer, epochs raised by ``schedule.min_steps``).
    """
    metrics_file, composed_file = run.folder / "test_metrics.json", run.folder / COMPOSED_FILE
    if not metrics_file.is_file():
        return "no finished run"
    if not composed_file.is_file():
        return f"no {COMPOSED_FILE} (not trained by biolm benchmark)"
    try:
        saved = OmegaConf.to_container(OmegaConf.load(composed_file), resolve=True)
    except (OSError, ValueError, OmegaConfBaseException):
        return f"its {COMPOSED_FILE} is unreadable"
    wanted, saved = _flat(_comparable(run.cfg)), _flat({k: v for k, v in (saved or {}).items() if k not in BOOKKEEPING_KEYS})
    differences = sorted(key for key in set(wanted) | set(saved) if wanted.get(key, _ABSENT) != saved.get(key, _ABSENT))
    return f"its {COMPOSED_FILE} differs in {', '.join(differences)}" if differences else None


def _comparable(cfg: DictConfig) -> dict:
    settings = OmegaConf.to_container(cfg, resolve=True)
    return {key: value for key, value in settings.items() if key not in BOOKKEEPING_KEYS}


def _write_composed(run: SuiteRun) -> None:
    """``<run>/composed.yaml``: what `stale_reason` compares the next invocation's composed config with."""
    with atomic_path(run.folder / COMPOSED_FILE) as tmp:
        tmp.write_text(OmegaConf.to_yaml(run.cfg, resolve=True))


_ABSENT = object()


def _metric_value(run: SuiteRun) -> float:
    path = run.folder / "test_metrics.json"
    metrics = json.loads(path.read_text())
    if run.metric not in metrics:
        names = ", ".join(k for k, v in metrics.items() if v is None or isinstance(v, float))
        raise BiolmError(f"suite.tasks.{run.task}.metric: {run.metric!r} is not in {path}; it has: {names}")
    value = metrics[run.metric]
    return math.nan if value is None else float(value)


def _train(run: SuiteRun, on_error: str) -> tuple[float, str | None]:
    """Train one run: ``(wall_s, None)``, or ``(wall_s, error message)`` for a user error with ``on_error=continue``."""
    start = time.perf_counter()
    try:
        fit(run.cfg.copy())  # fit writes the budget's epochs into its config; the composed one stays as composed
    except RunInterrupted as err:
        # the run's own hint (ckpt=last) is not how a suite goes on: the same command trains this run afresh
        raise RunInterrupted(f"{run.folder.name} interrupted; the same biolm benchmark command goes on (finished runs are reused, "
                             "this one is trained afresh)", err.exit_code) from err
    except BiolmError as err:
        if on_error == "stop":
            raise BiolmError(f"{run.folder.name}: {err}") from err
        message = " ".join(line.strip() for line in str(err).splitlines() if line.strip())
        log.error("%s failed: %s", run.folder.name, message)
        return time.perf_counter() - start, message
    _write_composed(run)
    return time.perf_counter() - start, None


def _earlier_results(folder: Path) -> pd.DataFrame:
    """The suite folder's earlier ``results.csv`` (empty if none or unreadable)."""
    try:
        earlier = pd.read_csv(folder / "results.csv", keep_default_na=False, na_values=[""])
    except (OSError, ValueError, pd.errors.ParserError):
        return pd.DataFrame(columns=RESULT_COLUMNS)
    if list(earlier.columns) != RESULT_COLUMNS:
        return pd.DataFrame(columns=RESULT_COLUMNS)
    return earlier.assign(error=earlier["error"].fillna("").astype(str), run=earlier["run"].astype(str))


def _merge(earlier: pd.DataFrame, rows: list[dict], metrics: dict[str, str] | None = None) -> pd.DataFrame:
    """The earlier rows, each replaced by this invocation's row of the same run (its folder name: task, model, seed),
    then this invocation's new rows. An earlier row of a task whose metric is now another (``metrics``) is dropped,
    so one mean never mixes two metrics."""
    now = {Path(row["run"]).name: row for row in rows}
    kept = []
    for run, values in zip(earlier["run"], earlier[RESULT_COLUMNS].itertuples(index=False), strict=True):
        row = now.pop(Path(run).name, None) or dict(zip(RESULT_COLUMNS, values, strict=True))
        if metrics is None or metrics.get(row["task"], row["metric"]) == row["metric"]:
            kept.append(row)
    return pd.DataFrame([*kept, *now.values()], columns=RESULT_COLUMNS)


def run_suite(cfg: DictConfig) -> SuiteResults:
    """Train (or reuse) every run of a ``benchmark`` config and write its tables, report and plot.

    The tables cover every run folder of ``<output>/results.csv``: a run of an earlier invocation that this one does
    not plan (``tasks=`` a subset, other models or seeds) keeps its row.

    Args:
        cfg: the composed ``benchmark`` config (``compose("benchmark", [...])``).

    Returns:
        `SuiteResults`: ``results`` (a row per run), ``summary`` (mean/sd/n per task x model, then published rows)
        and the output folder; also written there as results.csv, summary.csv, report.md and plots/summary.png.

    Raises:
        BiolmError: a config mistake (before any training), a run's user error with ``on_error=stop``, or a
            task's metric missing from a finished run's ``test_metrics.json``.
        RunInterrupted: SIGINT/SIGTERM stopped a run (the finished runs are reused when the command is run again).
    """
    on_error = str(cfg.on_error)
    if on_error not in ("continue", "stop"):
        raise BiolmError(f"on_error={on_error}: accepted: continue (record the error and go on) or stop")
    runs = plan_suite(cfg)
    folder = Path(str(cfg.output))
    earlier = _earlier_results(folder)
    tasks = cfg.suite.get("tasks") or {}
    current = {run.task: run.metric for run in runs}
    metrics = {**dict(zip(earlier["task"], earlier["metric"], strict=True)), **current}
    wanted = {task: (tasks[task].get("reference_task") if task in tasks else None, metric) for task, metric in metrics.items()}
    published = published_rows(cfg.suite.get("reference"), wanted)  # before any training: a bad reference is a config mistake
    earlier_wall = {Path(run).name: wall for run, wall in zip(earlier["run"], earlier["wall_s"], strict=True)}
    rows: list[dict] = []
    for index, run in enumerate(runs, start=1):
        why = "retrain=true" if cfg.retrain else stale_reason(run)
        reuse = why is None
        log.info("benchmark run %d/%d %s: %s", index, len(runs), run.folder.name,
                 "finished earlier, reused" if reuse else f"training ({why}): biolm finetune " + " ".join(run.overrides))
        wall_s, error = (float(earlier_wall.get(run.folder.name, math.nan)), None) if reuse else _train(run, on_error)
        rows.append({"task": run.task, "model": run.model, "seed": run.seed, "metric": run.metric,
                     "value": math.nan if error else _metric_value(run), "wall_s": round(wall_s, 1),
                     "status": "reused" if reuse else "failed" if error else "trained", "error": error or "", "run": str(run.folder)})
        write_table(_merge(earlier, rows, current), str(folder / "results.csv"))  # progress survives an interruption
    results = _merge(earlier, rows, current)
    summary = summarize(results, published)
    write_table(summary, str(folder / "summary.csv"))
    write_report(folder, str(cfg.suite.get("name") or "suite"), results, summary, override_list(cfg.suite.get("budget"), "suite.budget"),
                 override_list(cfg.get("finetune"), "finetune"))
    return SuiteResults(results, summary, folder)

"""Benchmark suites: every model x task x seed of a suite fine-tuned, tabulated and plotted (``biolm benchmark``).

In: the composed ``benchmark`` config (``configs/benchmark.yaml``): a suite (``configs/suite/<name>.yaml``: tasks,
each a data config or your own CSV files plus the metric to report, a training budget, published numbers), the
models, the seeds. Each run is composed exactly as ``biolm finetune`` composes it (`biolm.composition.compose`,
with the model's recommended settings) and trained by `biolm.training.fit` into ``<output>/runs/<task>-<model>-seed<seed>``.

Out, in ``<output>/``: ``results.csv`` (a row per run: task, model, seed, metric, value, wall_s, status, error,
run), ``summary.csv`` (mean, sample sd and n per task x model, the published numbers as rows of source
``published``), ``report.md`` and ``plots/summary.png``. Every file is written atomically.

Every run's config is composed before any training, so a config mistake (an unknown model, a bad override, a
missing data file) stops the command before it trains anything. A finished run whose saved ``config.yaml``
matches the composed config is reused, not trained again; any other is trained afresh (``overwrite=true``).
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

import numpy as np
import pandas as pd
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from biolm.composition import compose, override
from biolm.data.io import write_table
from biolm.errors import BiolmError, RunInterrupted
from biolm.training import fit

log = logging.getLogger(__name__)

RESULT_COLUMNS = ["task", "model", "seed", "metric", "value", "wall_s", "status", "error", "run"]
SUMMARY_COLUMNS = ["task", "model", "source", "metric", "mean", "sd", "n"]
TASK_KEYS = ("data", "task", "metric", "reference_task", "overrides")
# Keys of a run's config that name where and how it is written, not what it trains.
BOOKKEEPING_KEYS = ("run_name", "output_dir", "overwrite", "ckpt", "progress_bar")
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


def status_counts(results: pd.DataFrame) -> dict[str, int]:
    """Runs per status of a results table: ``trained``, ``reused``, ``failed``."""
    return {status: int((results["status"] == status).sum()) for status in ("trained", "reused", "failed")}


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


def _differences(run: SuiteRun, saved: dict) -> set[str]:
    """Keys of the run's composed config whose value the saved ``config.yaml`` does not have (bookkeeping keys aside).

    What the fine-tune rewrites by design is compared through its record: an imported checkpoint
    (``model.pretrained`` -> ``model.pretrained_from``, its architecture in ``model.trunk``) and ``init_from``
    (whose tokenizer and trunk replace the configured ones).
    """
    wanted = OmegaConf.to_container(run.cfg, resolve=True)
    for key in BOOKKEEPING_KEYS:
        wanted.pop(key, None)
    skipped: tuple[str, ...] = ()
    if wanted.get("model", {}).get("pretrained"):
        wanted["model"]["pretrained_from"] = wanted["model"].pop("pretrained")
        skipped += ("model.trunk.", "model.pretrained")
    if wanted.get("init_from"):
        skipped += ("tokenizer.", "model.trunk.", "model.head.")
    flat_saved = _flat(saved)
    return {key for key, value in _flat(wanted).items() if not key.startswith(skipped) and flat_saved.get(key, object()) != value}


def _epochs_planned(run: SuiteRun, saved: dict, n_train: int) -> bool:
    """Whether the fine-tune's step budget turns the run's ``trainer.max_epochs`` into the saved one."""
    from biolm.finetuning import plan_schedule

    planned = run.cfg.copy()
    quiet = logging.getLogger("biolm.finetuning")
    level = quiet.level
    quiet.setLevel(logging.WARNING)  # the plan is logged when the run trains, not when it is checked
    try:
        plan_schedule(planned, n_train)
    except BiolmError:
        return False
    finally:
        quiet.setLevel(level)
    return planned.trainer.max_epochs == saved.get("trainer", {}).get("max_epochs")


def is_finished(run: SuiteRun) -> bool:
    """Whether ``run.folder`` holds this run finished: ``test_metrics.json`` written and the saved
    ``config.yaml`` equal to the composed config (see `stale_reason`)."""
    return stale_reason(run) is None


def stale_reason(run: SuiteRun) -> str | None:
    """Why ``run.folder`` does not hold this run finished, or None when it does.

    Finished: ``test_metrics.json`` is written and the saved ``config.yaml`` equals the composed config, bookkeeping
    keys aside. A ``trainer.max_epochs`` raised by ``schedule.min_steps`` counts as equal when the same budget
    raises the composed one to it, planned on the run's ``n_train`` sequences (with ``data.window_bp`` the plan
    counted windows: such a run is then trained again).
    """
    metrics_file, config_file = run.folder / "test_metrics.json", run.folder / "config.yaml"
    if not (metrics_file.is_file() and config_file.is_file()):
        return "no finished run"
    try:
        saved = OmegaConf.to_container(OmegaConf.load(config_file), resolve=True)
        n_train = int(json.loads(metrics_file.read_text()).get("n_train") or 0)
    except (OSError, ValueError, OmegaConfBaseException):
        return "its config.yaml or test_metrics.json is unreadable"
    differences = _differences(run, saved)
    if differences == {"trainer.max_epochs"} and n_train > 0 and _epochs_planned(run, saved, n_train):
        return None
    return f"its config.yaml differs in {', '.join(sorted(differences))}" if differences else None


def _metric_value(run: SuiteRun) -> float:
    path = run.folder / "test_metrics.json"
    metrics = json.loads(path.read_text())
    if run.metric not in metrics:
        names = ", ".join(k for k, v in metrics.items() if v is None or isinstance(v, float))
        raise BiolmError(f"suite.tasks.{run.task}.metric: {run.metric!r} is not in {path}; it has: {names}")
    value = metrics[run.metric]
    return math.nan if value is None else float(value)


def _earlier_wall_times(folder: Path) -> dict[str, float]:
    """Training times from the suite's earlier ``results.csv`` (run folder -> wall_s), for the runs reused now."""
    try:
        earlier = pd.read_csv(folder / "results.csv")
        return {str(run): float(wall) for run, wall in zip(earlier["run"], earlier["wall_s"], strict=True)}
    except (OSError, ValueError, KeyError, pd.errors.ParserError):
        return {}


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
    return time.perf_counter() - start, None


def run_suite(cfg: DictConfig) -> SuiteResults:
    """Train (or reuse) every run of a ``benchmark`` config and write its tables, report and plot.

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
    reference = published_rows(cfg, runs)
    folder = Path(str(cfg.output))
    earlier = _earlier_wall_times(folder)
    rows: list[dict] = []
    for index, run in enumerate(runs, start=1):
        why = "retrain=true" if cfg.retrain else stale_reason(run)
        reuse = why is None
        log.info("benchmark run %d/%d %s: %s", index, len(runs), run.folder.name,
                 "finished earlier, reused" if reuse else f"training ({why}): biolm finetune " + " ".join(run.overrides))
        wall_s, error = (earlier.get(str(run.folder), math.nan), None) if reuse else _train(run, on_error)
        rows.append({"task": run.task, "model": run.model, "seed": run.seed, "metric": run.metric,
                     "value": math.nan if error else _metric_value(run), "wall_s": round(wall_s, 1),
                     "status": "reused" if reuse else "failed" if error else "trained", "error": error or "", "run": str(run.folder)})
        write_table(pd.DataFrame(rows, columns=RESULT_COLUMNS), str(folder / "results.csv"))  # progress survives an interruption
    results = pd.DataFrame(rows, columns=RESULT_COLUMNS)
    summary = summarize(results, reference)
    write_table(summary, str(folder / "summary.csv"))
    write_report(folder, cfg, results, summary)
    return SuiteResults(results, summary, folder)


def published_rows(cfg: DictConfig, runs: list[SuiteRun]) -> pd.DataFrame:
    """The suite's published numbers of its tasks (`SUMMARY_COLUMNS`, source ``published``; sd and n empty).

    Raises:
        BiolmError: ``suite.reference`` is missing, lacks a task's metric column, or has no row of a task's ``reference_task``.
    """
    reference = cfg.suite.get("reference")
    wanted = {run.task: (cfg.suite.tasks[run.task].get("reference_task"), run.metric) for run in runs}
    if not reference or not any(name for name, _ in wanted.values()):
        return pd.DataFrame(columns=SUMMARY_COLUMNS)
    try:
        table = pd.read_csv(str(reference))
    except (OSError, ValueError, pd.errors.ParserError) as err:
        raise BiolmError(f"suite.reference: cannot read {reference} ({str(err).splitlines()[0]})") from None
    rows = []
    for task, (reference_task, metric) in wanted.items():
        if not reference_task:
            continue
        if not {"task", "model", metric} <= set(table.columns):
            raise BiolmError(f"suite.reference: {reference} needs columns task, model and {metric} (it has: {', '.join(table.columns)})")
        chosen = table[table["task"] == reference_task]
        if chosen.empty:
            raise BiolmError(f"suite.tasks.{task}.reference_task: no rows for {reference_task!r} in {reference}")
        rows += [{"task": task, "model": str(model), "source": "published", "metric": metric, "mean": float(value), "sd": math.nan, "n": math.nan}
                 for model, value in zip(chosen["model"], chosen[metric], strict=True)]
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def summarize(results: pd.DataFrame, published: pd.DataFrame | None = None) -> pd.DataFrame:
    """Mean, sample standard deviation (ddof 1; NaN for one run) and n of the finished runs' values per
    task x model, in the suite's order, then the ``published`` rows (`SUMMARY_COLUMNS`)."""
    rows = []
    for (task, model), group in results.groupby(["task", "model"], sort=False):
        values = group["value"].dropna()
        rows.append({"task": task, "model": model, "source": "this suite", "metric": group["metric"].iloc[0],
                     "mean": values.mean() if len(values) else math.nan, "sd": values.std(ddof=1) if len(values) > 1 else math.nan,
                     "n": len(values)})
    ours = pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
    frame = ours if published is None or published.empty else pd.concat([ours, published], ignore_index=True)
    order = {task: i for i, task in enumerate(dict.fromkeys(ours["task"]))}
    frame = frame.assign(n=frame["n"].astype("Int64"), _order=frame["task"].map(order).fillna(len(order)))  # n: empty for published rows
    return frame.sort_values("_order", kind="stable").drop(columns="_order").reset_index(drop=True)


def _cell(row) -> str:
    if row["source"] == "this suite" and not row["n"]:
        return "failed"
    if not finite(row["mean"]):
        return "undefined"
    if row["source"] == "published":
        return f"{row['mean']:.3f}"
    return f"{row['mean']:.3f} ± {row['sd']:.3f} (n={int(row['n'])})" if finite(row["sd"]) else f"{row['mean']:.3f} (n={int(row['n'])})"


def finite(value) -> bool:
    """Whether a table cell holds a number (not None or NaN)."""
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def plot_summary(summary: pd.DataFrame, path: Path, title: str) -> None:
    """Grouped bars per task (a bar per model: the mean, the sd as error bar) with the published numbers as markers; PNG."""
    from biolm.plots import figure, save_png

    ours, published = summary[summary["source"] == "this suite"], summary[summary["source"] == "published"]
    tasks, models = list(dict.fromkeys(summary["task"])), list(dict.fromkeys(ours["model"]))
    centers = np.arange(len(tasks), dtype=float)
    width = 0.8 / max(len(models), 1)
    fig, (ax,) = figure(max(5.5, 1.7 * len(tasks) + 3.0), 4.0)
    for j, model in enumerate(models):
        rows = ours[ours["model"] == model].set_index("task").reindex(tasks)
        ax.bar(centers - 0.4 + width * (j + 0.5), rows["mean"].to_numpy(float), width * 0.92, yerr=rows["sd"].fillna(0).to_numpy(float),
               capsize=3, label=model, error_kw={"elinewidth": 1})
    names = list(dict.fromkeys(published["model"]))
    offsets = np.linspace(-0.3, 0.3, len(names)) if len(names) > 1 else [0.0]
    for marker, offset, name in zip("DosP^vX*<>", offsets, names, strict=False):
        rows = published[published["model"] == name].set_index("task").reindex(tasks)
        ax.scatter(centers + offset, rows["mean"].to_numpy(float), marker=marker, s=28, color="black", facecolor="white", zorder=3,
                   label=f"{name} (published)")
    metrics = {task: ", ".join(dict.fromkeys(part["metric"])) for task, part in summary.groupby("task", sort=False)}
    ax.set_xticks(centers, [f"{task}\n({metrics[task]})" for task in tasks])
    ax.axhline(0, color="grey", linewidth=0.6)
    ax.set(ylabel="test metric (mean ± sd over seeds)", title=title)
    ax.grid(axis="y", alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    first = [labels.index(model) for model in models if model in labels]  # the suite's models, then the published ones
    order = first + [i for i in range(len(labels)) if i not in first]
    ax.legend([handles[i] for i in order], [labels[i] for i in order], fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    save_png(fig, path)


def write_report(folder: Path, cfg: DictConfig, results: pd.DataFrame, summary: pd.DataFrame) -> Path:
    """``report.md`` (a row per model, a column per task: mean ± sd (n), published rows below; failed runs listed) and
    ``plots/summary.png`` of a suite's results, written atomically; returns the report's path."""
    from biolm.data.io import atomic_path
    from biolm.plots import markdown_table

    name = str(cfg.suite.get("name") or "suite")
    plot_summary(summary, folder / "plots" / "summary.png", f"benchmark {name}")
    tasks = list(dict.fromkeys(summary["task"]))
    metric_of = {task: ", ".join(dict.fromkeys(part["metric"])) for task, part in summary.groupby("task", sort=False)}
    table_rows = []
    for (model, source), part in summary.groupby(["model", "source"], sort=False):
        cells = part.set_index("task")
        label = f"{model} (published)" if source == "published" else model
        table_rows.append((label, *(_cell(cells.loc[task]) if task in cells.index else "" for task in tasks)))
    counts = status_counts(results)
    budget, extra = override_list(cfg.suite.get("budget"), "suite.budget"), override_list(cfg.get("finetune"), "finetune")
    lines = [f"# Benchmark: {name}", "",
             f"{len(tasks)} tasks x {results['model'].nunique()} models x {results['seed'].nunique()} seeds = {len(results)} runs: "
             f"{counts['trained']} trained, {counts['reused']} reused, {counts['failed']} failed.", "",
             f"Budget (every run): `{' '.join(budget) or 'none'}`" + (f"; command line: `{' '.join(extra)}`" if extra else "") + ".",
             "Each cell: the test metric's mean ± sample sd over seeds (n finished runs); published rows as reported.", "",
             *markdown_table(table_rows, ("model", *(f"{task} ({metric_of[task]})" for task in tasks))), "",
             "![summary](plots/summary.png)", ""]
    failed = results[results["status"] == "failed"]
    if len(failed):
        lines += ["## Failed runs", "", *markdown_table([(Path(r).name, e.replace("|", "\\|")) for r, e in zip(failed["run"], failed["error"], strict=True)],
                                                ("run", "error"), numeric=False), ""]
    lines += ["Per run: results.csv (and each run folder's report.md); per task x model: summary.csv.", ""]
    with atomic_path(folder / "report.md") as tmp:
        tmp.write_text("\n".join(lines), encoding="utf-8")
    return folder / "report.md"

"""Tables, plot and report of a benchmark suite (`biolm.benchmark`).

In: the suite's results table (a row per run, `RESULT_COLUMNS`) and its published numbers (a CSV with columns
``task``, ``model`` and one per metric). Out: ``summary.csv`` (`summarize`: mean, sample sd and n per
task x model, then the published rows; `SUMMARY_COLUMNS`), ``report.md`` and ``plots/summary.png``
(`write_report`), each written atomically.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from biolm.atomic import atomic_path
from biolm.errors import BiolmError
from biolm.plots import figure, markdown_table, save_png

RESULT_COLUMNS = ["task", "model", "seed", "metric", "value", "wall_s", "status", "error", "run"]
SUMMARY_COLUMNS = ["task", "model", "source", "metric", "mean", "sd", "n"]


def status_counts(results: pd.DataFrame) -> dict[str, int]:
    """Runs per status of a results table: ``trained``, ``reused``, ``failed``."""
    return {status: int((results["status"] == status).sum()) for status in ("trained", "reused", "failed")}


def finite(value) -> bool:
    """Whether a table cell holds a number (not None or NaN)."""
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def published_rows(reference: str | None, wanted: dict[str, tuple[str | None, str]]) -> pd.DataFrame:
    """The published numbers of a suite's tasks (`SUMMARY_COLUMNS`, source ``published``; sd and n empty).

    Args:
        reference: the CSV of published numbers (columns ``task``, ``model``, one per metric), or None.
        wanted: suite task -> (its ``reference_task`` in the CSV or None, the metric column).

    Raises:
        BiolmError: the CSV is unreadable, lacks a task's metric column, has no row of a ``reference_task``,
            holds a value that is not a number (naming the file, line and value) or a (task, model) twice.
    """
    if not reference or not any(name for name, _ in wanted.values()):
        return pd.DataFrame(columns=SUMMARY_COLUMNS)
    try:
        table = pd.read_csv(str(reference), dtype=str, keep_default_na=False)
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
        twice = chosen[chosen.duplicated(["task", "model"], keep=False)]
        if len(twice):
            lines = ", ".join(str(i + 2) for i in twice.index)
            raise BiolmError(f"suite.reference: {reference} lists task {reference_task!r}, model {twice['model'].iloc[0]!r} more than once "
                             f"(lines {lines}); keep one row per task and model")
        values = pd.to_numeric(chosen[metric], errors="coerce")
        bad = values.isna() & (chosen[metric].str.strip() != "")
        if bad.any():
            line = int(bad.idxmax())
            raise BiolmError(f"suite.reference: {reference} line {line + 2}, column {metric}: {chosen[metric][line]!r} is not a number "
                             "(leave the cell empty for no published value)")
        rows += [{"task": task, "model": str(model), "source": "published", "metric": metric, "mean": float(value), "sd": math.nan, "n": math.nan}
                 for model, value in zip(chosen["model"], values, strict=True)]
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


def _cell(row, trained: bool) -> str:
    """A report cell; ``trained``: at least one of its runs trained (with no value, its metric is undefined, not failed)."""
    if row["source"] == "this suite" and not row["n"]:
        return "undefined" if trained else "failed"
    if not finite(row["mean"]):
        return "undefined"
    if row["source"] == "published":
        return f"{row['mean']:.3f}"
    return f"{row['mean']:.3f} ± {row['sd']:.3f} (n={int(row['n'])})" if finite(row["sd"]) else f"{row['mean']:.3f} (n={int(row['n'])})"


def plot_summary(summary: pd.DataFrame, path: Path, title: str) -> None:
    """Grouped bars per task (a bar per model: the mean, the sd as error bar) with the published numbers as markers; PNG."""
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


def write_report(folder: Path, name: str, results: pd.DataFrame, summary: pd.DataFrame, budget: list[str], extra: list[str]) -> Path:
    """``report.md`` (a row per model, a column per task: mean ± sd (n), published rows below; failed runs listed) and
    ``plots/summary.png`` of a suite's results, written atomically; returns the report's path.

    Args:
        folder: the suite's output folder.
        name: the suite's name.
        results: a row per run (`RESULT_COLUMNS`).
        summary: `summarize` of it.
        budget, extra: the suite's budget and the command line's finetune overrides, as shown in the report.
    """
    plot_summary(summary, folder / "plots" / "summary.png", f"benchmark {name}")
    tasks = list(dict.fromkeys(summary["task"]))
    metric_of = {task: ", ".join(dict.fromkeys(part["metric"])) for task, part in summary.groupby("task", sort=False)}
    finished = set(zip(*(results.loc[results["status"] != "failed", key] for key in ("task", "model")), strict=True))
    table_rows = []
    for (model, source), part in summary.groupby(["model", "source"], sort=False):
        cells = part.set_index("task")
        label = f"{model} (published)" if source == "published" else model
        table_rows.append((label, *(_cell(cells.loc[task], (task, model) in finished) if task in cells.index else "" for task in tasks)))
    counts = status_counts(results)
    lines = [f"# Benchmark: {name}", "",
             f"{len(tasks)} tasks x {results['model'].nunique()} models x {results['seed'].nunique()} seeds = {len(results)} runs: "
             f"{counts['trained']} trained, {counts['reused']} reused, {counts['failed']} failed.", "",
             f"Budget (every run): `{' '.join(budget) or 'none'}`" + (f"; command line: `{' '.join(extra)}`" if extra else "") + ".",
             "Each cell: the test metric's mean ± sample sd over seeds (n runs whose metric is defined; undefined: every run "
             "trained but the metric is undefined on its test set; failed: no run trained); published rows as reported.", "",
             *markdown_table(table_rows, ("model", *(f"{task} ({metric_of[task]})" for task in tasks))), "",
             "![summary](plots/summary.png)", ""]
    failed = results[results["status"] == "failed"]
    if len(failed):
        lines += ["## Failed runs", "", *markdown_table([(Path(r).name, e.replace("|", "\\|")) for r, e in zip(failed["run"], failed["error"], strict=True)],
                                                ("run", "error"), numeric=False), ""]
    lines += ["Per run: results.csv (and each run folder's report.md); per task x model: summary.csv. Runs of earlier invocations "
              "into this folder (other tasks, models or seeds) are kept in the tables.", ""]
    with atomic_path(folder / "report.md") as tmp:
        tmp.write_text("\n".join(lines), encoding="utf-8")
    return folder / "report.md"

"""The outputs of a ``biolm sweep`` study: trials table, plots, best experiment and report.

In: an Optuna study (its trials carry ``run``, ``error`` and ``test_metrics`` user attributes set by
`biolm.sweep`), the search space, the sweep's finetune config and its output folder. Out, in ``<output>/``
(each file written atomically):

- ``trials.csv``: a row per trial: number, state, value, wall_s, validations (values reported), run, error,
  then a column per searched key;
- ``history.png`` (value per trial, best so far), ``importances.png`` (from 2 complete trials on), ``report.md``;
- ``experiment/best.yaml``: the best trial's complete config as an experiment (``# @package _global_``):
  ``biolm finetune 'hydra.searchpath=[file://<output>]' experiment=best`` trains that trial again.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from omegaconf import DictConfig, OmegaConf

from biolm.atomic import atomic_path
from biolm.composition import config_file, override
from biolm.plots import figure, markdown_table, save_png
from biolm.sweep_space import SearchParam, config_groups, trial_config

TRIAL_COLUMNS = ["number", "state", "value", "wall_s", "validations", "run", "error"]
BEST_EXPERIMENT = "best"  # <output>/experiment/best.yaml, composed with experiment=best


@dataclass
class SweepResult:
    """What `biolm.sweep.run_sweep` found.

    Attributes:
        trials: one row per trial (`TRIAL_COLUMNS`, then a column per searched key).
        monitor: the validation metric optimised, e.g. ``val/mcc``.
        direction: ``maximize`` or ``minimize``.
        best_trial: the best complete trial's number (None: no trial completed).
        best_value: its best validation value.
        first_value: the value of the first complete trial (what the search improved on).
        best_overrides: the best trial's sampled values as ``key=value`` overrides.
        command: the shell command that trains the best trial again (empty when none completed).
        output: the sweep folder.
    """

    trials: pd.DataFrame
    monitor: str
    direction: str
    best_trial: int | None
    best_value: float | None
    first_value: float | None
    best_overrides: list[str]
    command: str
    output: Path


def trials_table(study, space: list[SearchParam]) -> pd.DataFrame:
    """One row per trial: `TRIAL_COLUMNS`, then a column per searched key."""
    rows = []
    for trial in study.trials:
        wall = (trial.datetime_complete - trial.datetime_start).total_seconds() if trial.datetime_complete and trial.datetime_start else None
        rows.append({"number": trial.number, "state": trial.state.name, "value": trial.value if trial.values else None,
                     "wall_s": None if wall is None else round(wall, 1), "validations": len(trial.intermediate_values),
                     "run": trial.user_attrs.get("run", ""), "error": trial.user_attrs.get("error", ""),
                     **{p.key: trial.params.get(p.key) for p in space}})
    return pd.DataFrame(rows, columns=[*TRIAL_COLUMNS, *(p.key for p in space)])


def best_command(output: Path) -> str:
    """The shell command that trains the experiment ``<output>/experiment/best.yaml``."""
    folder = f"file://{output.resolve()}"
    if not re.fullmatch(r"[\w:./-]+", folder):  # spaces, commas, brackets: quoted for Hydra's override grammar
        folder = "'" + folder.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return f"biolm finetune {shlex.quote(f'hydra.searchpath=[{folder}]')} experiment={BEST_EXPERIMENT}"


def write_outputs(study, space: list[SearchParam], base: DictConfig, output: Path, monitor: str) -> SweepResult:
    """Write ``trials.csv``, the plots, ``experiment/best.yaml`` and ``report.md`` of a study into ``output``."""
    import optuna

    table = trials_table(study, space)
    with atomic_path(output / "trials.csv") as tmp:
        table.to_csv(tmp, index=False)
    direction = "maximize" if study.direction == optuna.study.StudyDirection.MAXIMIZE else "minimize"
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    plot_history(table, monitor, direction, output / "history.png")
    importances, why_not = param_importances(study, complete)
    if importances:
        plot_importances(importances, output / "importances.png")
    best = study.best_trial if complete else None
    overrides, command = [], ""
    if best is not None:
        overrides = [override(p.key, best.params[p.key]) for p in space]
        best_cfg = trial_config(base, {p.key: best.params[p.key] for p in space}, f"{output.resolve().name}_best", base.output_dir,
                                bool(base.progress_bar))
        command = best_command(output)
        write_best_experiment(best_cfg, f"trial {best.number} of {output}: {monitor} {best.value:.4f}; sampled {' '.join(overrides)}",
                              command, output / "experiment" / f"{BEST_EXPERIMENT}.yaml")
    result = SweepResult(table, monitor, direction, best.number if best else None, best.value if best else None,
                         complete[0].value if complete else None, overrides, command, output)
    write_sweep_report(result, space, importances, why_not, best)
    return result


def param_importances(study, complete: list) -> tuple[dict[str, float], str]:
    """fANOVA importances of the searched keys (seeded; they sum to 1), or ``({}, why not)`` below 2 complete trials."""
    import optuna

    if len(complete) < 2:
        return {}, f"{len(complete)} complete trial(s); importances need at least 2"
    try:
        return optuna.importance.get_param_importances(study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0)), ""
    except (ValueError, RuntimeError, ZeroDivisionError) as err:
        return {}, f"not computable ({str(err).splitlines()[0]})"


def plot_history(table: pd.DataFrame, monitor: str, direction: str, path: Path) -> None:
    """Each complete trial's value and the best so far, by trial number."""
    from matplotlib.ticker import MaxNLocator

    fig, (ax,) = figure(6.0, 4.0)
    complete = table[table.state == "COMPLETE"].dropna(subset=["value"])
    ax.scatter(complete.number, complete.value, color="tab:blue", label="complete trial", zorder=3)
    best = complete.value.cummax() if direction == "maximize" else complete.value.cummin()
    ax.step(complete.number, best, where="post", color="tab:red", label="best so far")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("trial")
    ax.set_ylabel(f"best {monitor} of the trial")
    ax.legend(loc="best")
    save_png(fig, path)


def plot_importances(importances: dict[str, float], path: Path) -> None:
    """Horizontal bars of the searched keys' importances, the most important on top."""
    fig, (ax,) = figure(6.0, 0.8 + 0.4 * len(importances))
    keys = list(importances)[::-1]
    ax.barh(keys, [importances[k] for k in keys], color="tab:blue")
    ax.set_xlabel("importance (fANOVA; sums to 1)")
    save_png(fig, path)


def write_best_experiment(cfg: DictConfig, summary: str, command: str, path: Path) -> None:
    """``cfg`` (a complete finetune config) as an experiment file that ``experiment=<its name>`` composes back.

    The experiment empties every group of ``configs/finetune.yaml`` (``override /<group>: null``) and then sets every
    value, so it composes to ``cfg`` itself, not to the configs' current defaults.
    """
    groups = config_groups(OmegaConf.load(config_file("finetune")))
    header = ["# @package _global_", f"# The best trial of a biolm sweep: {summary}",
              f"# Train it again: {command}", "# (every group is emptied, then every value set: this is the whole config of the trial)"]
    defaults = OmegaConf.create({"defaults": [{f"override /{g}": None} for g in groups if g != "experiment"]})
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(header) + "\n" + OmegaConf.to_yaml(defaults) + OmegaConf.to_yaml(cfg, resolve=True))


def _shown(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def write_sweep_report(result: SweepResult, space: list[SearchParam], importances: dict[str, float], why_not: str, best) -> None:
    """``report.md``: counts, the search space, the best trial against the first, the top trials, failed trials, importances, plots."""
    table = result.trials
    counts = ", ".join(f"{n} {s.lower()}" for s, n in table.state.value_counts().items())
    lines = [f"# Sweep {result.output.resolve().name}", "", f"{len(table)} trials ({counts}); objective: {result.direction} the best {result.monitor}.",
             "", "## Search space", ""]
    lines += markdown_table([(f"`{p.key}`", p.type, p.describe()) for p in space], ("key", "type", "range"), numeric=False)
    lines += ["", "Each trial's whole config is in `trials/trial_<n>/config.yaml` (complete trials keep their run folder).", "", "## Best trial", ""]
    if best is None:
        lines.append("No trial completed.")
    else:
        gain = result.best_value - result.first_value
        lines += [f"Trial {best.number}: {result.monitor} {result.best_value:.4f} (first complete trial {result.first_value:.4f}; {gain:+.4f}),",
                  f"with `{' '.join(result.best_overrides)}`. Its config: `experiment/{BEST_EXPERIMENT}.yaml`; train it again: `{result.command}`.", ""]
        test = best.user_attrs.get("test_metrics") or {}
        if test:
            lines += markdown_table([(k, f"{v:.4f}") for k, v in test.items()], ("test metric", "value")) + [""]
        top = table[table.state == "COMPLETE"].sort_values("value", ascending=result.direction == "minimize").head(10)
        lines += ["### Top trials", ""]
        lines += markdown_table([(str(r["number"]), f"{r['value']:.4f}", f"{r['wall_s']:.0f}", *(_shown(r[p.key]) for p in space))
                                 for _, r in top.iterrows()], ("trial", "value", "wall_s", *(f"`{p.key}`" for p in space)))
    failed = table[table.state == "FAIL"]
    if len(failed):
        lines += ["", "## Failed trials", "", f"{len(failed)} trial(s) failed. They leave no run folder and are not counted as done: the same command runs "
                  "more trials, up to n_trials that completed or were pruned.", ""]
        lines += markdown_table([(str(r["number"]), " ".join(override(p.key, r[p.key]) for p in space if pd.notna(r[p.key])),
                                  (r["error"] or "(no error recorded: the sweep process ended during the trial)").replace("|", "\\|"))
                                 for _, r in failed.iterrows()], ("trial", "values", "error"), numeric=False)
    lines += ["", "## Plots", "", "![Optimisation history](history.png)", ""]
    if importances:
        lines += ["![Parameter importances](importances.png)", ""] + markdown_table([(f"`{k}`", f"{v:.3f}") for k, v in importances.items()], ("key", "importance"))
    else:
        lines.append(f"Parameter importances skipped: {why_not}.")
    with atomic_path(result.output / "report.md") as tmp:
        tmp.write_text("\n".join(lines) + "\n")

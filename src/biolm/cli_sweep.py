"""``biolm sweep``: hyper-parameter search over fine-tunes (`biolm.sweep.run_sweep`), registered on `biolm.cli`;
its config is ``configs/sweep.yaml`` with the search spaces under ``configs/search_space/``."""

from __future__ import annotations

from omegaconf import DictConfig

from biolm.cli import _console, command


@command
def cmd_sweep(cfg: DictConfig) -> None:
    from rich.markup import escape
    from rich.table import Table

    from biolm import api
    from biolm.errors import BiolmError
    from biolm.sweep_report import TRIAL_COLUMNS

    result = api.run_sweep(cfg)
    console = _console()
    complete = result.trials[result.trials.state == "COMPLETE"].sort_values("value", ascending=result.direction == "minimize")
    params = [c for c in result.trials.columns if c not in TRIAL_COLUMNS]
    counts = ", ".join(f"{n} {s.lower()}" for s, n in result.trials.state.value_counts().items())
    table = Table(title=f"top trials — {result.output} ({counts}; {result.direction} {result.monitor})")
    for column in ("trial", result.monitor, "validations", "wall_s", *params):
        table.add_column(column, justify="right", overflow="fold")
    for _, row in complete.head(10).iterrows():
        table.add_row(str(row["number"]), f"{row['value']:.4f}", str(row["validations"]), f"{row['wall_s']:.0f}",
                      *(f"{row[p]:.4g}" if isinstance(row[p], float) else str(row[p]) for p in params))
    console.print(table)
    if result.best_trial is None:
        failed = result.trials[result.trials.state == "FAIL"]
        if len(failed):
            first = failed.iloc[0]
            raise BiolmError(f"no trial completed, {len(failed)} failed (see {result.output / 'report.md'}); "
                             f"the first, trial {first['number']}: {first['error']}")
        console.print("no trial completed: no experiment/best.yaml")
        return
    console.print(f"best {result.monitor} {result.best_value:.4f} (trial {result.best_trial}) vs first trial {result.first_value:.4f} "
                  f"({result.best_value - result.first_value:+.4f}); report: {result.output / 'report.md'}")
    console.print(f"its values: {escape(' '.join(result.best_overrides))}", soft_wrap=True)
    console.print(f"train it again: {escape(result.command)}", soft_wrap=True)

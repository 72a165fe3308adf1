"""``biolm benchmark``: a suite's model x task x seed runs (`biolm.benchmark.run_suite`), registered on `biolm.cli`;
its config is ``configs/benchmark.yaml`` with the suites under ``configs/suite/``."""

from __future__ import annotations

import logging

from omegaconf import DictConfig

from biolm.cli import _console, command

log = logging.getLogger(__name__)


@command
def cmd_benchmark(cfg: DictConfig) -> None:
    from rich.table import Table

    from biolm import api
    from biolm.benchmark_report import finite
    from biolm.errors import BiolmError

    suite = api.run_suite(cfg)
    table = Table(title=f"benchmark {cfg.suite.name}: test metric, mean ± sd over seeds")
    for column in ("task", "model", "metric", "mean", "sd", "n"):
        table.add_column(column, justify="left" if column in ("task", "model", "metric") else "right")
    for row in suite.summary.itertuples(index=False):
        published = row.source == "published"
        table.add_row(row.task, f"{row.model} (published)" if published else row.model, row.metric,
                      f"{row.mean:.4f}" if finite(row.mean) else "", f"{row.sd:.4f}" if finite(row.sd) else "",
                      "" if published else str(int(row.n)), style="dim" if published else None)
    _console().print(table)
    counts = suite.counts
    log.info("%d runs: %d trained, %d reused, %d failed; %s written", len(suite.results), counts["trained"], counts["reused"],
             counts["failed"], suite.folder / "report.md")
    if counts["failed"]:
        failed = suite.results[suite.results["status"] == "failed"]
        first = failed.iloc[0]
        raise BiolmError(f"{counts['failed']} of {len(suite.results)} runs failed (listed in {suite.folder / 'results.csv'}); "
                         f"the first, {first['run']}: {first['error']}")

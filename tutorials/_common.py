"""What every tutorial script shares: its command line (``--fast``, ``--out``), its summary file and its checks.

    python tutorials/day1_plain_loop.py                 # the full run (a few minutes on 2 CPU cores)
    python tutorials/day1_plain_loop.py --fast          # a tiny budget: seconds; CI runs every tutorial this way

Each tutorial writes ``<out>/summary.json``: ``{"tutorial", "fast", "wall_s", "metrics": {...}, "date"}``, and
checks its own outputs with `check` (a failed check exits 1 with the reason), so that CI catches a tutorial
that runs but no longer does what its page says.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def arguments(description: str, default_out: str) -> argparse.Namespace:
    """``--fast`` and ``--out`` (default ``runs/tutorials/<default_out>``), parsed; also starts the clock."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--fast", action="store_true", help="a tiny budget (seconds), as CI runs it")
    parser.add_argument("--out", default=str(REPO / "runs" / "tutorials" / default_out), help="output folder")
    args = parser.parse_args()
    args.out = Path(args.out)
    args.out.mkdir(parents=True, exist_ok=True)
    args.started = time.perf_counter()
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    return args


def check(condition: bool, message: str) -> None:
    """Exit 1 with ``message`` unless ``condition`` holds (a tutorial's outputs are not what its page says)."""
    if not condition:
        print(f"check failed: {message}", file=sys.stderr)
        raise SystemExit(1)


def biolm(*argv: str) -> None:
    """Run one ``biolm`` command line, as the terminal would (``biolm("finetune", "model=cnn")``), printing it and its
    wall time; a failing command stops the tutorial."""
    from biolm.cli import main

    print(f"\n$ biolm {' '.join(argv)}", flush=True)
    started = time.perf_counter()
    code = main(list(argv))
    check(code == 0, f"`biolm {' '.join(argv)}` exited {code}")
    print(f"({time.perf_counter() - started:.0f} s)", flush=True)


def read_json(path: Path) -> dict:
    """A JSON file a command wrote (test_metrics.json, decision.json, summary.json, ...)."""
    return json.loads(Path(path).read_text())


def read_jsonl(path: Path) -> list[dict]:
    """A JSON-lines file a command wrote (one record per line)."""
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def write_summary(args: argparse.Namespace, tutorial: str, metrics: dict) -> Path:
    """Write ``<out>/summary.json`` and print the headline numbers."""
    summary = {
        "tutorial": tutorial,
        "fast": bool(args.fast),
        "wall_s": round(time.perf_counter() - args.started, 1),
        "date": date.today().isoformat(),
        "metrics": metrics,
    }
    path = args.out / "summary.json"
    path.write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    return path

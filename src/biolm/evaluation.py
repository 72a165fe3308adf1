"""Evaluation of trained runs: metrics of a prediction table (`compute_metrics`), of a run on a
labelled file (`evaluate`), and runs side by side with published numbers (`compare_runs`).

Every number comes through the one prediction path (`biolm.prediction`) and the run's objective
(`biolm.tasks.objectives`), so ``evaluate`` and the test metrics of ``finetune`` never disagree.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig, OmegaConf

from biolm.data.datasets import encode_labels
from biolm.data.io import read_records
from biolm.data.labels import LabelSpec
from biolm.errors import BiolmError
from biolm.prediction import predict_records
from biolm.runs import Run, load_run
from biolm.tasks.metrics import log_notes
from biolm.tasks.objectives import SequenceObjective, objective_for

log = logging.getLogger(__name__)


def compute_metrics(objective: SequenceObjective | LabelSpec, frame: pd.DataFrame, targets: np.ndarray, split: str = "test set") -> dict[str, float | None]:
    """Metrics of a prediction table against encoded targets (same metrics as validation).

    A metric undefined on these records (e.g. AUROC when they hold one class; see
    `biolm.tasks.metrics`) is None, written as ``null`` in JSON, with a warning logged that says
    why; macro averages leave out the classes where the metric is undefined. Objectives with a decision
    threshold (binary) add it, the confusion counts ``tp, fp, tn, fn`` and ``sensitivity`` / ``specificity``
    at it (`SequenceObjective.decision_metrics`).

    Args:
        objective: the run's objective (``run.objective``), or its label space.
    """
    if isinstance(objective, LabelSpec):
        objective = objective_for(objective)
    metrics = objective.metrics(split)
    for metric in metrics.values(copy_state=False):  # the frame holds every record: no sync, also not after DDP (the other ranks have exited)
        metric.sync_on_compute = metric._to_sync = False  # torchmetrics reads _to_sync at compute
    metrics.update(objective.values_from_frame(frame), objective.metric_targets(torch.from_numpy(np.asarray(targets))))
    values = {name: float(value) for name, value in metrics.compute().items()}
    log_notes(metrics)
    values = {name: None if math.isnan(value) else value for name, value in values.items()}
    return {**values, **objective.decision_metrics(frame, np.asarray(targets))}


def evaluate(run: Run | str | Path, data_cfg: DictConfig | dict, batch_size: int = 64) -> dict[str, float | int | None]:
    """Metrics of a trained run on a labelled file.

    Args:
        run: a loaded `Run` or a run folder.
        data_cfg: ``test`` (the file) plus optional overrides of the run's data settings
            (``sequence_column``, ``label_column``, ``labels_file``, ...).
        batch_size: sequences per forward pass.
    """
    if not isinstance(run, Run):
        run = load_run(run)
    given = OmegaConf.create(data_cfg)
    # only the keys the caller set override the run's data settings (null or ??? means "the run's own")
    overrides = {key: given[key] for key in given if not OmegaConf.is_missing(given, key) and given[key] is not None}
    if "test" in overrides:
        overrides.setdefault("test_bed", None)  # the run's own test BED does not describe another test file
    data = OmegaConf.merge(run.cfg.data, OmegaConf.create(overrides))
    if not overrides.get("test"):
        raise BiolmError("data.test: no file given; pass data.test=path/to/labelled.csv")
    if not run.objective.per_sequence:
        return run.objective.evaluate_file(run, data, batch_size)
    return evaluate_sequences(run, data, batch_size)


def evaluate_sequences(run: Run, data: DictConfig, batch_size: int = 64) -> dict[str, float | None]:
    """`evaluate` for objectives with one label per sequence (`SequenceObjective.evaluate_file`)."""
    records = read_records(
        data.test,
        field_name="data.test",
        sequence_column=data.sequence_column,
        label_column=data.label_column,
        id_column=data.get("id_column"),
        require_label=True,
        labels_file=data.get("labels_file"),
    )
    targets = encode_labels(run.labels, records)
    frame = predict_records(run, records, batch_size)
    metrics = compute_metrics(run.objective, frame, targets)
    metrics["n"] = len(records)
    return metrics


def compare_runs(runs: Sequence[str | Path], reference: str | None = None, reference_task: str | None = None) -> pd.DataFrame:
    """One row per run (its ``test_metrics.json``), plus published rows from ``reference``.

    Args:
        runs: run folders.
        reference: optional CSV with columns ``task,model,<metric>...``.
        reference_task: which task's rows of ``reference`` to show.
    """
    rows = []
    for run in runs:
        path = Path(run) / "test_metrics.json"
        if not path.exists():
            raise BiolmError(f"runs: {run} has no test_metrics.json (not a finished biolm run)")
        metrics = json.loads(path.read_text())
        # null (an undefined metric) becomes NaN; counts, sizes and the checkpoint's record are not metrics
        measured = {k: np.nan if v is None else v for k, v in metrics.items() if (v is None or isinstance(v, float)) and k not in ("monitor", "best_val", "best_epoch", "threshold")}
        rows.append({"model": Path(run).name, "source": "this run", **measured})
    if reference:
        if not Path(reference).exists():
            raise BiolmError(f"reference: file not found: {reference}")
        published = pd.read_csv(reference)
        if reference_task is not None:
            published = published[published["task"] == reference_task]
            if published.empty:
                raise BiolmError(f"reference_task: no rows for {reference_task!r} in {reference}")
        for record in published.drop(columns=["task"]).to_dict("records"):
            rows.append({"model": record.pop("model"), "source": "published", **record})
    return pd.DataFrame(rows)

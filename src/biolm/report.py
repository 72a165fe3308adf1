"""Plots and ``report.md`` of a fine-tuning run folder.

In: a run folder as `biolm.runs` describes it (``config.yaml``, ``labels.json``, ``metrics.csv``,
``test_metrics.json``, ``test_predictions.csv``, optionally ``checkpoint.json``).
Out, written atomically into that folder:

    plots/curves.png      train and validation loss per epoch, and the monitored validation metric
    plots/roc.png         ROC curves (binary: one; multilabel and multiclass: one per class, one-vs-rest)
    plots/pr.png          precision-recall curves (same curves as roc.png)
    plots/confusion.png   confusion matrix of the test predictions (binary, multiclass)
    plots/scatter.png     predicted vs observed values with Pearson r and y = x (regression)
    report.md             metrics table, config summary, data sizes and the plots above

Missing inputs (no ``metrics.csv``, no ``test_predictions.csv``) leave their plots out.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf
from sklearn.metrics import (
    auc,
    average_precision_score,
    confusion_matrix,
    precision_recall_curve,
    roc_curve,
)

from biolm.data.io import atomic_path
from biolm.data.labels import LabelSpec
from biolm.errors import BiolmError
from biolm.plots import figure, markdown_table, save_png
from biolm.prediction import window_setting
from biolm.runs import run_file
from biolm.tasks.decision import load_decision
from biolm.tasks.objectives import SequenceObjective, objective_for

log = logging.getLogger(__name__)

PLOT_TITLES = {
    "curves": "Training curves",
    "roc": "ROC curves (test)",
    "pr": "Precision-recall curves (test)",
    "confusion": "Confusion matrix (test)",
    "scatter": "Predicted vs observed (test)",
}
# Keys of test_metrics.json that describe the run rather than measure the test set.
NON_METRIC_KEYS = ("monitor", "best_val", "best_epoch", "trainable_params", "total_params", "threshold", "tp", "fp", "tn", "fn")


def run_title(run_dir: Path) -> str:
    """The run's name: its folder name, without the staging folder's ``.<name>.incomplete`` wrapping."""
    name = run_dir.resolve().name
    if name.startswith(".") and name.endswith(".incomplete"):
        name = name[1 : -len(".incomplete")]
    return name


def epoch_curves(metrics: pd.DataFrame) -> pd.DataFrame:
    """Per-epoch table of a Lightning CSVLogger log: mean train loss and the last ``val/*`` values."""
    metrics = metrics[metrics["epoch"].notna()]
    train_column = "train/loss_epoch" if "train/loss_epoch" in metrics else "train/loss"
    out = pd.DataFrame(index=pd.Index(sorted(metrics["epoch"].astype(int).unique()), name="epoch"))
    if train_column in metrics:
        out["train/loss"] = metrics.groupby(metrics["epoch"].astype(int))[train_column].mean()
    for column in (c for c in metrics.columns if c.startswith("val/")):
        values = metrics.loc[metrics[column].notna(), ["epoch", column]]
        out[column] = values.groupby(values["epoch"].astype(int))[column].last()
    return out


def plot_curves(curves: pd.DataFrame, monitor: str | None, path: Path) -> None:
    """Loss per epoch (left) and the monitored validation metric per epoch (right)."""
    fig, (left, right) = figure(10, 3.8, ncols=2)
    for column, label in (("train/loss", "train (mean per epoch)"), ("val/loss", "validation")):
        if column in curves and curves[column].notna().any():
            values = curves[column].dropna()  # epochs without a logged step (log_every_n_steps) have no train loss
            left.plot(values.index, values, marker="o", label=label)
    left.set(xlabel="epoch", ylabel="loss", title="loss")
    left.legend()
    if monitor and monitor in curves and curves[monitor].notna().any():
        values = curves[monitor].dropna()
        right.plot(values.index, values, marker="o", color="tab:green")
        right.set(xlabel="epoch", ylabel=monitor, title=f"{monitor} (validation)")
    else:
        right.text(0.5, 0.5, f"no {monitor or 'monitored metric'} in metrics.csv", ha="center", va="center")
        right.set_axis_off()
    for ax in (left, right):
        ax.grid(alpha=0.3)
    save_png(fig, path)


def class_curves(predictions: pd.DataFrame, objective: SequenceObjective) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per curve: (0/1 truth, score), for the objective's curve classes (binary: the positive class only)."""
    truth = objective.truth_matrix(predictions["label"])
    curves = {}
    for name in objective.curve_classes():
        j = objective.classes.index(name)
        y, score = truth[:, j], predictions[f"prob_{name}"].to_numpy(dtype=float)
        if 0 < y.sum() < len(y):
            curves[name] = (y, score)
        else:
            log.warning("class %r is %s in every test record; no ROC/PR curve for it", name, "present" if y.sum() else "absent")
    return curves


def plot_roc_pr(curves: dict[str, tuple[np.ndarray, np.ndarray]], roc_path: Path, pr_path: Path) -> dict[str, dict[str, float]]:
    """ROC and precision-recall curves with AUC / average precision in the legends; returns those numbers."""
    scores: dict[str, dict[str, float]] = {}
    roc_fig, (roc_ax,) = figure(5.2, 4.6)
    pr_fig, (pr_ax,) = figure(5.2, 4.6)
    for name, (y, score) in curves.items():
        fpr, tpr, _ = roc_curve(y, score)
        precision, recall, _ = precision_recall_curve(y, score)
        scores[name] = {"roc_auc": float(auc(fpr, tpr)), "average_precision": float(average_precision_score(y, score))}
        roc_ax.plot(fpr, tpr, label=f"{name} (AUC = {scores[name]['roc_auc']:.4f})")
        pr_ax.step(recall, precision, where="post", label=f"{name} (AP = {scores[name]['average_precision']:.4f})")
    roc_ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="chance")
    roc_ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC", xlim=(0, 1), ylim=(0, 1.01))
    pr_ax.set(xlabel="recall", ylabel="precision", title="precision-recall", xlim=(0, 1), ylim=(0, 1.01))
    for fig, ax, path in ((roc_fig, roc_ax, roc_path), (pr_fig, pr_ax, pr_path)):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8 if len(curves) > 4 else 10, loc="lower right" if ax is roc_ax else "lower left")
        save_png(fig, path)
    return scores


def plot_confusion(predictions: pd.DataFrame, spec: LabelSpec, path: Path) -> np.ndarray:
    """Confusion matrix (rows: observed, columns: predicted; colour: fraction of the row); returns the counts."""
    counts = confusion_matrix(predictions["label"].astype(str), predictions["prediction"].astype(str), labels=spec.classes)
    fractions = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    size = 3.2 + 0.45 * len(spec.classes)
    fig, (ax,) = figure(size + 1.0, size)
    image = ax.imshow(fractions, cmap="Blues", vmin=0, vmax=1)
    ticks = range(len(spec.classes))
    ax.set_xticks(ticks, spec.classes, rotation=45 if len(spec.classes) > 4 else 0, ha="right" if len(spec.classes) > 4 else "center")
    ax.set_yticks(ticks, spec.classes)
    if len(spec.classes) <= 20:
        for (i, j), value in np.ndenumerate(counts):
            ax.text(j, i, str(value), ha="center", va="center", color="white" if fractions[i, j] > 0.5 else "black", fontsize=9)
    ax.set(xlabel="predicted", ylabel="observed", title="confusion matrix (counts)")
    fig.colorbar(image, ax=ax, label="fraction of observed class")
    save_png(fig, path)
    return counts


def plot_scatter(observed: np.ndarray, predicted: np.ndarray, path: Path) -> float:
    """Predicted vs observed values with the y = x line; returns Pearson's r (NaN when either side
    is constant or there are fewer than 2 records: r is undefined there)."""
    undefined = len(observed) < 2 or np.ptp(observed) == 0 or np.ptp(predicted) == 0
    r = float("nan") if undefined else float(np.corrcoef(observed, predicted)[0, 1])
    fig, (ax,) = figure(5, 4.8)
    ax.scatter(observed, predicted, s=10, alpha=0.6, edgecolors="none")
    if len(observed):
        low, high = float(min(observed.min(), predicted.min())), float(max(observed.max(), predicted.max()))
        ax.plot([low, high], [low, high], linestyle="--", color="grey", linewidth=1, label="y = x")
        ax.legend(loc="upper left")
    ax.set(xlabel="observed", ylabel="predicted", title=f"Pearson r = {_format(r)} (n = {len(observed)})")
    ax.grid(alpha=0.3)
    save_png(fig, path)
    return r


def _read_predictions(path: Path) -> pd.DataFrame:
    """test_predictions.csv with labels kept as text (an empty multilabel field is "no label")."""
    frame = pd.read_csv(path, dtype={"id": str, "label": str, "prediction": str}, keep_default_na=False)
    if "label" not in frame:
        raise BiolmError(f"{path}: no 'label' column; expected id, label, prob_<class>... / prediction")
    return frame


def _scalars(node, skip: tuple[str, ...] = ("_target_",)) -> str:
    """``key value, ...`` of a config node's number and text leaves (nested keys joined with dots; flags left out)."""
    if node is None:
        return ""
    flat = pd.json_normalize(OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node).iloc[0]
    parts = [f"{key} {value}" for key, value in flat.items() if key not in skip and not isinstance(value, (list, bool)) and value is not None]
    return ", ".join(parts)


def _class_name(node) -> str:
    target = str(node.get("_target_", "")) if node is not None else ""
    return target.rsplit(".", 1)[-1] or "(unnamed)"


def _parameter_counts(run_dir: Path, *sources: dict) -> tuple[int | None, int | None]:
    """(trainable, total) from the run's JSON files, else the total from model.safetensors' header."""
    for source in sources:
        if "total_params" in source:
            return source.get("trainable_params"), int(source["total_params"])
    weights = run_dir / "model.safetensors"
    if not weights.exists():
        return None, None
    from safetensors import safe_open

    with safe_open(str(weights), framework="np") as handle:
        total = sum(int(np.prod(handle.get_slice(key).get_shape())) for key in handle.keys())
    return None, total


def _format(value) -> str:
    """A metric for the report: 4 decimals, ``undefined`` for null (and NaN, in older runs' JSON)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "undefined"
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def config_rows(cfg: DictConfig, spec: LabelSpec, params: tuple[int | None, int | None], test_metrics: dict) -> list[tuple[str, str]]:
    """The config summary table of the report."""
    trunk = cfg.get("model", {}).get("trunk") if cfg.get("model") else None
    rows = [("model", f"{_class_name(trunk)} ({_scalars(trunk)})" if trunk is not None else "(not in config)")]
    trainable, total = params
    if total is not None:
        share = f"{trainable:,} trainable of {total:,} ({100 * trainable / max(total, 1):.1f}%)" if trainable is not None else f"{total:,} in model.safetensors"
        rows.append(("parameters", share))
    if cfg.get("tokenizer") is not None:
        rows.append(("tokenizer", f"{_class_name(cfg.tokenizer)} ({_scalars(cfg.tokenizer, ('_target_', 'add_special_tokens'))})"))
    classes = f"classes {', '.join(spec.classes)}" if spec.classes else f"standardised with mean {spec.mean:.4g}, std {spec.std:.4g}"
    monitor = OmegaConf.select(cfg, "task.monitor", default=None)
    rows.append(("task", f"{spec.task} ({classes}); monitor val/{monitor}" if monitor else f"{spec.task} ({classes})"))
    optim = cfg.get("optim") or {}
    rows.append(("optimiser", ", ".join(f"{k} {v}" for k, v in (("lr", optim.get("lr")), ("weight decay", optim.get("weight_decay"))) if v is not None)))
    best = test_metrics.get("best_epoch")
    epochs = OmegaConf.select(cfg, "trainer.max_epochs", default=None)
    rows.append(("epochs", f"max {epochs}" + (f", best epoch {best}" if best is not None else "")))
    rows.append(("precision", str(OmegaConf.select(cfg, "trainer.precision", default="(default)"))))
    rows.append(("seed", str(cfg.get("seed", "(not set)"))))
    if cfg.get("adapter") is not None and str(cfg.adapter.get("name", "")) != "none":
        rows.append(("adapter", f"{_class_name(cfg.adapter)} ({_scalars(cfg.adapter)})"))
    window_bp, stride_bp = window_setting(cfg.get("data") or {})
    if window_bp is not None:
        rows.append(("windows", f"window_bp {window_bp}, window_stride_bp {stride_bp or window_bp}"))
    for split in ("train", "val", "test"):
        source = OmegaConf.select(cfg, f"data.{split}", default=None)
        if source:
            rows.append((f"data.{split}", f"`{source}`"))
    return rows


def write_report(run_dir: Path, data_sizes: dict[str, int] | None = None, announce: bool = True) -> Path:
    """Write the plots and ``report.md`` of a fine-tuning run folder (see the module docstring).

    Args:
        run_dir: the run folder (also a staging folder before it is published).
        data_sizes: rows per split (``train``, ``val``, ``test``); default: the ``n_<split>``
            entries of ``test_metrics.json``.
        announce: log where the report was written (off while the folder is still a staging one).

    Returns:
        The path of ``report.md``.
    """
    run_dir = Path(run_dir)
    for required in ("config.yaml", "labels.json"):
        if not (run_dir / required).is_file():
            raise BiolmError(f"run: {run_dir / required} not found; pass run=runs/<name> of a finetune run")
    with run_file(run_dir / "config.yaml", "not a readable run config"):
        cfg = OmegaConf.load(run_dir / "config.yaml")
    with run_file(run_dir / "labels.json", "not a readable label file"):
        spec = LabelSpec.from_json(run_dir / "labels.json")
        objective = objective_for(spec)
    objective.decision = load_decision(run_dir) or objective.decision
    test_metrics, checkpoint = {}, {}
    for name, target in (("test_metrics.json", test_metrics), ("checkpoint.json", checkpoint)):
        if (run_dir / name).exists():
            with run_file(run_dir / name, "not readable JSON"):
                target.update(json.loads((run_dir / name).read_text()))
    plots_dir = run_dir / "plots"
    plots_dir.mkdir(exist_ok=True)
    plots: list[str] = []
    notes: list[str] = []

    monitor = test_metrics.get("monitor") or checkpoint.get("monitor")
    if monitor is None and OmegaConf.select(cfg, "task.monitor", default=None):
        monitor = f"val/{cfg.task.monitor}"
    if (run_dir / "metrics.csv").exists():
        plot_curves(epoch_curves(pd.read_csv(run_dir / "metrics.csv")), monitor, plots_dir / "curves.png")
        plots.append("curves")

    if (run_dir / "test_predictions.csv").exists():
        predictions = _read_predictions(run_dir / "test_predictions.csv")
        if "scatter" in objective.plots:
            labelled = predictions[pd.to_numeric(predictions["label"], errors="coerce").notna()]
            r = plot_scatter(labelled["label"].astype(float).to_numpy(), labelled["prediction"].astype(float).to_numpy(), plots_dir / "scatter.png")
            plots.append("scatter")
            notes.append(f"Pearson r of the test predictions: {_format(r)}.")
        if "roc" in objective.plots:
            curves = class_curves(predictions, objective)
            if curves:
                scores = plot_roc_pr(curves, plots_dir / "roc.png", plots_dir / "pr.png")
                plots += ["roc", "pr"]
                rows = [(name, f"{s['roc_auc']:.4f}", f"{s['average_precision']:.4f}") for name, s in scores.items()]
                notes += ["Test ROC AUC and average precision per curve:", "", *markdown_table(rows, ("class", "ROC AUC", "average precision"))]
        if "confusion" in objective.plots:
            plot_confusion(predictions, spec, plots_dir / "confusion.png")
            plots.append("confusion")

    sizes = data_sizes or {split: test_metrics[f"n_{split}"] for split in ("train", "val", "test") if f"n_{split}" in test_metrics}
    metric_rows = [
        (k, _format(v)) for k, v in test_metrics.items() if k not in NON_METRIC_KEYS and not k.startswith("n_") and (v is None or isinstance(v, (int, float)))
    ]
    lines = [f"# {run_title(run_dir)}", "", "## Test metrics", "", *markdown_table(metric_rows, ("metric", "value"))]
    if any(value == "undefined" for _, value in metric_rows):
        lines += ["", "undefined: the metric has no value on this test set (e.g. AUROC of a set with one class); the warnings logged when the metrics were computed say why."]
    if test_metrics.get("best_val") is not None:
        lines += ["", f"Best validation {test_metrics.get('monitor', 'metric')}: {_format(test_metrics['best_val'])} (epoch {test_metrics.get('best_epoch')})."]
    decision = objective.describe_decision() if objective.decides else []
    if decision:
        lines += ["", "## Decision rule", "", *decision]
        if test_metrics.get("tp") is not None:
            counts = ", ".join(f"{k.upper()} {test_metrics[k]}" for k in ("tp", "fp", "tn", "fn"))
            lines += ["", f"On the test set at this threshold: sensitivity {_format(test_metrics.get('sensitivity'))}, "
                          f"specificity {_format(test_metrics.get('specificity'))} ({counts})."]
    lines += ["", "## Data", "", *(markdown_table([(k, f"{int(v):,}") for k, v in sizes.items()], ("split", "rows")) if sizes else ["(sizes unknown)"])]
    lines += ["", "## Configuration", "", *markdown_table(config_rows(cfg, spec, _parameter_counts(run_dir, test_metrics, checkpoint), test_metrics), ("setting", "value"), numeric=False)]
    lines += ["", "## Plots"]
    for name in plots:
        lines += ["", f"### {PLOT_TITLES[name]}", "", f"![{PLOT_TITLES[name]}](plots/{name}.png)"]
    if notes:
        lines += ["", *notes]
    report = run_dir / "report.md"
    with atomic_path(report) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    if announce:
        log.info("report with %d plots written to %s", len(plots), report)
    return report

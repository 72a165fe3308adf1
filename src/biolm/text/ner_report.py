"""The report of an NER run: ``plots/`` (training curves, per-type F1 bars, type confusion) and ``report.md``.

In: the staging run folder (``config.yaml``, ``metrics.csv``), the test metrics of
`biolm.text.ner.evaluate_ner` and the test sentences with their predicted tags. The plots share
the fine-tune report's helpers (`biolm.report`), so a DNA run and a text run look alike.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from biolm.data.io import atomic_path
from biolm.plots import figure, save_png
from biolm.report import epoch_curves, plot_curves, run_title
from biolm.text.corpus import Sentence
from biolm.text.scores import type_confusion


def plot_type_f1(per_type: dict[str, dict], path: Path) -> None:
    """Precision, recall and F1 per entity type, as grouped bars."""
    names = sorted(per_type)
    fig, (ax,) = figure(max(4.0, 1.4 * len(names) + 2), 3.6)
    x = np.arange(len(names))
    for k, metric in enumerate(("precision", "recall", "f1")):
        ax.bar(x + (k - 1) * 0.27, [per_type[n][metric] for n in names], width=0.27, label=metric)
    ax.set_xticks(x, [f"{n}\n(n={per_type[n]['support']})" for n in names])
    ax.set(ylim=(0, 1), ylabel="test score (strict)", title="entity scores per type")
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3, axis="y")
    save_png(fig, path)


def plot_type_confusion(names: list[str], matrix: list[list[int]], path: Path) -> None:
    """Gold type x predicted type over overlapping spans (``none``: missed or spurious)."""
    values = np.asarray(matrix)
    fig, (ax,) = figure(1.0 * len(names) + 2.5, 0.9 * len(names) + 1.8)
    ax.imshow(values, cmap="Blues")
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
    ax.set_yticks(range(len(names)), names)
    for i in range(len(names)):
        for j in range(len(names)):
            ax.text(j, i, str(values[i, j]), ha="center", va="center", color="white" if values[i, j] > values.max() / 2 else "black")
    ax.set(xlabel="predicted type", ylabel="gold type", title="test entities by type")
    save_png(fig, path)


def write_ner_report(run_dir: Path, metrics: dict, sentences: list[Sentence], predicted: list[list[str]], types: list[str]) -> Path:
    """Write ``plots/`` and ``report.md`` of an NER run folder; returns the report's path."""
    plots = run_dir / "plots"
    plots.mkdir(exist_ok=True)
    lines = [f"# {run_title(run_dir)}", "", "Named-entity recognition; entity scores are seqeval's strict IOB2 (exact span and type).", ""]
    lines += ["| | precision | recall | F1 | gold entities |", "|---|---:|---:|---:|---:|"]
    lines.append(f"| **micro** | {metrics['precision']:.4f} | {metrics['recall']:.4f} | {metrics['f1']:.4f} | {metrics['n_entities']} |")
    for name, row in sorted(metrics["per_type"].items()):
        lines.append(f"| {name} | {row['precision']:.4f} | {row['recall']:.4f} | {row['f1']:.4f} | {row['support']} |")
    lines += ["", "Errors: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in metrics["errors"].items()), ""]
    if (run_dir / "metrics.csv").exists():
        curves = epoch_curves(pd.read_csv(run_dir / "metrics.csv"))
        plot_curves(curves, str(metrics.get("monitor") or "val/f1"), plots / "curves.png")
        lines += ["![training curves](plots/curves.png)", ""]
    if metrics["per_type"]:
        plot_type_f1(metrics["per_type"], plots / "type_f1.png")
        lines += ["![per-type scores](plots/type_f1.png)", ""]
    names, matrix = type_confusion(sentences, predicted, types)
    plot_type_confusion(names, matrix, plots / "type_confusion.png")
    lines += ["![type confusion](plots/type_confusion.png)", ""]
    path = run_dir / "report.md"
    with atomic_path(path) as tmp:
        Path(tmp).write_text("\n".join(lines), encoding="utf-8")
    return path

"""The report of an instruction-tuning run: ``plots/curves.png`` (answer-token loss) and ``report.md``
(test scores before vs after tuning, per field, and a few answers verbatim).

In: the staging run folder (``metrics.csv``), the metrics of `biolm.text.sft.SftRecipe.finish` and
the per-sentence rows of `biolm.text.llm.evaluate_llm` (``after`` and, when scored, ``before``).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from biolm.data.io import atomic_path
from biolm.plots import figure, save_png
from biolm.report import run_title

EXAMPLES_SHOWN = 5


def _score_rows(metrics: dict) -> list[str]:
    lines = ["| model | entity F1 | precision | recall | parse rate | invalid answers |", "|---|---:|---:|---:|---:|---:|"]
    for name in ("before", "after"):
        if name in metrics:
            m = metrics[name]
            lines.append(f"| {name} tuning | {m['entity_f1']:.4f} | {m['precision']:.4f} | {m['recall']:.4f} | {m['parse_rate']:.3f} | {m['n_invalid']} |")
    return lines


def _field_rows(metrics: dict) -> list[str]:
    names = [n for n in ("before", "after") if n in metrics]
    lines = ["| field | " + " | ".join(f"F1 {n}" for n in names) + " | gold values |", "|---|" + "---:|" * (len(names) + 1)]
    for field, row in metrics["after"]["fields"].items():
        if field != "micro" and (row["n_gold"] or row["n_predicted"]):
            lines.append(f"| {field} | " + " | ".join(f"{metrics[n]['fields'][field]['f1']:.4f}" for n in names) + f" | {row['n_gold']} |")
    return lines


def plot_step_curves(log: pd.DataFrame, path: Path) -> None:
    """Training loss per logged step and validation loss per validation run, against the optimiser step."""
    fig, (ax,) = figure(6.5, 3.8)
    for column, label, style in (("train/loss", "train (logged steps)", "-"), ("val/loss", "validation", "o-")):
        if column in log and log[column].notna().any():
            values = log.loc[log[column].notna(), ["step", column]]
            ax.plot(values["step"], values[column], style, label=label)
    ax.set(xlabel="optimiser step", ylabel="cross-entropy per answer token (nats)", title="answer-token loss")
    ax.legend()
    ax.grid(alpha=0.3)
    save_png(fig, path)


def write_sft_report(run_dir: Path, metrics: dict, rows: dict[str, list[dict]]) -> Path:
    """Write ``plots/`` and ``report.md`` of an LLM run folder; returns the report's path."""
    plots = run_dir / "plots"
    plots.mkdir(exist_ok=True)
    lines = [f"# {run_title(run_dir)}", "", f"Instruction tuning: {metrics['steps']} optimiser steps, {metrics['train_minutes']:.1f} min "
             f"(loading, data and training; the test answers not included), {metrics['trainable_params']:,} trainable of {metrics['total_params']:,} parameters; "
             f"best validation loss {metrics['best_val'] if metrics['best_val'] is None else round(metrics['best_val'], 4)} (nats per answer token"
             f"{', at step ' + str(metrics['best_step']) if metrics.get('best_step') is not None else ''}).", ""]
    if "after" in metrics:
        lines += [f"Test: {metrics['after']['n_sentences']} sentences, {metrics['after']['n_gold_values']} gold values. Entity F1 is an exact "
                  "string match after normalisation (per sentence and field); an invalid answer scores as an empty record.", ""]
        lines += _score_rows(metrics) + [""] + _field_rows(metrics) + [""]
    if (run_dir / "metrics.csv").exists():
        plot_step_curves(pd.read_csv(run_dir / "metrics.csv"), plots / "curves.png")
        lines += ["![training curves](plots/curves.png)", ""]
    if rows.get("after"):
        lines += ["## Answers", ""]
        for k, row in enumerate(rows["after"][:EXAMPLES_SHOWN]):
            lines += [f"**Text:** {row['text']}", "", f"- gold: `{json.dumps(row['gold'], ensure_ascii=False)}`"]
            if "before" in rows:
                lines.append(f"- before: `{rows['before'][k]['answer']}`")
            lines += [f"- after: `{row['answer']}`", ""]
    path = run_dir / "report.md"
    with atomic_path(path) as tmp:
        Path(tmp).write_text("\n".join(lines), encoding="utf-8")
    return path

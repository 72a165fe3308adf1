"""Tables, plots and report of a genomic-prediction cross-validation.

In: the per-fold results (`trait, model, repeat, fold, pearson_r, mse, fit_s, ...`) and the
repeat-0 out-of-fold predictions. Out (in the run folder): cv_summary.csv (per trait x model:
folds, mean and sd of r over folds, sd of the repeat means, r on the folds every model ran, MSE,
fit seconds; folds where r is undefined, e.g. a constant phenotype, are counted and left out),
r_by_model.png (bars with sd), scatter_<trait>.png (predicted vs observed per model) and report.md
(the wide table: models x traits, mean ± sd r, plus total fit time).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import DictConfig

from biolm.data.io import atomic_path, write_table
from biolm.genomic_prediction.cv import pearson


def summarize(results: pd.DataFrame) -> pd.DataFrame:
    """One row per (trait, model), models in the order they ran."""
    common = results.groupby("model")["repeat"].max().min()
    order = list(dict.fromkeys(results["model"]))
    rows = []
    for (trait, model), block in results.groupby(["trait", "model"], sort=False):
        repeat_means = block.groupby("repeat")["pearson_r"].mean()
        rows.append({
            "trait": trait, "model": model, "folds": len(block), "folds_r_undefined": int(block.pearson_r.isna().sum()),
            "r_mean": block.pearson_r.mean(), "r_sd": block.pearson_r.std(ddof=1),
            "r_sd_repeats": repeat_means.std(ddof=1) if len(repeat_means) > 1 else np.nan,
            "r_mean_shared_folds": block.loc[block["repeat"] <= common, "pearson_r"].mean(),
            "mse_mean": block.mse.mean(), "fit_s": block.fit_s.sum(),
        })
    summary = pd.DataFrame(rows)
    summary["model"] = pd.Categorical(summary["model"], order)
    return summary.sort_values(["trait", "model"], kind="stable").reset_index(drop=True).assign(model=lambda f: f.model.astype(str))


def _r(value: float) -> str:
    return "n/a" if np.isnan(value) else f"{value:.3f}"


def wide_table(summary: pd.DataFrame) -> str:
    """Markdown: one row per model, `mean ± sd` r per trait, the mean over traits and total fit time
    (``n/a`` where r is undefined on every fold, e.g. a constant phenotype)."""
    traits = list(dict.fromkeys(summary["trait"]))
    lines = ["| model | " + " | ".join(traits) + " | mean r | folds | fit time (s) |", "|---" * (len(traits) + 4) + "|"]
    for model, block in summary.groupby("model", sort=False):
        block = block.set_index("trait")
        cells = [f"{_r(block.at[t, 'r_mean'])} ± {_r(block.at[t, 'r_sd'])}" for t in traits]
        lines.append(f"| {model} | " + " | ".join(cells) + f" | {_r(block.r_mean.mean())} | {int(block.folds.iloc[0])} | {block.fit_s.sum():.1f} |")
    return "\n".join(lines)


def _save(figure, path: Path) -> None:
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=120, bbox_inches="tight")


def plot_r_by_model(summary: pd.DataFrame, path: Path) -> None:
    """Grouped bars: traits on x, one bar per model, error bars = sd over folds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    traits = list(dict.fromkeys(summary["trait"]))
    models = list(dict.fromkeys(summary["model"]))
    width = 0.8 / len(models)
    figure, axis = plt.subplots(figsize=(1.6 + 1.4 * len(traits), 3.6))
    for k, model in enumerate(models):
        block = summary[summary.model == model].set_index("trait").reindex(traits)
        axis.bar(np.arange(len(traits)) + (k - (len(models) - 1) / 2) * width, block.r_mean, width, yerr=block.r_sd, capsize=2, label=model)
    axis.set_xticks(np.arange(len(traits)), traits)
    axis.set_ylabel("Pearson r (held-out folds)")
    axis.legend(fontsize=8, ncols=min(len(models), 6), loc="upper center", bbox_to_anchor=(0.5, -0.12))
    _save(figure, path)
    plt.close(figure)


def plot_scatter(oof: pd.DataFrame, trait: str, path: Path) -> None:
    """Predicted vs observed (repeat 0, every line once), one panel per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    block = oof[oof.trait == trait]
    models = list(dict.fromkeys(block["model"]))
    figure, axes = plt.subplots(1, len(models), figsize=(2.8 * len(models), 2.8), squeeze=False, sharey=True)
    for axis, model in zip(axes[0], models):
        part = block[block.model == model]
        axis.scatter(part.observed, part.predicted, s=5, alpha=0.6)
        r = pearson(part.predicted.to_numpy(), part.observed.to_numpy())
        axis.set_title(f"{model} (r = {'n/a' if np.isnan(r) else f'{r:.2f}'})", fontsize=9)
        axis.set_xlabel(f"observed {trait}")
    axes[0][0].set_ylabel("predicted")
    _save(figure, path)
    plt.close(figure)


def write_report(folder: Path, results: pd.DataFrame, oof: pd.DataFrame, cfg: DictConfig, plots: bool = True) -> pd.DataFrame:
    """Write cv_summary.csv, the plots and report.md into ``folder``; returns the summary."""
    summary = summarize(results)
    write_table(summary, str(folder / "cv_summary.csv"))
    if plots:
        plot_r_by_model(summary, folder / "r_by_model.png")
        for trait in dict.fromkeys(summary["trait"]):
            plot_scatter(oof, trait, folder / f"scatter_{trait}.png")
    text = [
        f"# Genomic prediction: {cfg.data.genotypes}",
        "",
        f"Repeated {cfg.cv.folds}-fold CV, {cfg.cv.repeats} repeats (KFold random_state = {cfg.cv.seed} + repeat; folds in folds.csv),",
        "the same folds for every model; Pearson r on each held-out fold, mean ± sd over the folds where r is defined",
        "(r is undefined on a fold with constant phenotypes or constant predictions: cv_summary.csv `folds_r_undefined`).",
        f"Inside a training fold (inner CV, validation split, network init) the seed is {cfg.seed} + 1000 * repeat + fold.",
        "Models with `max_repeats` ran on the first repeats only (column `folds`; cv_summary.csv",
        "`r_mean_shared_folds` compares every model on the folds they all ran). Fit time: seconds summed over folds and traits.",
        "",
        wide_table(summary),
        "",
    ]
    with atomic_path(folder / "report.md") as tmp:
        tmp.write_text("\n".join(text))
    return summary

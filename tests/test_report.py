"""Run reports: the plots of each task type are real PNGs, report.md links them and shows the numbers."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf
from PIL import Image
from scipy.stats import pearsonr
from sklearn.metrics import average_precision_score, roc_auc_score

from biolm.cli import main
from biolm.report import epoch_curves, plot_scatter, run_title, write_report

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
EXPECTED_PLOTS = {
    "binary": {"curves", "roc", "pr", "confusion"},
    "multiclass": {"curves", "roc", "pr", "confusion"},
    "multilabel": {"curves", "roc", "pr"},
    "regression": {"curves", "scatter"},
}
CLASSES = {"binary": ["0", "1"], "multiclass": ["enhancer", "promoter", "silencer"], "multilabel": ["a", "b", "c"], "regression": []}
MONITOR = {"binary": "auroc", "multiclass": "mcc", "multilabel": "map", "regression": "pearson"}


def _predictions(task: str, n: int, rng: np.random.Generator) -> pd.DataFrame:
    """Test predictions in the layout `api.finetune` writes, with scores that track the labels."""
    classes = CLASSES[task]
    frame = pd.DataFrame({"id": [f"seq{i}" for i in range(n)]})
    if task == "regression":
        observed = rng.normal(2.0, 1.5, n)
        frame["label"] = observed
        frame["prediction"] = observed + rng.normal(0, 0.8, n)
        return frame
    if task == "multilabel":
        truth = rng.random((n, len(classes))) < 0.4
        frame["label"] = [";".join(c for c, on in zip(classes, row) if on) for row in truth]
        probs = np.clip(truth * 0.5 + rng.random(truth.shape) * 0.6, 0, 1)
        for j, name in enumerate(classes):
            frame[f"prob_{name}"] = probs[:, j]
        frame["prediction"] = [";".join(c for c, p in zip(classes, row) if p >= 0.5) for row in probs]
        return frame
    truth = rng.integers(0, len(classes), n)
    logits = rng.normal(0, 1, (n, len(classes)))
    logits[np.arange(n), truth] += 1.5
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    frame["label"] = [classes[t] for t in truth]
    for j, name in enumerate(classes):
        frame[f"prob_{name}"] = probs[:, j]
    frame["prediction"] = [classes[j] for j in probs.argmax(axis=1)]
    return frame


def _metrics_log(monitor: str) -> pd.DataFrame:
    """A CSVLogger-style log: 2 train-loss rows and 1 validation row per epoch, 3 epochs."""
    rows = []
    for epoch in range(3):
        rows += [{"epoch": epoch, "step": 10 * epoch + 4, "train/loss": 1.0 - 0.2 * epoch},
                 {"epoch": epoch, "step": 10 * epoch + 9, "train/loss": 0.8 - 0.2 * epoch},
                 {"epoch": epoch, "step": 10 * epoch + 9, "val/loss": 0.95 - 0.1 * epoch, f"val/{monitor}": 0.6 + 0.1 * epoch}]
    return pd.DataFrame(rows, columns=["epoch", "step", "train/loss", "val/loss", f"val/{monitor}"])


def make_run(root: Path, task: str, extra_config: dict | None = None, n: int = 120) -> Path:
    """A finetune run folder without weights: config, labels, metrics log, test metrics and predictions."""
    run = root / f"{task}_run"
    run.mkdir()
    config = {
        "seed": 7,
        "run_name": run.name,
        "optim": {"lr": 0.0003, "weight_decay": 0.01},
        "tokenizer": {"_target_": "biolm.tokenizers.KmerTokenizer", "k": 6, "stride": 1, "add_special_tokens": True},
        "model": {"trunk": {"_target_": "biolm.models.bert.BertEncoder", "hidden_size": 64, "num_layers": 2}},
        "data": {"train": "train.csv", "val": "dev.csv", "test": "test.csv"},
        "task": {"type": task, "monitor": MONITOR[task]},
        "trainer": {"max_epochs": 3, "precision": "bf16-mixed"},
        **(extra_config or {}),
    }
    OmegaConf.save(OmegaConf.create(config), run / "config.yaml")
    (run / "labels.json").write_text(json.dumps({"task": task, "classes": CLASSES[task], "delimiter": ";", "mean": 2.0, "std": 1.5}))
    _metrics_log(MONITOR[task]).to_csv(run / "metrics.csv", index=False)
    _predictions(task, n, np.random.default_rng(0)).to_csv(run / "test_predictions.csv", index=False)
    metrics = {MONITOR[task]: 0.8123456, "accuracy" if task != "regression" else "mse": 0.7654321, "n_test": n,
               "monitor": f"val/{MONITOR[task]}", "best_val": 0.8, "best_epoch": 2, "trainable_params": 1200, "total_params": 4800}
    (run / "test_metrics.json").write_text(json.dumps(metrics))
    return run


@pytest.fixture(scope="module")
def reports(tmp_path_factory) -> dict[str, tuple[Path, str]]:
    """One run folder and report text per task type (rendering dominates the time of this file)."""
    root = tmp_path_factory.mktemp("reports")
    out = {}
    for task in EXPECTED_PLOTS:
        run = make_run(root, task)
        out[task] = (run, write_report(run, {"train": 1000, "val": 100, "test": 120}).read_text())
    return out


@pytest.mark.parametrize("task", list(EXPECTED_PLOTS))
def test_plots_are_written_and_linked(reports, task):
    run, text = reports[task]
    written = {p.stem for p in (run / "plots").glob("*.png")}
    assert written == EXPECTED_PLOTS[task]
    for name in written:
        path = run / "plots" / f"{name}.png"
        assert path.read_bytes()[:8] == PNG_SIGNATURE
        assert path.stat().st_size > 10_000  # axes, text and curves, not an empty canvas
        with Image.open(path) as image:
            image.verify()
        assert f"](plots/{name}.png)" in text
    assert set(re.findall(r"\]\(plots/(\w+)\.png\)", text)) == written
    assert text.startswith(f"# {task}_run\n")
    assert "| " + MONITOR[task] + " | 0.8123 |" in text
    assert "| train | 1,000 |" in text and "| val | 100 |" in text and "| test | 120 |" in text
    assert "BertEncoder (hidden_size 64, num_layers 2)" in text
    assert "KmerTokenizer (k 6, stride 1)" in text
    assert "| parameters | 1,200 trainable of 4,800 (25.0%) |" in text and "| total_params |" not in text
    assert "lr 0.0003" in text and "bf16-mixed" in text and "| seed | 7 |" in text
    assert not list((run / "plots").glob(".*.tmp")) and not list(run.glob(".*.tmp"))


@pytest.mark.parametrize("task", ["binary", "multilabel", "multiclass"])
def test_reported_auc_matches_sklearn(reports, task):
    run, text = reports[task]
    reported = {m[0]: (float(m[1]), float(m[2])) for m in re.findall(r"^\| (\w+) \| ([\d.]+) \| ([\d.]+) \|$", text, re.M)}
    frame = pd.read_csv(run / "test_predictions.csv", dtype={"label": str}, keep_default_na=False)
    names = CLASSES[task][1:] if task == "binary" else CLASSES[task]
    assert set(reported) == set(names)
    for name in names:
        truth = np.array([name in label.split(";") for label in frame["label"]], dtype=int)
        score = frame[f"prob_{name}"]
        assert reported[name][0] == pytest.approx(roc_auc_score(truth, score), abs=5e-5)
        assert reported[name][1] == pytest.approx(average_precision_score(truth, score), abs=5e-5)


def test_confusion_counts_match_the_accuracy(reports):
    from biolm.data.labels import LabelSpec
    from biolm.report import plot_confusion

    run, _ = reports["multiclass"]
    frame = pd.read_csv(run / "test_predictions.csv", dtype=str)
    counts = plot_confusion(frame, LabelSpec("multiclass", CLASSES["multiclass"]), run / "plots" / "confusion.png")
    assert counts.sum() == len(frame)
    assert np.trace(counts) == (frame["label"] == frame["prediction"]).sum()


def test_epoch_curves_average_train_loss_and_keep_validation():
    curves = epoch_curves(_metrics_log("auroc"))
    assert list(curves.index) == [0, 1, 2]
    np.testing.assert_allclose(curves["train/loss"], [0.9, 0.7, 0.5])
    np.testing.assert_allclose(curves["val/loss"], [0.95, 0.85, 0.75])
    np.testing.assert_allclose(curves["val/auroc"], [0.6, 0.7, 0.8])


def test_scatter_reports_pearson_r(tmp_path):
    rng = np.random.default_rng(1)
    observed = rng.normal(size=50)
    predicted = observed + rng.normal(size=50)
    assert plot_scatter(observed, predicted, tmp_path / "s.png") == pytest.approx(pearsonr(observed, predicted)[0])


def _without_plots(run: Path) -> Path:
    (run / "metrics.csv").unlink()
    (run / "test_predictions.csv").unlink()
    return run


def test_summary_shows_adapter_window_and_falls_back_to_n_test(tmp_path):
    extra = {"adapter": {"_target_": "peft.LoraConfig", "r": 8, "lora_alpha": 16}}
    run = _without_plots(make_run(tmp_path, "binary", extra))
    config = OmegaConf.load(run / "config.yaml")
    config.data.window_bp, config.data.window_stride_bp = 512, 256
    OmegaConf.save(config, run / "config.yaml")
    text = write_report(run).read_text()
    assert "| adapter | LoraConfig (r 8, lora_alpha 16) |" in text
    assert "| windows | window_bp 512, window_stride_bp 256 |" in text
    assert "| test | 120 |" in text and "| train |" not in text
    assert "![" not in text


def test_staging_folder_title():
    assert run_title(Path("runs/.reg.incomplete")) == "reg"
    assert run_title(Path("runs/reg")) == "reg"


def test_cli_rewrites_report_and_reports_bad_run(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("biolm.cli._setup_logging", lambda: None)  # it imports lightning: seconds, unrelated here
    run = _without_plots(make_run(tmp_path, "regression"))
    assert main(["report", f"run={run}"]) == 0
    assert (run / "report.md").read_text().startswith("# regression_run\n")
    assert main(["report", f"run={tmp_path / 'nope'}"]) == 2
    assert "config.yaml not found" in capsys.readouterr().err
    assert main(["report"]) == 2

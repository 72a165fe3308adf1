"""Decision thresholds and risk bands (`biolm.tasks.decision`): rules against brute-force searches on hand-made
ROCs, the prediction and call columns following the stored threshold, metrics at it, and a run end to end
(finetune chooses on val, predict / evaluate / report / service / export follow)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import matthews_corrcoef

from biolm import api
from biolm.cli import main
from biolm.data.labels import LabelSpec
from biolm.errors import BiolmError
from biolm.evaluation import compute_metrics
from biolm.tasks.decision import Bands, Decision, choose_threshold, parse_bands, parse_rule, rates
from biolm.tasks.objectives import BinaryClassification

# A hand-made ROC: 5 positives, 5 negatives, a tie across classes at 0.6.
TRUTH = np.array([1, 1, 1, 0, 1, 0, 1, 0, 0, 0])
SCORES = np.array([0.95, 0.9, 0.8, 0.7, 0.6, 0.6, 0.4, 0.3, 0.2, 0.1])


def brute_force(truth, scores, objective):
    """Every candidate threshold (each distinct score), each rate by hand; the best by ``objective``."""
    candidates = []
    for t in sorted(set(scores.tolist()), reverse=True):
        positive = scores >= t
        sens = (positive & (truth == 1)).sum() / (truth == 1).sum()
        spec = (~positive & (truth == 0)).sum() / (truth == 0).sum()
        candidates.append((t, sens, spec))
    return objective(candidates)


def test_youden_equals_a_brute_force_search_on_a_hand_made_roc():
    # by hand: t=0.8 -> sens 3/5, spec 5/5, J 0.6; t=0.6 -> sens 4/5, spec 3/5, J 0.4 (the tie counts both);
    # t=0.4 -> sens 5/5, spec 3/5, J 0.6: two thresholds tie at J = 0.6 and the rule takes the higher
    assert choose_threshold(TRUTH, SCORES, "youden") == 0.8
    best = brute_force(TRUTH, SCORES, lambda c: max(c, key=lambda x: (round(x[1] + x[2] - 1, 12), x[0]))[0])
    assert best == 0.8


@pytest.mark.parametrize("seed", range(25))
def test_rules_equal_brute_force_on_random_rocs_with_ties(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(6, 60))
    truth = rng.integers(0, 2, n)
    truth[:2] = [0, 1]
    scores = np.round(rng.random(n) * (truth * 0.5 + 0.5), 1)  # rounding makes ties
    assert choose_threshold(truth, scores, "youden") == brute_force(
        truth, scores, lambda c: max(c, key=lambda x: (round(x[1] + x[2] - 1, 12), x[0]))[0]
    )
    for target in (0.5, 0.8, 1.0):
        assert choose_threshold(truth, scores, f"sensitivity:{target}") == brute_force(
            truth, scores, lambda c, t=target: max(x[0] for x in c if x[1] >= t - 1e-12)
        )
        reachable = [x for x in brute_force(truth, scores, list) if x[2] >= target - 1e-12]
        if reachable:
            assert choose_threshold(truth, scores, f"specificity:{target}") == min(x[0] for x in reachable)


def test_targets_reached_exactly_count_and_youden_ties_are_exact():
    # 100 negatives, 7 of them above 0.8: specificity at 0.8 is exactly 0.93 (1 - 0.07 rounds below it in floats)
    truth = np.array([1] * 10 + [0] * 100)
    scores = np.concatenate([np.full(10, 0.95), np.full(7, 0.85), np.full(93, 0.1)])
    assert choose_threshold(truth, scores, "specificity:0.93") == 0.85
    # 2 positives, 10 negatives: (1/2, 2/10) at 0.9 and (2/2, 7/10) at 0.5 both have J = 0.3 (0.30000000000000004 in floats)
    truth = np.array([1, 1] + [0] * 10)
    scores = np.array([0.9, 0.5, 0.9, 0.9, 0.5, 0.5, 0.5, 0.5, 0.5, 0.1, 0.1, 0.1])
    assert choose_threshold(truth, scores, "youden") == 0.9
    with pytest.raises(BiolmError, match="NaN"):
        choose_threshold([0, 1], [0.2, float("nan")], "youden")


def test_a_fixed_number_is_kept_and_bad_rules_name_what_is_accepted():
    assert choose_threshold(TRUTH, SCORES, 0.37) == 0.37
    assert parse_rule("0.2") == ("fixed", 0.2)
    assert parse_rule("Sensitivity:0.9") == ("sensitivity", 0.9)
    for bad in ("median", "sensitivity:1.5", "specificity:", 2, "sensitivity:0"):
        with pytest.raises(BiolmError, match="task.threshold"):
            parse_rule(bad)
    with pytest.raises(BiolmError, match="one class only"):
        choose_threshold([1, 1, 1], [0.2, 0.5, 0.9], "youden")


def test_bands_assign_a_value_at_a_cut_off_to_the_band_above():
    bands = parse_bands({"names": ["low", "intermediate", "high"], "cutoffs": [0.2, "threshold"]}, 0.6)
    assert bands == Bands(("low", "intermediate", "high"), (0.2, 0.6))
    assert bands.assign(np.array([0.0, 0.19, 0.2, 0.59, 0.6, 1.0])).tolist() == ["low", "low", "intermediate", "intermediate", "high", "high"]
    for bad, words in (
        ({"names": ["low", "high"], "cutoffs": [0.2, 0.5]}, "2 names need 1 cut-off"),
        ({"names": ["all"], "cutoffs": []}, "at least 2 band names"),
        ({"names": ["low", "high"], "cutoffs": ["high"]}, "a number in \\[0, 1\\], or threshold"),
        ({"names": ["low", "mid", "high"], "cutoffs": [0.7, "threshold"]}, "strictly ascending"),
        ({"names": ["a", "a"], "cutoffs": [0.5]}, "repeat"),
        ({"names": ["low", "high"], "cutoffs": [1.5]}, r"outside \[0, 1\]"),
        ({"labels": ["low", "high"]}, "expected"),
    ):
        with pytest.raises(BiolmError, match=words):
            parse_bands(bad, 0.6)


def binary(decision: Decision) -> BinaryClassification:
    return BinaryClassification(LabelSpec("binary", ["0", "1"]), decision)


def test_prediction_and_call_columns_follow_the_stored_threshold():
    objective = binary(Decision(0.3, "0.3", parse_bands({"names": ["low risk", "high risk"], "cutoffs": ["threshold"]}, 0.3)))
    values = np.array([0.1, 0.2999, 0.3, 0.7], dtype=np.float32)
    frame = objective.to_frame(["a", "b", "c", "d"], values)
    assert frame["prediction"].tolist() == ["0", "0", "1", "1"]
    assert frame["call"].tolist() == ["low risk", "low risk", "high risk", "high risk"]
    assert "call" not in binary(Decision()).to_frame(["a"], values[:1])


def test_metrics_count_a_probability_at_the_threshold_as_positive():
    rng = np.random.default_rng(0)
    values = rng.random(200).astype(np.float32)
    threshold = float(values[17])  # one record sits exactly on it
    targets = (rng.random(200) < values).astype(int)
    objective = binary(Decision(threshold, "test"))
    frame = objective.to_frame([str(i) for i in range(200)], values)
    metrics = compute_metrics(objective, frame, targets)
    predicted = (frame["prediction"] == "1").astype(int)
    assert metrics["mcc"] == pytest.approx(matthews_corrcoef(targets, predicted), abs=1e-6)
    assert metrics["threshold"] == threshold
    assert {k: metrics[k] for k in ("tp", "fp", "tn", "fn")} == {k: v for k, v in rates(targets, predicted.to_numpy()).items() if k in ("tp", "fp", "tn", "fn")}
    assert metrics["sensitivity"] == pytest.approx(metrics["tp"] / (metrics["tp"] + metrics["fn"]))


def test_decision_file_round_trips_and_a_damaged_one_names_the_file(tmp_path):
    decision = Decision(0.42, "youden", Bands(("low", "high"), (0.42,)), {"split": "val", "n": 10})
    decision.to_json(tmp_path / "decision.json")
    assert Decision.from_json(tmp_path / "decision.json") == decision
    (tmp_path / "decision.json").write_text('{"threshold": "high"}')
    with pytest.raises(BiolmError, match="decision.json"):
        Decision.from_json(tmp_path / "decision.json")


@pytest.fixture(scope="module")
def youden_run(tiny_task, tiny_model_overrides, tmp_path_factory):
    out = tmp_path_factory.mktemp("decision_runs")
    code = main([
        "finetune", f"data.train={tiny_task['train']}", f"data.val={tiny_task['dev']}", f"data.test={tiny_task['test']}",
        "tokenizer=kmer3", "model=bert_tiny", "task=binary", f"output_dir={out}", "run_name=youden", *tiny_model_overrides,
        "task.threshold=youden", "task.bands={names:[low risk,high risk],cutoffs:[threshold]}",
    ])
    assert code == 0
    return out / "youden"


def test_finetune_chooses_on_val_and_every_consumer_follows(youden_run, tiny_task, tmp_path):
    decision = json.loads((youden_run / "decision.json").read_text())
    run = api.load_run(youden_run)
    val = pd.read_csv(tiny_task["dev"])
    scores = api.predict(run, val["sequence"].tolist())["prob_1"].to_numpy()
    assert decision["threshold"] == choose_threshold(val["label"].to_numpy(), scores, "youden")
    assert decision["rule"] == "youden" and decision["chosen_on"]["split"] == "val" and decision["chosen_on"]["n"] == len(val)

    test = pd.read_csv(youden_run / "test_predictions.csv", dtype={"prediction": str})
    assert (test["prediction"] == np.where(test["prob_1"] >= decision["threshold"], "1", "0")).all()
    assert (test["call"] == np.where(test["prob_1"] >= decision["threshold"], "high risk", "low risk")).all()
    metrics = json.loads((youden_run / "test_metrics.json").read_text())
    assert metrics["threshold"] == decision["threshold"]
    assert metrics["tp"] + metrics["fn"] == int((test["label"] == 1).sum())
    assert "## Decision rule" in (youden_run / "report.md").read_text()

    assert main(["predict", f"run={youden_run}", f"input={tiny_task['test']}", f"output={tmp_path / 'p.csv'}"]) == 0
    predicted = pd.read_csv(tmp_path / "p.csv", dtype={"prediction": str})
    assert predicted["call"].tolist() == test["call"].tolist()
    assert main(["evaluate", f"run={youden_run}", f"data.test={tiny_task['test']}", f"output={tmp_path / 'e.json'}"]) == 0
    evaluated = json.loads((tmp_path / "e.json").read_text())
    assert {k: evaluated[k] for k in ("threshold", "tp", "fp", "tn", "fn")} == {k: metrics[k] for k in ("threshold", "tp", "fp", "tn", "fn")}


def test_the_service_answers_the_call_and_shows_the_rule(youden_run, tiny_task):
    from fastapi.testclient import TestClient

    from biolm.service import create_app

    sequences = pd.read_csv(tiny_task["test"])["sequence"].tolist()[:8]
    run = api.load_run(youden_run)
    expected = api.predict(run, sequences)
    with TestClient(create_app(run)) as client:
        body = client.post("/v1/predict", json={"sequences": sequences}).json()
        card = client.get("/v1/model").json()
    assert [p["call"] for p in body["predictions"]] == expected["call"].tolist()
    assert [p["prediction"] for p in body["predictions"]] == expected["prediction"].tolist()
    assert card["decision"]["threshold"] == run.objective.decision.threshold
    assert card["decision"]["bands"]["names"] == ["low risk", "high risk"]


def test_export_keeps_the_rule(youden_run, tmp_path):
    assert main(["export", f"run={youden_run}", f"out={tmp_path / 'hf'}"]) == 0
    card = (tmp_path / "hf" / "README.md").read_text()
    assert "## Decision rule" in card
    assert (tmp_path / "hf" / "biolm" / "decision.json").exists()
    exported = api.load_run(tmp_path / "hf" / "biolm")
    assert exported.objective.decision == api.load_run(youden_run).objective.decision


def test_non_binary_runs_refuse_a_threshold(tiny_task, tiny_model_overrides, tmp_path, capsys):
    code = main([
        "finetune", f"data.train={tiny_task['train']}", f"data.val={tiny_task['dev']}", f"data.test={tiny_task['test']}",
        "tokenizer=kmer3", "model=bert_tiny", "task=multiclass", f"output_dir={tmp_path}", *tiny_model_overrides, "+task.threshold=youden",
    ])
    assert code == 2
    assert "only binary runs" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        (["task.threshold=median"], "task.threshold"),
        (["task.threshold=0.3", "task.bands={names:[low,mid,high],cutoffs:[0.4,threshold]}"], "strictly ascending"),
        (["task.threshold=youden", "data.val=ONE_CLASS"], "one class only"),
    ],
)
def test_bad_settings_are_refused_before_training(tiny_task, tiny_model_overrides, tmp_path, capsys, overrides, words):
    one_class = tmp_path / "val_one_class.csv"
    frame = pd.read_csv(tiny_task["dev"])
    frame[frame["label"] == 0].to_csv(one_class, index=False)
    overrides = [o.replace("ONE_CLASS", str(one_class)) for o in overrides]
    out = tmp_path / "runs"
    code = main([
        "finetune", f"data.train={tiny_task['train']}", f"data.val={tiny_task['dev']}", f"data.test={tiny_task['test']}",
        "tokenizer=kmer3", "model=bert_tiny", "task=binary", f"output_dir={out}", *tiny_model_overrides, *overrides,
    ])
    assert code == 2
    assert words in capsys.readouterr().err
    assert not out.exists() or not any(out.iterdir())


def test_a_fixed_threshold_with_bands_and_an_old_run_without_decision_file(tiny_task, tiny_model_overrides, tmp_path):
    # a fixed threshold above 0.5 with a cut-off below it is valid (the pre-check knows the number)
    assert main([
        "finetune", f"data.train={tiny_task['train']}", f"data.val={tiny_task['dev']}", f"data.test={tiny_task['test']}",
        "tokenizer=kmer3", "model=bert_tiny", "task=binary", f"output_dir={tmp_path}", "run_name=fixed", *tiny_model_overrides,
        "task.threshold=0.9", "task.bands={names:[low,mid,high],cutoffs:[0.7,threshold]}",
    ]) == 0
    run = tmp_path / "fixed"
    assert json.loads((run / "decision.json").read_text())["bands"]["cutoffs"] == [0.7, 0.9]
    # a run written before decision.json existed predicts at 0.5, without a call column, and its report says so
    (run / "decision.json").unlink()
    loaded = api.load_run(run)
    assert loaded.objective.decision == Decision()
    table = api.predict(loaded, pd.read_csv(tiny_task["test"])["sequence"].tolist()[:4])
    assert "call" not in table and (table["prediction"] == np.where(table["prob_1"] >= 0.5, "1", "0")).all()
    assert main(["report", f"run={run}"]) == 0
    assert "Decision threshold: **0.5**" in (run / "report.md").read_text()

"""DNA token classification: known-answer metrics and loss, per-base <-> per-token through each
tokenizer's geometry, predicted segments that round-trip to BED, and a run end to end."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef, precision_recall_fscore_support

from biolm.cli import main
from biolm.data.base_labels import encode_bases, read_base_labels, runs_of
from biolm.data.io import write_table
from biolm.tasks.token_classification import IGNORE, TokenClassification
from biolm.tokenizers import CharTokenizer, KmerTokenizer

CLASSES = ["a", "b", "c"]


def _objective(classes=CLASSES) -> TokenClassification:
    return TokenClassification.fit_classes(set(classes))


def test_metrics_over_real_tokens_match_scikit_learn():
    rng = np.random.default_rng(0)
    logits = torch.tensor(rng.normal(size=(4, 7, 3)), dtype=torch.float32)
    targets = torch.tensor(rng.integers(0, 3, size=(4, 7)))
    targets[:, 0] = IGNORE  # [CLS]
    targets[2:, 5:] = IGNORE  # padding
    objective = _objective()
    metrics = objective.metrics("test set")
    objective.update_metrics(metrics, logits, targets)
    got = {k: float(v) for k, v in metrics.compute().items()}
    keep = targets != IGNORE
    y, p = targets[keep].numpy(), logits.argmax(-1)[keep].numpy()
    assert got["accuracy"] == pytest.approx(accuracy_score(y, p))
    assert got["mcc"] == pytest.approx(matthews_corrcoef(y, p), abs=1e-6)
    assert got["macro_f1"] == pytest.approx(f1_score(y, p, average="macro"), abs=1e-6)
    precision, recall, f1, _ = precision_recall_fscore_support(y, p, labels=[0, 1, 2], zero_division=np.nan)
    for j, name in enumerate(CLASSES):
        assert got[f"precision_{name}"] == pytest.approx(precision[j], abs=1e-6)
        assert got[f"recall_{name}"] == pytest.approx(recall[j], abs=1e-6)
        assert got[f"f1_{name}"] == pytest.approx(f1[j], abs=1e-6)


def test_a_class_never_predicted_has_undefined_precision():
    objective = _objective(["x", "y"])
    metrics = objective.metrics()
    logits = torch.tensor([[[5.0, 0.0], [5.0, 0.0], [5.0, 0.0]]])  # always "x"
    objective.update_metrics(metrics, logits, torch.tensor([[0, 1, 0]]))
    got = metrics.compute()
    assert torch.isnan(got["precision_y"]) and float(got["recall_y"]) == 0.0 and float(got["precision_x"]) == pytest.approx(2 / 3)
    assert any("never predicted" in note for note in metrics["per_class"].notes)


def test_loss_is_cross_entropy_over_real_tokens_only():
    logits = torch.randn(2, 5, 3)
    targets = torch.tensor([[IGNORE, 0, 2, 1, IGNORE], [IGNORE, 1, 1, IGNORE, IGNORE]])
    keep = targets != IGNORE
    expected = F.cross_entropy(logits[keep], targets[keep])
    assert float(_objective().loss(logits, targets)) == pytest.approx(float(expected), rel=1e-6)


TRUTH = "aaabbbbbbcccaaa"  # boundaries on multiples of 3, constant ends


@pytest.mark.parametrize(
    "tokenizer",
    [CharTokenizer(), KmerTokenizer(k=3, stride=3), KmerTokenizer(k=3, stride=1)],
    ids=["char", "3-mer stride 3", "3-mer stride 1"],
)
def test_one_hot_token_predictions_give_back_the_base_labels(tokenizer):
    objective = _objective()
    sequence = "ACGTACGTACGTACG"
    bases = encode_bases(runs_of(TRUTH), CLASSES, "s")
    token_targets = objective.token_targets(tokenizer, sequence, bases)
    ids = tokenizer.encode_batch([sequence])[0]
    assert len(token_targets) == len(ids) and token_targets[0] == IGNORE and token_targets[-1] == IGNORE
    probs = np.zeros((len(ids), 3), dtype=np.float32)
    real = token_targets != IGNORE
    probs[np.flatnonzero(real), token_targets[real]] = 1.0
    per_base = objective.base_probabilities(tokenizer, sequence, probs)
    assert per_base.argmax(axis=1).tolist() == bases.tolist()
    segments = objective.segments("s", per_base)
    assert [(start, end, label) for _, start, end, label, _ in segments] == runs_of(TRUTH)


def test_predicted_segments_round_trip_through_bed(tmp_path):
    objective = _objective()
    bases = encode_bases(runs_of(TRUTH), CLASSES, "s")
    probs = np.eye(3, dtype=np.float32)[bases]
    frame = objective.to_frame(["s"], [probs])
    assert list(frame.columns) == ["id", "start", "end", "label", "mean_prob"]
    write_table(frame, str(tmp_path / "p.bed"))
    (tmp_path / "s.fa").write_text(">s\n" + "A" * len(TRUTH) + "\n")
    again = read_base_labels(str(tmp_path / "s.fa"), field_name="input", bed=str(tmp_path / "p.bed"), background="none")
    assert again.runs == [runs_of(TRUTH)]


@pytest.fixture(scope="module")
def token_files(tmp_path_factory):
    """Synthetic but learnable: 'gene' bases are G/C rich, 'intergenic' A/T rich; FASTA + BED."""
    rng = np.random.default_rng(1)
    root = tmp_path_factory.mktemp("token_task")
    paths = {}
    for split, n in (("train", 64), ("val", 16), ("test", 16)):
        fasta, bed = [], []
        for i in range(n):
            start = int(rng.integers(10, 40))
            end = start + int(rng.integers(10, 30))
            seq = "".join(rng.choice(list("GGCCA" if start <= j < end else "AATTC")) for j in range(80))
            fasta += [f">{split}{i}", seq]
            bed.append(f"{split}{i}\t{start}\t{end}\tgene")
        (root / f"{split}.fa").write_text("\n".join(fasta) + "\n")
        (root / f"{split}.bed").write_text("\n".join(bed) + "\n")
        paths[split] = root / f"{split}.fa"
        paths[f"{split}_bed"] = root / f"{split}.bed"
    return paths


def test_token_classification_trains_predicts_and_writes_bed(token_files, tmp_path):
    data = [f"data.{key}={path}" for key, path in token_files.items()]
    args = ["finetune", "task=token_classification", *data, "data.background=intergenic", "tokenizer=char", "model=cnn_dilated",
            "trainer.max_epochs=4", "trainer.accelerator=cpu", "progress_bar=false", "optim.lr=3e-3", f"output_dir={tmp_path}", "run_name=tok"]
    assert main(args) == 0
    run = tmp_path / "tok"

    metrics = json.loads((run / "test_metrics.json").read_text())
    assert metrics["f1_gene"] > 0.8 and metrics["f1_intergenic"] > 0.8 and metrics["mcc"] > 0.6
    segments = pd.read_csv(run / "test_segments.tsv", sep="\t")
    assert set(segments.label) <= {"gene", "intergenic"} and (segments.end > segments.start).all()
    assert main(["predict", f"run={run}", f"input={token_files['test']}", f"output={tmp_path / 'p.bed'}"]) == 0
    predicted = read_base_labels(str(token_files["test"]), field_name="input", bed=str(tmp_path / "p.bed"), background="?")
    assert all(runs[-1][1] == 80 for runs in predicted.runs)  # every base predicted
    assert (run / "report.md").exists()
    out = tmp_path / "eval.json"
    assert main(["evaluate", f"run={run}", f"data.test={token_files['test']}", f"data.test_bed={token_files['test_bed']}", f"output={out}"]) == 0
    again = json.loads(out.read_text())
    assert again["n"] == 16 and again["mcc"] == pytest.approx(metrics["mcc"], abs=1e-6)
    assert main(["serve", f"run={run}", "port=0"]) == 2  # one line: the service answers per sequence

"""Attributions: token -> base geometry, analytic answers on a linear model, and a known-answer task
(an implanted motif the attributions must find)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from biolm.data.io import SequenceRecords, read_records
from biolm.data.labels import LabelSpec
from biolm.errors import BiolmError
from biolm.interpret.attributions import attribute, load_attributions, write_attributions
from biolm.models.heads import SequenceHead, SequenceModel
from biolm.runs import Run, load_run
from biolm.tokenizers.bpe import BpeTokenizer
from biolm.tokenizers.char import CharTokenizer
from biolm.tokenizers.geometry import base_scores
from biolm.tokenizers.kmer import KmerTokenizer

pytest.importorskip("captum")


def records_of(sequences: list[str]) -> SequenceRecords:
    return SequenceRecords("test", [f"s{i}" for i in range(len(sequences))], sequences, None, list(range(1, len(sequences) + 1)), "line")


# --- token -> base geometry ---------------------------------------------------------------------------------


def test_char_tokens_map_one_to_one():
    tok = CharTokenizer()
    spans = tok.token_spans("ACGTA")  # [CLS] A C G T A [SEP]
    scores = np.array([100.0, 1, 2, 3, 4, 5, 100])
    assert base_scores(spans, scores, 5).tolist() == [1, 2, 3, 4, 5]


def test_overlapping_kmers_share_their_score_among_their_bases():
    tok = KmerTokenizer(k=3, stride=1)
    spans = tok.token_spans("ACGTA")  # [CLS] ACG CGT GTA [SEP]
    out = base_scores(spans, np.array([50.0, 3, 6, 9, 50]), 5)
    # base 0: ACG/3; base 1: ACG/3 + CGT/3; base 2: all three; base 3: CGT/3 + GTA/3; base 4: GTA/3
    assert out.tolist() == pytest.approx([1, 3, 6, 5, 3])
    assert out.sum() == pytest.approx(18)  # conserved: the non-special tokens' total


def test_strided_kmers_leave_the_uncovered_tail_at_zero():
    tok = KmerTokenizer(k=3, stride=3)
    spans = tok.token_spans("ACGTACGT")  # ACG TAC, then GT in no token
    out = base_scores(spans, np.array([0.0, 3, 6, 0]), 8)
    assert out.tolist() == pytest.approx([1, 1, 1, 2, 2, 2, 0, 0])


def test_bpe_tokens_spread_over_their_runs_of_bases():
    tok = BpeTokenizer.train(["ACGTTGCA" * 40, "AACCGGTT" * 40], vocab_size=24)
    sequence = "ACGTTGCAAACCGGTT"
    spans = tok.token_spans(sequence)
    real = spans[:, 1] > spans[:, 0]
    token_scores = np.arange(len(spans), dtype=float) + 1
    out = base_scores(spans, token_scores, len(sequence))
    assert out.sum() == pytest.approx(token_scores[real].sum())
    for (start, end), score in zip(spans[real], token_scores[real]):  # BPE tokens do not overlap: each base one share
        assert out[start:end] == pytest.approx(np.full(end - start, score / (end - start)))


def test_base_scores_refuses_mismatched_lengths():
    with pytest.raises(BiolmError, match="3 scores for 2 tokens"):
        base_scores(np.array([[0, 1], [1, 2]]), np.zeros(3), 2)


# --- analytic answers on a linear model ---------------------------------------------------------------------


class EmbeddingTrunk(nn.Module):
    """Token embedding only: `(B, L)` -> `(B, L, D)`; with a mean-pooling linear head the model is linear."""

    def __init__(self, vocab_size: int, width: int):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, width)
        self.hidden_size = width
        self.max_tokens = 64

    def forward(self, input_ids, attention_mask):
        return self.embedding(input_ids)


@pytest.fixture(scope="module")
def linear_run() -> Run:
    torch.manual_seed(0)
    tok = CharTokenizer()
    model = SequenceModel(EmbeddingTrunk(tok.vocab_size, 6), SequenceHead(6, 1, pooling="mean", dropout=0.0)).eval()
    return Run(Path("."), OmegaConf.create({"data": {}}), tok, LabelSpec("binary", ["0", "1"]), model)


def _analytic(run: Run, sequence: str) -> tuple[np.ndarray, np.ndarray, float]:
    """Per-base ``E[x] . w / n`` and the unknown letter's ``E[N] . w / n`` (n: tokens incl. specials), and the bias."""
    emb = run.model.trunk.embedding.weight.detach().double().numpy()
    w = run.model.head.out.weight.detach().double().numpy()[0]
    ids = run.tokenizer.encode(sequence)
    per_token = emb[ids] @ w / len(ids)
    n_value = emb[run.tokenizer.vocab["N"]] @ w / len(ids)
    return per_token[1:-1], np.full(len(sequence), n_value), float(run.model.head.out.bias.detach())


def test_saliency_and_integrated_gradients_equal_the_analytic_answer(linear_run):
    sequence = "ACGTTGCAAC"
    x_dot_w, n_dot_w, _ = _analytic(linear_run, sequence)
    saliency = attribute(linear_run, records_of([sequence]), method="saliency")
    assert saliency.scores[0] == pytest.approx(x_dot_w, abs=1e-5)  # gradient x input: E[x].w/n
    ig = attribute(linear_run, records_of([sequence]), method="integrated_gradients", baseline="N", steps=8)
    assert ig.scores[0] == pytest.approx(x_dot_w - n_dot_w, abs=1e-5)  # (E[x] - E[N]).w/n, exact for a linear model
    dls = attribute(linear_run, records_of([sequence]), method="deeplift_shap", baseline="N")
    assert dls.scores[0] == pytest.approx(ig.scores[0], abs=1e-5)
    assert dls.settings["convergence_delta"] == pytest.approx(0, abs=1e-5)


def test_ism_equals_the_analytic_mutation_effects(linear_run):
    sequence = "ACGTTGCAAC"
    emb = linear_run.model.trunk.embedding.weight.detach().double().numpy()
    w = linear_run.model.head.out.weight.detach().double().numpy()[0]
    n = len(sequence) + 2
    letter_value = {b: emb[linear_run.tokenizer.vocab[b]] @ w / n for b in "ACGT"}
    ism = attribute(linear_run, records_of([sequence]), method="ism")
    expected_hyp = np.array([[letter_value[b] - np.mean(list(letter_value.values())) for b in "ACGT"] for _ in sequence])
    assert ism.hypothetical[0] == pytest.approx(expected_hyp, abs=1e-5)  # the reference letter does not matter: linear
    expected = [letter_value[ref] - np.mean(list(letter_value.values())) for ref in sequence]
    assert ism.scores[0] == pytest.approx(expected, abs=1e-5)
    assert ism.letters == "ACGT"


def test_integrated_gradients_with_shuffles_sum_to_the_output_difference(linear_run):
    sequence = "AACCGGTTAC"
    ig = attribute(linear_run, records_of([sequence]), method="integrated_gradients", baseline="shuffle", n_baselines=3)
    # a shuffle keeps the composition, and a mean-pooled linear model only sees the composition
    assert ig.scores[0].sum() == pytest.approx(0.0, abs=1e-5)


def test_bad_requests_are_one_line_errors(linear_run):
    with pytest.raises(BiolmError, match="accepted: ism, saliency"):
        attribute(linear_run, records_of(["ACGT"]), method="gradcam")
    with pytest.raises(BiolmError, match="positive class '1'"):
        attribute(linear_run, records_of(["ACGT"]), method="saliency", target="0")
    with pytest.raises(BiolmError, match="test line 1 .s0. is 102 tokens, the model reads at most 64"):
        attribute(linear_run, records_of(["A" * 100]), method="saliency")


def test_saved_attributions_round_trip(linear_run, tmp_path):
    ism = attribute(linear_run, records_of(["ACGTTGCAAC", "GGGAAATTTCCC"]), method="ism")
    folder = write_attributions(ism, tmp_path / "attr", window_bp=4, top_k=1)
    back = load_attributions(folder)
    assert back.ids == ism.ids and back.sequences == ism.sequences and back.method == "ism"
    for a, b in zip(back.scores, ism.scores):
        assert a == pytest.approx(b)
    assert back.hypothetical[1].shape == (12, 4)
    assert len(list((folder / "logos").glob("*.png"))) == 1
    assert "| 1 |" in (folder / "report.md").read_text()


# --- the known answer: an implanted motif ---------------------------------------------------------------------

MOTIF = "GGGACTTTCC"  # NF-kB site


def _synthetic(path: Path, n: int, rng: np.random.Generator, length: int = 80) -> list[tuple[str, int, int]]:
    """Random background; half the rows carry MOTIF at a random position (label 1). Returns (sequence, label, motif start)."""
    rows = []
    for i in range(n):
        seq = "".join(rng.choice(list("ACGT"), size=length))
        label, start = i % 2, -1
        if label:
            start = int(rng.integers(0, length - len(MOTIF)))
            seq = seq[:start] + MOTIF + seq[start + len(MOTIF) :]
        rows.append((seq, label, start))
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "sequence", "label"])
        writer.writerows((f"r{i}", s, label) for i, (s, label, _) in enumerate(rows))
    return rows


@pytest.mark.slow
def test_attributions_find_an_implanted_motif(tmp_path):
    """A one-hot CNN trained briefly on the synthetic task: the top 10 bp window of every positive test
    sequence overlaps the implanted motif in >= 90% of them, for ISM and integrated gradients."""
    from biolm.cli import main

    rng = np.random.default_rng(7)
    paths = {split: tmp_path / f"{split}.csv" for split in ("train", "dev", "test")}
    _synthetic(paths["train"], 800, rng)
    _synthetic(paths["dev"], 100, rng)
    test_rows = _synthetic(paths["test"], 80, rng)
    code = main([
        "finetune", f"data.train={paths['train']}", f"data.val={paths['dev']}", f"data.test={paths['test']}", "model=cnn", "task=binary",
        "model.trunk.channels=32", "trainer.max_epochs=5", "optim.lr=3e-3", "trainer.accelerator=cpu", "progress_bar=false", f"output_dir={tmp_path}", "run_name=motif",
    ])
    assert code == 0
    run = load_run(tmp_path / "motif")
    positives = [i for i, (_, label, _) in enumerate(test_rows) if label]
    records = read_records(str(paths["test"]), field_name="input", sequence_column="sequence", label_column=None, id_column="id").subset(positives)
    for method in ("ism", "integrated_gradients"):
        found = attribute(run, records, method=method, n_baselines=4, steps=16)
        windows = found.top_windows(10)
        starts = np.array([test_rows[i][2] for i in positives])
        overlap = (windows[:, 0] < starts + len(MOTIF)) & (windows[:, 1] > starts)
        assert overlap.mean() >= 0.9, f"{method}: top window on the motif in {overlap.mean():.0%} of positives"
    code = main(["interpret", f"run={tmp_path / 'motif'}", f"input={paths['test']}", f"output={tmp_path / 'attr'}", "method=saliency", "top_k=2"])
    assert code == 0
    assert (tmp_path / "attr" / "summary.csv").is_file() and len(list((tmp_path / "attr" / "logos").glob("*.png"))) == 2


def test_cli_refuses_an_unknown_method(tiny_binary_run, tiny_task, capsys):
    from biolm.cli import main

    code = main(["interpret", f"run={tiny_binary_run}", f"input={tiny_task['test']}", "output=/tmp/never", "method=gradcam"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "method='gradcam': unknown" in err[0]

"""Attributions: token -> base geometry, analytic answers on a linear model (every objective, char, k-mer and
BPE tokenizers, LoRA on the embedding, windows and reverse-complement averaging), DeepLIFT-SHAP on the
one-hot CNN, the saved folder, and a known-answer task (an implanted motif the attributions must find)."""

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
from biolm.interpret.attributions import _shuffled, _unknown_baseline, attribute, token_embedding_layer
from biolm.interpret.outputs import load_attributions, write_attributions
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
    ism = attribute(linear_run, SequenceRecords("t", ["é id", "s1"], ["ACGTTGCAAC", "GGGAAATTTCCCN"], None, [1, 2], "line"), method="ism")
    folder = write_attributions(ism, tmp_path / "attr", window_bp=4, top_k=1)
    back = load_attributions(folder)
    assert back.ids == ism.ids and back.sequences == ism.sequences and back.method == "ism" and back.baseline is None
    assert back.target == ism.target == ["1", "1"] and back.letters == "ACGT"
    assert back.output == pytest.approx(ism.output) and back.settings == ism.settings and back.settings["run"] == str(Path(".").resolve())
    for a, b, ha, hb in zip(back.scores, ism.scores, back.hypothetical, ism.hypothetical):
        assert a == pytest.approx(b) and ha == pytest.approx(hb)
    assert back.hypothetical[1].shape == (13, 4)
    assert len(list((folder / "logos").glob("*.png"))) == 1
    assert "| 1 |" in (folder / "report.md").read_text()
    # a second write replaces the folder whole: no logo of the earlier run stays
    write_attributions(ism, folder, window_bp=4, top_k=0)
    assert not (folder / "logos").exists() and load_attributions(folder).ids == ism.ids
    with pytest.raises(BiolmError, match="window_bp=0"):
        write_attributions(ism, tmp_path / "never", window_bp=0)
    with pytest.raises(BiolmError, match="top_k=-1"):
        write_attributions(ism, tmp_path / "never", top_k=-1)
    assert not (tmp_path / "never").exists()


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


# --- every objective, tokenizer and adapter on a linear model ---------------------------------------------------


def linear_run_of(tok, labels: LabelSpec | None = None, outputs: int = 1, cfg: dict | None = None, max_tokens: int = 64) -> Run:
    torch.manual_seed(0)
    trunk = EmbeddingTrunk(tok.vocab_size, 6)
    trunk.max_tokens = max_tokens
    model = SequenceModel(trunk, SequenceHead(6, outputs, pooling="mean", dropout=0.0)).eval()
    return Run(Path("."), OmegaConf.create(cfg or {"data": {}}), tok, labels or LabelSpec("binary", ["0", "1"]), model)


def logits_of(run: Run, ids: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        ids = torch.as_tensor(ids)[None]
        return run.model(ids, torch.ones_like(ids)).logits[0].double().numpy()


def test_lora_on_the_embedding_is_inside_the_hooked_output():
    from peft import LoraConfig, inject_adapter_in_model

    tok = CharTokenizer()
    run = linear_run_of(tok)
    inject_adapter_in_model(LoraConfig(r=2, lora_alpha=4, target_modules=["embedding"]), run.model)
    for name, param in run.model.named_parameters():
        if "lora_embedding" in name:  # peft starts LoRA at zero; give the adapter a delta to attribute
            torch.nn.init.normal_(param, std=0.5)
    layer = token_embedding_layer(run.model)
    assert type(layer).__module__.startswith("peft") and layer is run.model.trunk.embedding
    sequence = "ACGTTGCAAC"
    with torch.no_grad():
        adapted = layer(torch.arange(tok.vocab_size)).double().numpy()  # (V, D) base + LoRA delta
    assert not np.allclose(adapted, run.model.trunk.embedding.base_layer.weight.detach().numpy())
    w = run.model.head.out.weight.detach().double().numpy()[0]
    ids = tok.encode(sequence)
    expected = (adapted[ids[1:-1]] - adapted[tok.vocab["N"]]) @ w / len(ids)
    ig = attribute(run, records_of([sequence]), method="integrated_gradients", baseline="N", steps=8)
    assert ig.scores[0] == pytest.approx(expected, abs=1e-5)
    baseline = _unknown_baseline(tok, ids)
    assert ig.scores[0].sum() == pytest.approx(logits_of(run, ids)[0] - logits_of(run, baseline)[0], abs=1e-5)  # completeness


def test_regression_scores_and_output_are_on_the_label_scale():
    from biolm.prediction import predict

    tok = CharTokenizer()
    run = linear_run_of(tok, LabelSpec("regression", [], ";", 5.0, 2.0))
    sequence = "ACGTTGCAAC"
    ids = tok.encode(sequence)
    raw = logits_of(run, ids)[0]
    ig = attribute(run, records_of([sequence]), method="integrated_gradients", baseline="N", steps=8)
    assert ig.target == ["value"] and ig.output[0] == pytest.approx(raw * 2.0 + 5.0, abs=1e-5)
    assert ig.output[0] == pytest.approx(float(predict(run, [sequence])["prediction"][0]), abs=1e-5)  # what predict reports
    assert ig.scores[0].sum() == pytest.approx(2.0 * (raw - logits_of(run, _unknown_baseline(tok, ids))[0]), abs=1e-5)
    ism = attribute(run, records_of([sequence]), method="ism")
    mutant = sequence[:3] + "A" + sequence[4:]  # position 3 is T
    assert ism.hypothetical[0][3, 0] - ism.hypothetical[0][3, 3] == pytest.approx(2.0 * (logits_of(run, tok.encode(mutant))[0] - raw), abs=1e-5)
    with pytest.raises(BiolmError, match="regression run explains its one predicted value"):
        attribute(run, records_of([sequence]), method="saliency", target="1")


def test_multiclass_explains_the_target_or_each_sequences_top_class():
    tok = CharTokenizer()
    run = linear_run_of(tok, LabelSpec("multiclass", ["a", "b", "c"]), outputs=3)
    sequences = ["ACGTTGCAAC", "GGGGGGCCCC", "TTTTAAAATT"]
    top = [int(np.argmax(logits_of(run, tok.encode(s)))) for s in sequences]
    free = attribute(run, records_of(sequences), method="saliency")
    assert free.target == [["a", "b", "c"][j] for j in top]
    assert free.output == pytest.approx([logits_of(run, tok.encode(s))[j] for s, j in zip(sequences, top)], abs=1e-5)
    chosen = attribute(run, records_of(sequences), method="saliency", target="c")
    assert chosen.target == ["c"] * 3 and chosen.output == pytest.approx([logits_of(run, tok.encode(s))[2] for s in sequences], abs=1e-5)
    emb = run.model.trunk.embedding.weight.detach().double().numpy()
    w = run.model.head.out.weight.detach().double().numpy()[2]
    ids = tok.encode(sequences[0])
    assert chosen.scores[0] == pytest.approx(emb[ids[1:-1]] @ w / len(ids), abs=1e-5)
    with pytest.raises(BiolmError, match="target='d': not a class"):
        attribute(run, records_of(sequences), method="saliency", target="d")


def _kmer():
    return KmerTokenizer(k=3, stride=1)


def _bpe():
    return BpeTokenizer.train(["ACGTTGCA" * 40, "AACCGGTT" * 40, "ACGTACGTNN" * 20], vocab_size=40)


@pytest.mark.parametrize("make", [_kmer, _bpe], ids=["kmer3", "bpe"])
def test_kmer_and_bpe_tokenizers_give_one_score_per_base_and_conserve_the_sum(make):
    tok = make()
    run = linear_run_of(tok)
    sequences = ["ACGTTGCAAACCGGTT", "TTGCAACGTAC"]
    ig = attribute(run, records_of(sequences), method="integrated_gradients", baseline="N", steps=8)
    ism = attribute(run, records_of(sequences), method="ism")
    for sequence, ig_scores, ism_scores, hyp in zip(sequences, ig.scores, ism.scores, ism.hypothetical):
        assert len(ig_scores) == len(ism_scores) == len(sequence) and hyp.shape == (len(sequence), 4)
        ids = tok.encode(sequence)
        difference = logits_of(run, ids)[0] - logits_of(run, _unknown_baseline(tok, ids))[0]
        assert ig_scores.sum() == pytest.approx(difference, abs=1e-5)  # linear model, N baseline: IG is exact
    assert ig.settings["n_baselines"] == 1 and ig.settings["convergence_delta"] == pytest.approx(0, abs=1e-5)


def test_the_bpe_shuffle_fallback_keeps_the_token_count():
    tok = _bpe()
    sequence = "ACGTTGCAACGTTGCAAACCGGTT"
    ids = tok.encode(sequence)
    rng = np.random.default_rng(0)
    for _ in range(20):
        shuffled = _shuffled(tok, sequence, ids, rng)
        assert len(shuffled) == len(ids) and sorted(shuffled.tolist()) == sorted(ids.tolist())
        assert (shuffled[np.isin(ids, tok.special_ids)] == ids[np.isin(ids, tok.special_ids)]).all()


def test_ism_builds_mutants_in_batches_and_names_a_mutant_over_the_token_limit():
    tok = CharTokenizer()
    run = linear_run_of(tok)
    whole = attribute(run, records_of(["ACGTTGCAACNA"]), method="ism", batch_size=128)
    chunked = attribute(run, records_of(["ACGTTGCAACNA"]), method="ism", batch_size=2)
    assert chunked.hypothetical[0] == pytest.approx(whole.hypothetical[0], abs=1e-6)
    assert np.isfinite(whole.scores[0]).all() and whole.hypothetical[0].shape == (12, 4)
    assert whole.hypothetical[0][10].sum() == pytest.approx(0, abs=1e-6)  # the N base: all four letters are mutants
    bpe = _bpe()
    sequence = "ACGTTGCA" * 2
    bpe_run = linear_run_of(bpe, max_tokens=len(bpe.encode(sequence)))
    with pytest.raises(BiolmError, match=r"test line 1 \(s0\): the mutant .* tokens, the model reads at most"):
        attribute(bpe_run, records_of([sequence]), method="ism", batch_size=4)
    with pytest.raises(BiolmError, match="batch_size=0"):
        attribute(run, records_of(["ACGT"]), method="ism", batch_size=0)


def test_a_windowed_run_refuses_longer_sequences():
    run = linear_run_of(CharTokenizer(), cfg={"data": {"window_bp": 12}})
    with pytest.raises(BiolmError, match=r"test line 2 \(s1\) is 13 bp; .*data.window_bp=12.*windows of 12 bp"):
        attribute(run, records_of(["ACGTACGTACGT", "ACGTACGTACGTA"]), method="saliency")
    assert len(attribute(run, records_of(["ACGTACGTACGT"]), method="saliency").scores[0]) == 12


def test_rc_average_explains_the_mean_of_both_strands():
    from biolm.tokenizers.alphabet import DNA

    tok = CharTokenizer()
    run = linear_run_of(tok, cfg={"data": {}, "predict": {"rc_average": True}})
    sequence = "AACGTTTGCAG"
    reverse = DNA.reverse_complement(sequence)
    emb = run.model.trunk.embedding.weight.detach().double().numpy()
    w = run.model.head.out.weight.detach().double().numpy()[0]
    n = len(sequence) + 2
    value = {b: emb[tok.vocab[b]] @ w / n for b in "ACGTN"}
    ig = attribute(run, records_of([sequence]), method="integrated_gradients", baseline="N", steps=8)
    assert ig.settings["rc_average"] is True
    assert ig.output[0] == pytest.approx((logits_of(run, tok.encode(sequence))[0] + logits_of(run, tok.encode(reverse))[0]) / 2, abs=1e-5)
    complement = dict(zip("ACGT", "TGCA"))
    expected = [(value[b] + value[complement[b]]) / 2 - value["N"] for b in sequence]  # base i and its partner on the other strand
    assert ig.scores[0] == pytest.approx(expected, abs=1e-5)
    ism = attribute(run, records_of([sequence]), method="ism")
    mean = np.mean([value[b] for b in "ACGT"])
    row = [(value[b] + value[complement[b]]) / 2 - mean for b in "ACGT"]  # the same for every position: linear
    assert ism.hypothetical[0] == pytest.approx(np.tile(row, (len(sequence), 1)), abs=1e-5)


def test_deeplift_shap_on_the_one_hot_cnn_converges():
    from biolm.models.onehot_cnn import OneHotCnn

    tok = CharTokenizer()
    torch.manual_seed(0)
    trunk = OneHotCnn(tok.vocab_size, tok.pad_id, channels=8, kernel_sizes=[5, 3], pool_size=2, dropout=0.0, batch_norm=False)
    model = SequenceModel(trunk, SequenceHead(8, 1, pooling="mean", dropout=0.0)).eval()
    run = Run(Path("."), OmegaConf.create({"data": {}}), tok, LabelSpec("binary", ["0", "1"]), model)
    assert token_embedding_layer(model) is trunk.token_embedding
    rng = np.random.default_rng(0)
    sequences = ["".join(rng.choice(list("ACGT"), 40)) for _ in range(3)]
    for baseline in ("N", "shuffle"):
        found = attribute(run, records_of(sequences), method="deeplift_shap", baseline=baseline, n_baselines=4)
        # module ReLU and max pooling get the rescale rule: measured |delta| ~1e-8 against outputs ~0.1
        assert found.settings["convergence_delta"] < 1e-5
        assert all(len(s) == 40 for s in found.scores)


def test_cli_reads_target_as_a_class_name_and_refuses_bad_settings_before_work(tiny_binary_run, tiny_task, tmp_path, capsys):
    import json

    from biolm.cli import main

    out = tmp_path / "attr"
    assert main(["interpret", f"run={tiny_binary_run}", f"input={tiny_task['test']}", f"output={out}", "method=saliency", "target=1", "top_k=1"]) == 0
    assert set(load_attributions(out).target) == {"1"}
    assert json.loads((out / "attributions.json").read_text())["settings"]["run"] == str(tiny_binary_run)
    capsys.readouterr()
    for setting in ("window_bp=0", "top_k=-1", "batch_size=0"):
        never = tmp_path / f"never_{setting.split('=')[0]}"
        code = main(["interpret", f"run={tiny_binary_run}", f"input={tiny_task['test']}", f"output={never}", "method=saliency", setting])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and setting.split("=")[0] in err[0] and not never.exists()

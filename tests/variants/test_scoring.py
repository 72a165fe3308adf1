"""Variant scores: CLM antisymmetry, masked marginals by hand, supervised differences, batching, strands."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from biolm.api import predict
from biolm.data.genome import reverse_complement
from biolm.errors import BiolmError
from biolm.runs import load_language_model_run, load_run
from biolm.tokenizers import KmerTokenizer
from biolm.variants import score_variants
from biolm.variants.reference import Reference
from biolm.variants.scoring import _token_span, clm_log_likelihood
from biolm.variants.sequences import apply_alleles, variant_windows

WINDOW = 40


def _other(base: str) -> str:
    return "G" if base != "G" else "T"


@pytest.fixture
def snvs(chr1) -> pd.DataFrame:
    positions = [60, 101, 150, 233, 300]
    return pd.DataFrame({"chrom": "chr1", "pos": positions, "ref": [chr1[p - 1] for p in positions], "alt": [_other(chr1[p - 1]) for p in positions]})


def _manual_ll(run, seq: str) -> float:
    ids = torch.from_numpy(run.tokenizer.encode_batch([seq])[0]).unsqueeze(0)
    with torch.no_grad():
        logits = run.model(ids, torch.ones_like(ids, dtype=torch.bool)).logits
    return -float(torch.nn.functional.cross_entropy(logits[0, :-1], ids[0, 1:], reduction="sum"))


def test_clm_score_is_the_log_likelihood_difference(clm_run, reference_fasta, snvs):
    run = load_language_model_run(clm_run)
    ref = Reference(reference_fasta)
    scores = score_variants(run, snvs, ref, window_bp=WINDOW)
    windows = variant_windows(snvs, ref, WINDOW)
    expected = [_manual_ll(run, a) - _manual_ll(run, r) for r, a in zip(windows.ref, windows.alt)]
    np.testing.assert_allclose(scores["score"], expected, rtol=1e-5, atol=1e-4)
    assert set(scores["method"]) == {"clm_llr"} and set(scores["window_bp"]) == {WINDOW}


@pytest.mark.parametrize("pos, ref_len, alt", [(150, 1, "SNV"), (150, 3, "DEL"), (150, 1, "INS")])
def test_clm_score_of_the_reverse_variant_is_minus_the_score(clm_run, reference_fasta, chr1, tmp_path, pos, ref_len, alt):
    ref_allele = chr1[pos - 1 : pos - 1 + ref_len]
    alt_allele = {"SNV": _other(ref_allele), "DEL": ref_allele[0], "INS": ref_allele + "TTA"}[alt]
    edited, _ = apply_alleles(chr1, 0, [(pos, ref_allele, alt_allele)])
    other = tmp_path / "alt.fa"
    other.write_text(f">chr1\n{edited}\n")
    forward = score_variants(clm_run, [("chr1", pos, ref_allele, alt_allele)], reference_fasta, window_bp=WINDOW)["score"].iloc[0]
    backward = score_variants(clm_run, [("chr1", pos, alt_allele, ref_allele)], other, window_bp=WINDOW)["score"].iloc[0]
    assert forward != 0
    assert backward == pytest.approx(-forward, abs=1e-4)


def test_batched_equals_one_at_a_time(clm_run, mlm_kmer_run, reference_fasta, snvs):
    for run in (clm_run, mlm_kmer_run):
        batched = score_variants(run, snvs, reference_fasta, window_bp=WINDOW, batch_size=16)["score"]
        single = score_variants(run, snvs, reference_fasta, window_bp=WINDOW, batch_size=1)["score"]
        np.testing.assert_allclose(batched, single, rtol=1e-5, atol=1e-5)


def test_mlm_char_masked_marginal_by_hand(mlm_char_run, reference_fasta, snvs):
    run = load_language_model_run(mlm_char_run)
    ref = Reference(reference_fasta)
    scores = score_variants(run, snvs, ref, window_bp=WINDOW)["score"].to_numpy()
    windows = variant_windows(snvs, ref, WINDOW)
    tok = run.tokenizer
    for i, (r, a, offset) in enumerate(zip(windows.ref, windows.alt, windows.offset)):
        ids = torch.from_numpy(tok.encode_batch([r])[0]).unsqueeze(0)
        position = 1 + int(offset)  # [CLS] first
        masked = ids.clone()
        masked[0, position] = tok.mask_id
        with torch.no_grad():
            logp = torch.log_softmax(run.model(masked, torch.ones_like(ids, dtype=torch.bool)).logits[0, position], -1)
        expected = float(logp[tok.encode_batch([a])[0][position]] - logp[ids[0, position]])
        assert scores[i] == pytest.approx(expected, abs=1e-4)


def test_kmer_masking_covers_every_token_overlapping_the_variant():
    overlapping = KmerTokenizer(k=3, stride=1)
    assert _token_span(overlapping, 10, 1, 100) == (9, 12)  # k-mers starting at bases 8, 9, 10
    assert _token_span(overlapping, 0, 1, 100) == (1, 2)
    assert _token_span(overlapping, 10, 2, 100) == (9, 13)
    assert _token_span(KmerTokenizer(k=3, stride=3), 10, 1, 100) == (4, 5)  # the k-mer of bases 9..11


def test_mlm_indels_are_not_scored(mlm_kmer_run, reference_fasta, chr1):
    scores = score_variants(mlm_kmer_run, [("chr1", 100, chr1[99:102], chr1[99]), ("chr1", 120, chr1[119], _other(chr1[119]))], reference_fasta, WINDOW)
    assert np.isnan(scores["score"].iloc[0]) and "indel" in scores["note"].iloc[0]
    assert np.isfinite(scores["score"].iloc[1]) and set(scores["method"]) == {"mlm_masked_marginal"}


def test_supervised_score_is_the_prediction_difference(classifier_run, reference_fasta, snvs):
    run = load_run(classifier_run)
    ref = Reference(reference_fasta)
    plus = variant_windows(snvs, ref, WINDOW, "+")
    minus = variant_windows(snvs, ref, WINDOW, "-")

    def diff(windows):
        return (predict(run, windows.alt)["prob_pathogenic"] - predict(run, windows.ref)["prob_pathogenic"]).to_numpy()

    scores = score_variants(run, snvs, ref, WINDOW)
    np.testing.assert_allclose(scores["score"], diff(plus), atol=1e-6)
    averaged = score_variants(run, snvs, ref, WINDOW, rc_average=True)
    np.testing.assert_allclose(averaged["score"], (diff(plus) + diff(minus)) / 2, atol=1e-6)
    assert set(scores["method"]) == {"supervised_diff"} and set(averaged["strand"]) == {"both"}


def test_minus_strand_scores_reverse_complemented_windows(clm_run, reference_fasta, snvs):
    run = load_language_model_run(clm_run)
    ref = Reference(reference_fasta)
    minus = score_variants(run, snvs, ref, WINDOW, strand="-")["score"].to_numpy()
    plus_windows = variant_windows(snvs, ref, WINDOW, "+")
    rc_alt = clm_log_likelihood(run, [reverse_complement(s) for s in plus_windows.alt])
    rc_ref = clm_log_likelihood(run, [reverse_complement(s) for s in plus_windows.ref])
    np.testing.assert_allclose(minus, rc_alt - rc_ref, atol=1e-4)


def test_ref_mismatch_error_or_skip(clm_run, reference_fasta, chr1):
    wrong = _other(chr1[49]) if _other(chr1[49]) != chr1[49] else "A"
    variants = [("chr1", 50, wrong, "A" if wrong != "A" else "C"), ("chr1", 80, chr1[79], _other(chr1[79]))]
    with pytest.raises(BiolmError, match="does not match the reference"):
        score_variants(clm_run, variants, reference_fasta, WINDOW)
    scores = score_variants(clm_run, variants, reference_fasta, WINDOW, on_ref_mismatch="skip")
    assert np.isnan(scores["score"].iloc[0]) and scores["note"].iloc[0] == "ref_mismatch_or_outside_reference"
    assert np.isfinite(scores["score"].iloc[1])


def test_bad_inputs(clm_run, reference_fasta, tmp_path, chr1):
    with pytest.raises(BiolmError, match="missing column"):
        score_variants(clm_run, pd.DataFrame({"chrom": ["chr1"], "pos": [5]}), reference_fasta)
    with pytest.raises(BiolmError, match="not A/C/G/T/N"):
        score_variants(clm_run, [("chr1", 5, "A", "<DEL>")], reference_fasta)
    with pytest.raises(BiolmError, match="exceed the model's limit"):
        score_variants(clm_run, [("chr1", 200, chr1[199], "N")], reference_fasta, window_bp=300)
    with pytest.raises(BiolmError, match="no run folder"):
        score_variants(tmp_path / "nothing", [("chr1", 5, "A", "C")], reference_fasta)


@pytest.mark.parametrize("strand", ["+", "-"])
def test_mlm_kmer_masked_marginal_by_hand(mlm_kmer_run, reference_fasta, snvs, strand):
    run = load_language_model_run(mlm_kmer_run)
    ref = Reference(reference_fasta)
    scores = score_variants(run, snvs, ref, window_bp=WINDOW, strand=strand)["score"].to_numpy()
    windows = variant_windows(snvs, ref, WINDOW, strand)
    tok = run.tokenizer  # 3-mers, stride 1: the 3 k-mers holding the variant base are masked together
    for i, (r, a) in enumerate(zip(windows.ref, windows.alt)):
        base = next(j for j in range(WINDOW) if r[j] != a[j])
        positions = [1 + start for start in range(base - 2, base + 1) if 0 <= start <= WINDOW - 3]
        ids = torch.from_numpy(tok.encode_batch([r])[0]).unsqueeze(0)
        alt_ids = tok.encode_batch([a])[0]
        masked = ids.clone()
        masked[0, positions] = tok.mask_id
        with torch.no_grad():
            logp = torch.log_softmax(run.model(masked, torch.ones_like(ids, dtype=torch.bool)).logits[0], -1)
        expected = sum(float(logp[p, alt_ids[p]] - logp[p, ids[0, p]]) for p in positions)
        assert scores[i] == pytest.approx(expected, abs=1e-4)

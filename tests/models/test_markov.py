"""Order-k Markov baseline: known entropy rates, N handling, chunking, the E. coli reference number."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from biolm.data.genome import load_genome, split_genome
from biolm.errors import BiolmError
from biolm.models import markov
from biolm.models.markov import MarkovChain

ECOLI = Path(__file__).resolve().parents[2] / "data" / "genomes" / "ecoli_k12_mg1655.fa.gz"
BASES = np.frombuffer(b"ACGT", dtype=np.uint8)


def order1_chain(transition: np.ndarray, n: int, seed: int) -> np.ndarray:
    """n bases (uint8 ASCII) from a first-order chain with the given 4x4 transition matrix."""
    rng = np.random.default_rng(seed)
    cumulative = np.cumsum(transition, axis=1)
    uniform = rng.random(n)
    state, codes = 0, np.empty(n, dtype=np.int64)
    for t in range(n):
        state = int(np.searchsorted(cumulative[state], uniform[t], side="right"))
        codes[t] = state
    return BASES[codes]


def test_order1_fit_approaches_the_entropy_rate():
    transition = np.array([[0.7, 0.1, 0.1, 0.1], [0.25, 0.25, 0.25, 0.25], [0.05, 0.05, 0.45, 0.45], [0.4, 0.4, 0.1, 0.1]])
    eigvals, eigvecs = np.linalg.eig(transition.T)
    stationary = np.real(eigvecs[:, np.argmax(np.real(eigvals))])
    stationary /= stationary.sum()
    entropy_rate = float(-(stationary[:, None] * transition * np.log2(transition)).sum())
    model = MarkovChain(order=1).fit([order1_chain(transition, 60_000, seed=0)])
    assert model.bits_per_base([order1_chain(transition, 30_000, seed=1)]) == pytest.approx(entropy_rate, abs=0.02)
    assert np.allclose(2 ** model.log2_probs(), transition, atol=0.03)


def test_order0_on_uniform_dna_is_two_bits():
    rng = np.random.default_rng(0)
    model = MarkovChain(order=0).fit([BASES[rng.integers(0, 4, 100_000)]])
    assert model.counts.shape == (1, 4)
    assert model.bits_per_base([BASES[rng.integers(0, 4, 100_000)]]) == pytest.approx(2.0, abs=0.002)


def test_counts_match_brute_force_and_skip_n():
    seq = "ACGTNACGGTacgtTTN"
    model = MarkovChain(order=2, pseudocount=0.5).fit(seq)
    upper = seq.upper()
    expected = Counter(upper[t - 2 : t + 1] for t in range(2, len(upper)) if "N" not in upper[t - 2 : t + 1])
    index = {a + b + c: (("ACGT".index(a) * 4 + "ACGT".index(b)) * 4 + "ACGT".index(c)) for a in "ACGT" for b in "ACGT" for c in "ACGT"}
    found = {kmer: int(model.counts.reshape(-1)[i]) for kmer, i in index.items() if model.counts.reshape(-1)[i]}
    assert found == dict(expected)
    # Strings, arrays, lower case and repeated fits agree.
    twice = MarkovChain(order=2).fit([seq.lower()]).fit([np.frombuffer(seq.encode(), dtype=np.uint8)])
    assert np.array_equal(twice.counts, 2 * model.counts)


def test_chunked_counting_equals_one_pass(monkeypatch):
    seq = BASES[np.random.default_rng(3).integers(0, 4, 5000)]
    whole = MarkovChain(order=3).fit([seq])
    monkeypatch.setattr(markov, "_CHUNK_BP", 97)
    chunked = MarkovChain(order=3).fit([seq])
    assert np.array_equal(whole.counts, chunked.counts)
    assert chunked.bits_per_base([seq]) == pytest.approx(whole.bits_per_base([seq]), abs=1e-12)


def test_errors():
    with pytest.raises(BiolmError, match="markov_order"):
        MarkovChain(order=12)
    with pytest.raises(BiolmError, match="pseudocount"):
        MarkovChain(pseudocount=0)
    with pytest.raises(BiolmError, match="no position to score"):
        MarkovChain(order=3).bits_per_base(["ACG", "ACNNGT"])


def test_ecoli_order6_reference_bits_per_base():
    genome = load_genome([ECOLI])
    train, val = split_genome(genome, "tail:0.1")
    model = MarkovChain(order=6, pseudocount=1.0).fit(genome[r.contig][r.start : r.end] for r in train)
    bits = model.bits_per_base(genome[r.contig][r.start : r.end] for r in val)
    assert bits == pytest.approx(1.934, abs=0.01)  # measured: 1.9340

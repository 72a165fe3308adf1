"""POST /v1/variants/score with a variant on a contig shorter than the window: every variant is
scored (the short one with the whole contig as its window), none rejects the request."""

from __future__ import annotations

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from biolm import api
from biolm.service import ServeSettings, create_app

pytest.importorskip("biolm.variants", reason="the variants module is not installed")

WINDOW = 64


@pytest.fixture(scope="module")
def genome(tiny_task, tmp_path_factory):
    """chr7: 1.9 kb of real promoter sequence; chrS: its first 40 bases, shorter than the window."""
    seq = "".join(pd.read_csv(tiny_task["train"])["sequence"].tolist()[:32])
    path = tmp_path_factory.mktemp("short_ref") / "ref.fa"
    path.write_text(f">chr7\n{seq}\n>chrS\n{seq[:40]}\n")
    return path, seq


@pytest.fixture(scope="module")
def client(loaded_run, genome):
    with TestClient(create_app(loaded_run, ServeSettings(reference=str(genome[0]), variants_window_bp=WINDOW))) as client:
        yield client


def test_short_contig_is_scored_and_the_rest_unaffected(client, loaded_run, genome):
    path, seq = genome
    swap = {"A": "G", "C": "T", "G": "A", "T": "C"}
    variants = [
        {"chrom": "chrS", "pos": 20, "ref": seq[19], "alt": swap[seq[19]]},
        {"chrom": "chr7", "pos": 700, "ref": seq[699], "alt": swap[seq[699]]},
    ]
    response = client.post("/v1/variants/score", json={"variants": variants})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["window_bp"] == WINDOW
    short, full = body["scores"]
    assert (short["window_bp"], full["window_bp"]) == (40, WINDOW)
    assert short["score"] is not None and short["note"].startswith("contig_shorter_than_window")
    assert full["note"] == ""
    alone = api.score_variants(loaded_run, variants[1:], path, window_bp=WINDOW)
    assert full["score"] == pytest.approx(alone["score"].iloc[0], abs=1e-6)
    whole = api.score_variants(loaded_run, variants[:1], path, window_bp=40)
    assert short["score"] == pytest.approx(whole["score"].iloc[0], abs=1e-6)


def test_a_contig_too_short_for_the_alleles_is_a_null_score_not_a_4xx(client, genome):
    _, seq = genome
    # chrS holds 40 bp: deleting 35 of a 36 bp REF needs 35 bases of read-ahead, leaving a 5 bp window < the REF.
    deletion = {"chrom": "chrS", "pos": 3, "ref": seq[2:38], "alt": seq[2]}
    snv = {"chrom": "chr7", "pos": 300, "ref": seq[299], "alt": "A" if seq[299] != "A" else "C"}
    response = client.post("/v1/variants/score", json={"variants": [deletion, snv]})
    assert response.status_code == 200, response.text
    first, second = response.json()["scores"]
    assert first["score"] is None and first["note"].startswith("contig_too_short")
    assert second["score"] is not None

"""POST /v1/variants/score equals `biolm.api.score_variants` on the same variants; mistakes are 422."""

from __future__ import annotations

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from biolm import api
from biolm.service import ServeSettings, create_app

pytest.importorskip("biolm.variants", reason="the variants module is not installed")


@pytest.fixture(scope="module")
def genome(tiny_task, tmp_path_factory):
    """A 1.9 kb contig made of real GUE promoter sequences."""
    seq = "".join(pd.read_csv(tiny_task["train"])["sequence"].tolist()[:32])
    path = tmp_path_factory.mktemp("ref") / "ref.fa"
    path.write_text(">chr7\n" + "\n".join(seq[i : i + 60] for i in range(0, len(seq), 60)) + "\n")
    return path, seq


@pytest.fixture(scope="module")
def client(loaded_run, genome):
    settings = ServeSettings(reference=str(genome[0]), variants_window_bp=64, max_sequences=8)
    with TestClient(create_app(loaded_run, settings)) as client:
        yield client


def _variants(seq: str) -> list[dict]:
    swap = {"A": "G", "C": "T", "G": "A", "T": "C", "N": "A"}
    return [{"chrom": "chr7", "pos": p, "ref": seq[p - 1], "alt": swap[seq[p - 1]]} for p in (300, 700, 1200)]


def test_scores_equal_the_api(client, loaded_run, genome):
    path, seq = genome
    variants = _variants(seq)
    response = client.post("/v1/variants/score", json={"variants": [dict(v, id=f"v{i}") for i, v in enumerate(variants)]})
    assert response.status_code == 200, response.text
    body = response.json()
    expected = api.score_variants(loaded_run, variants, path, window_bp=64)
    assert body["window_bp"] == 64 and [s["id"] for s in body["scores"]] == ["v0", "v1", "v2"]
    assert [s["score"] for s in body["scores"]] == pytest.approx(expected["score"].tolist(), abs=1e-6)
    assert {s["method"] for s in body["scores"]} == set(expected["method"])
    assert client.get("/v1/model").json()["variants"] is True


def test_ref_mismatch_is_422_or_a_null_score_when_skipped(client, genome):
    _, seq = genome
    wrong = {"chrom": "chr7", "pos": 500, "ref": "ACGTACGT"[: 1] if seq[499] != "A" else "C", "alt": "T"}
    response = client.post("/v1/variants/score", json={"variants": [wrong]})
    assert response.status_code == 422 and "does not match the reference" in response.json()["detail"]
    skipped = client.post("/v1/variants/score", json={"variants": [wrong, _variants(seq)[0]], "on_ref_mismatch": "skip"})
    assert skipped.status_code == 200
    scores = skipped.json()["scores"]
    assert scores[0]["score"] is None and scores[0]["note"] and scores[1]["score"] is not None


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"variants": []}, ["variants", "empty"]),
        ({"variants": [{"chrom": "chr9", "pos": 10, "ref": "A", "alt": "G"}]}, ["chr9"]),
        ({"variants": [{"chrom": "chr7", "pos": 0, "ref": "A", "alt": "G"}]}, ["variants[0].pos"]),
        ({"variants": [{"chrom": "chr7", "pos": 10, "ref": "A", "alt": "Z"}]}, ["Z"]),
        ({"variants": [{"chrom": "chr7", "pos": 10, "ref": "A", "alt": "G"}] * 9}, ["at most 8"]),
        ({"variants": [], "average_rc": True}, ["average_rc was renamed rc_average"]),
    ],
)
def test_bad_variant_requests_are_422(client, body, words):
    response = client.post("/v1/variants/score", json=body)
    assert response.status_code == 422, response.text
    for word in words:
        assert word in response.json()["detail"]


def test_no_reference_no_route(loaded_run):
    with TestClient(create_app(loaded_run)) as client:
        assert client.post("/v1/variants/score", json={"variants": []}).status_code == 404
        assert client.get("/v1/model").json()["variants"] is False

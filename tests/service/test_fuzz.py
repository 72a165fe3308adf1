"""Schemathesis fuzzes every operation of the OpenAPI schema: no input makes the service answer 5xx."""

from __future__ import annotations

import pandas as pd
import pytest

from biolm.service import ServeSettings, create_app

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis not installed (pip install -e '.[test]')")
from hypothesis import HealthCheck, given, settings  # noqa: E402  (schemathesis brings hypothesis)


@pytest.fixture(scope="module")
def genome(tiny_task, tmp_path_factory):
    seq = "".join(pd.read_csv(tiny_task["train"])["sequence"].tolist()[:16])
    path = tmp_path_factory.mktemp("fuzz_ref") / "ref.fa"
    path.write_text(f">chr1\n{seq}\n")
    return path


@pytest.fixture(scope="module")
def api_schema(loaded_run, genome):
    app = create_app(loaded_run, ServeSettings(max_sequences=16, max_length_bp=500, max_body_bytes=20_000, reference=str(genome), variants_window_bp=64))
    return schemathesis.openapi.from_asgi("/openapi.json", app)


def test_no_input_gives_a_server_error(api_schema):
    checked = []
    for result in api_schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), database=None, derandomize=True)
        def fuzz(case):
            response = case.call()
            assert response.status_code < 500, f"{case.method} {case.path} {case.body!r} -> {response.status_code} {response.text[:300]}"

        fuzz()
        checked.append(f"{operation.method.upper()} {operation.path}")
    assert {"POST /v1/predict", "POST /v1/variants/score", "GET /v1/model", "GET /readyz"} <= set(checked)

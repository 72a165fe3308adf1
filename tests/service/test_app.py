"""The HTTP API: predictions equal `biolm predict`, every validation path is a 4xx naming the culprit,
the API key is enforced, the model card and health routes, CORS off by default, access logs."""

from __future__ import annotations

import dataclasses
import json
import logging

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from omegaconf import OmegaConf

from biolm import api
from biolm.cli import main
from biolm.resources import config_dir
from biolm.service import ServeSettings, create_app


@pytest.fixture(scope="module")
def client(loaded_run):
    with TestClient(create_app(loaded_run, ServeSettings(max_sequences=8, max_length_bp=200, max_body_bytes=4096))) as client:
        yield client


@pytest.fixture(scope="module")
def test_sequences(tiny_task) -> list[str]:
    return pd.read_csv(tiny_task["test"])["sequence"].tolist()


def test_predictions_equal_the_cli_predict(served_run, loaded_run, test_sequences, tmp_path):
    fasta = tmp_path / "in.fa"
    fasta.write_text("".join(f">s{i}\n{s}\n" for i, s in enumerate(test_sequences)))
    assert main(["predict", f"run={served_run}", f"input={fasta}", f"output={tmp_path / 'cli.csv'}"]) == 0
    cli = pd.read_csv(tmp_path / "cli.csv", dtype={"prediction": str})
    with TestClient(create_app(loaded_run)) as client:
        response = client.post("/v1/predict", json={"sequences": test_sequences, "ids": [f"s{i}" for i in range(len(test_sequences))]})
    assert response.status_code == 200
    body = response.json()
    assert body["task"] == "binary" and body["labels"] == ["0", "1"]
    got = body["predictions"]
    assert [p["id"] for p in got] == cli["id"].tolist()
    assert [p["prediction"] for p in got] == cli["prediction"].tolist()
    assert [p["probabilities"]["1"] for p in got] == pytest.approx(cli["prob_1"].tolist(), abs=1e-6)
    assert [p["probabilities"]["0"] + p["probabilities"]["1"] for p in got] == pytest.approx([1.0] * len(got), abs=1e-6)


def test_case_and_surrounding_whitespace_do_not_change_predictions(client, test_sequences):
    seqs = test_sequences[:3]
    plain = client.post("/v1/predict", json={"sequences": seqs}).json()["predictions"]
    messy = client.post("/v1/predict", json={"sequences": [f"  {s.lower()}\n" for s in seqs]}).json()["predictions"]
    assert [p["id"] for p in plain] == ["seq0", "seq1", "seq2"]
    assert [p["probabilities"]["1"] for p in messy] == pytest.approx([p["probabilities"]["1"] for p in plain], abs=1e-6)


def test_curl_style_form_content_type_is_read_as_json(client, test_sequences):
    body = json.dumps({"sequences": test_sequences[:2]})
    response = client.post("/v1/predict", content=body, headers={"content-type": "application/x-www-form-urlencoded"})
    assert response.status_code == 200 and len(response.json()["predictions"]) == 2


OK = "ACGTACGTACGTACGTACGT"
BAD_BODIES = [
    # (body, status, words the message must contain)
    ({"sequences": []}, 422, ["sequences", "empty"]),
    ({"sequences": [OK] * 9}, 422, ["9 sequences", "at most 8"]),
    ({"sequences": [OK, OK], "ids": ["a"]}, 422, ["ids", "1 ids for 2 sequences"]),
    ({"sequences": [OK, "   "]}, 422, ["sequences[1]", "empty"]),
    ({"sequences": [OK, OK, "A" * 201]}, 422, ["sequences[2]", "201 bp", "at most 200"]),
    ({"sequences": [OK, "ACGTXACGT"]}, 422, ["sequences[1]", "'X'", "position 5", "A, C, G, T, N"]),
    ({"sequences": ["ACGT", "AC GT"]}, 422, ["sequences[1]", "' '", "position 3"]),
    ({"sequences": ["ACGTé"]}, 422, ["sequences[0]", "'é'"]),
    ({"sequences": [OK, 7]}, 422, ["sequences[1]", "string"]),
    ({"sequences": OK}, 422, ["sequences", "list"]),
    ({"ids": ["a"]}, 422, ["sequences", "required"]),
    ({"sequences": [OK], "extra": 1}, 422, ["extra"]),
    ([OK], 422, ["body"]),
]


@pytest.mark.parametrize(("body", "status", "words"), BAD_BODIES, ids=[str(i) for i in range(len(BAD_BODIES))])
def test_every_validation_error_is_a_4xx_naming_the_culprit(client, body, status, words):
    response = client.post("/v1/predict", json=body)
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, str) and "\n" not in detail
    for word in words:
        assert word in detail, detail


@pytest.mark.parametrize(
    ("content", "status", "word"),
    [(b"{not json", 422, "JSON"), (b"", 422, "required"), (b"\xff\xfe", 422, "JSON"), (b"x" * 5000, 413, "max_body_bytes")],
)
def test_malformed_and_oversized_bodies(client, content, status, word):
    response = client.post("/v1/predict", content=content, headers={"content-type": "application/json"})
    assert response.status_code == status, response.text
    assert word in response.json()["detail"]


def test_streamed_body_over_the_limit_is_413(client):
    def chunks():
        for _ in range(10):
            yield b" " * 1000  # no content-length: the limit must hold while streaming

    response = client.post("/v1/predict", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413


def test_api_key_is_enforced_when_set(loaded_run):
    with TestClient(create_app(loaded_run, ServeSettings(api_key="s3cret"))) as client:
        body = {"sequences": [OK]}
        assert client.post("/v1/predict", json=body).status_code == 401
        wrong = client.post("/v1/predict", json=body, headers={"X-API-Key": "nope"})
        assert wrong.status_code == 401 and "X-API-Key" in wrong.json()["detail"]
        assert client.get("/v1/model").status_code == 401
        assert client.post("/v1/predict", json=body, headers={"X-API-Key": "s3cret"}).status_code == 200
        assert client.get("/v1/model", headers={"X-API-Key": "s3cret"}).status_code == 200
        # probes and the page stay open (the page sends the key it is given)
        assert client.get("/healthz").status_code == 200 and client.get("/readyz").status_code == 200
        assert client.get("/").status_code == 200


def test_model_card(client, served_run):
    card = client.get("/v1/model").json()
    assert card["name"] == served_run.name == "tiny" and card["task"] == "binary" and card["labels"] == ["0", "1"]
    assert card["metrics"] == json.loads((served_run / "test_metrics.json").read_text())
    assert card["tokenizer"]["kind"] == "kmer" and card["tokenizer"]["k"] == 3
    assert card["window"]["max_tokens"] > 0 and card["window"]["bases_per_token"] == 1.0
    assert card["limits"]["max_sequences"] == 8 and card["model"]["parameters"] > 0


def test_health_and_readiness_follow_the_lifespan(loaded_run):
    app = create_app(loaded_run)
    cold = TestClient(app)  # no lifespan: the batcher is not running
    assert cold.get("/healthz").json() == {"status": "ok"}
    assert cold.get("/readyz").status_code == 503
    assert cold.post("/v1/predict", json={"sequences": [OK]}).status_code == 503
    with TestClient(app) as warm:
        assert warm.get("/readyz").json() == {"status": "ready"}
    assert not app.state.batcher.running


def test_page_and_openapi(client):
    page = client.get("/")
    assert page.status_code == 200 and "/v1/predict" in page.text
    assert "http://" not in page.text and "https://" not in page.text  # self-contained, no CDN
    docs = client.get("/docs")
    assert docs.status_code == 200 and "/docs-assets/swagger-ui-bundle.js" in docs.text and "cdn" not in docs.text
    assert client.get("/docs-assets/swagger-ui-bundle.js").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/v1/predict", "/v1/model", "/healthz", "/readyz"} <= set(paths)


def test_cors_is_off_by_default_and_on_when_configured(client, loaded_run):
    headers = {"Origin": "http://elsewhere.example", "Access-Control-Request-Method": "POST"}
    assert "access-control-allow-origin" not in client.options("/v1/predict", headers=headers).headers
    with TestClient(create_app(loaded_run, ServeSettings(cors_origins=["http://elsewhere.example"]))) as open_client:
        allowed = open_client.options("/v1/predict", headers=headers)
        assert allowed.headers["access-control-allow-origin"] == "http://elsewhere.example"


def test_access_log_is_one_json_line_per_request(client, caplog):
    with caplog.at_level(logging.INFO, logger="biolm.service.access"):
        response = client.post("/v1/predict", json={"sequences": ["ACGZ"]})
    records = [json.loads(r.getMessage()) for r in caplog.records if r.name == "biolm.service.access"]
    assert records[-1]["path"] == "/v1/predict" and records[-1]["status"] == 422 and records[-1]["method"] == "POST"
    assert records[-1]["request_id"] == response.headers["x-request-id"] and records[-1]["duration_ms"] >= 0


def test_settings_defaults_are_those_of_serve_yaml():
    cfg = OmegaConf.load(config_dir() / "serve.yaml")
    cfg.api_key = None  # an environment resolver; its default is null
    assert ServeSettings.from_config(cfg) == ServeSettings()
    # every setting is a key of serve.yaml with the dataclass default (from_config skips nulls, so compare directly)
    assert set(cfg) - {"run"} == set(ServeSettings.__dataclass_fields__)
    assert {name: cfg[name] for name in ServeSettings.__dataclass_fields__} == dataclasses.asdict(ServeSettings())
    assert ServeSettings().host == "127.0.0.1"
    assert ServeSettings.from_config(OmegaConf.create({"api_key": 1234})).api_key == "1234"


def test_long_inputs_are_windowed_like_the_api(loaded_run, test_sequences):
    cfg = OmegaConf.create(OmegaConf.to_container(loaded_run.cfg))
    cfg.data.window_bp, cfg.data.window_stride_bp = 24, 12
    windowed = dataclasses.replace(loaded_run, cfg=cfg)
    long_seqs = ["".join(test_sequences[:3]), test_sequences[3]]  # 180 bp (14 windows) and 60 bp
    expected = api.predict(windowed, long_seqs)["prob_1"].tolist()
    with TestClient(create_app(windowed)) as client:
        response = client.post("/v1/predict", json={"sequences": long_seqs})
        card = client.get("/v1/model").json()
    assert [p["probabilities"]["1"] for p in response.json()["predictions"]] == pytest.approx(expected, abs=1e-6)
    assert card["window"]["size_bp"] == 24 and card["window"]["stride_bp"] == 12
    assert expected != pytest.approx(api.predict(loaded_run, long_seqs)["prob_1"].tolist(), abs=1e-6)


def test_serve_command_passes_its_settings(monkeypatch, served_run, capsys):
    import biolm.service

    seen = {}
    monkeypatch.setattr(biolm.service, "serve", lambda run, settings: seen.update(run=run, settings=settings))
    monkeypatch.delenv("BIOLM_API_KEY", raising=False)
    assert main(["serve", f"run={served_run}", "port=9001", "api_key=1234", "max_wait_ms=3", "batching=false"]) == 0
    assert seen["run"] == str(served_run)
    assert seen["settings"] == ServeSettings(port=9001, api_key="1234", max_wait_ms=3, batching=False)
    monkeypatch.setenv("BIOLM_API_KEY", "from-env")
    assert main(["serve", f"run={served_run}"]) == 0 and seen["settings"].api_key == "from-env"
    assert main(["serve"]) == 2
    assert "run: missing" in capsys.readouterr().err

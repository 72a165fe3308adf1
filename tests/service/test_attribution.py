"""POST /v1/attribute: one score per base, the prediction /v1/predict gives, both methods equal
`biolm.interpret.attribute`, one-line 4xx for mistakes, 501 without captum, the API key as on /v1/predict;
the model card's example sequence and its settings."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from biolm.data.io import SequenceRecords
from biolm.interpret.attributions import attribute
from biolm.service import ServeSettings, create_app
from biolm.service.attribution import FALLBACK_EXAMPLE, example_sequence

ISM_MAX_BP = ServeSettings().ism_max_bp

pytest.importorskip("captum", reason="saliency needs captum (pip install 'biolm[analysis]')")


@pytest.fixture(scope="module")
def client(loaded_run):
    with TestClient(create_app(loaded_run)) as client:
        yield client


@pytest.fixture(scope="module")
def sequence(tiny_task) -> str:
    return pd.read_csv(tiny_task["test"])["sequence"].tolist()[0]


@pytest.mark.parametrize("method", ["saliency", "ism"])
def test_one_score_per_base_and_the_prediction_of_v1_predict(client, loaded_run, sequence, method):
    response = client.post("/v1/attribute", json={"sequence": f"  {sequence.lower()}\n", "id": "q", "method": method, "window_bp": 8})
    assert response.status_code == 200, response.text
    body = response.json()
    predicted = client.post("/v1/predict", json={"sequences": [sequence], "ids": ["q"]}).json()["predictions"][0]
    assert body["prediction"]["prediction"] == predicted["prediction"]
    assert body["prediction"]["probabilities"] == pytest.approx(predicted["probabilities"], abs=1e-6)
    assert body["sequence"] == sequence.upper() and len(body["scores"]) == len(sequence)
    assert body["method"] == method and body["baseline"] is None and body["target"] == "1" and body["id"] == "q"
    expected = attribute(loaded_run, SequenceRecords("s", ["q"], [sequence], None, [0], "index"), method=method)
    assert body["scores"] == pytest.approx(expected.scores[0].tolist(), abs=1e-5)
    assert body["output"] == pytest.approx(float(expected.output[0]), abs=1e-5)
    # the binary output is the positive class's logit: its sigmoid is /v1/predict's probability
    assert 1 / (1 + np.exp(-body["output"])) == pytest.approx(predicted["probabilities"]["1"], abs=1e-5)
    top = body["top_window"]
    start, end = expected.top_windows(8)[0]
    assert (top["start"], top["end"]) == (start, end) and top["sequence"] == sequence[start:end]
    assert top["score"] == pytest.approx(sum(body["scores"][start:end]), abs=1e-5)


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"sequence": "A" * (ISM_MAX_BP + 1), "method": "ism"}, [f"{ISM_MAX_BP + 1} bp", f"at most {ISM_MAX_BP} bp", "ism_max_bp", "saliency"]),
        ({"sequence": "ACGTXACGTACGT"}, ["sequence:", "'X'", "position 5"]),
        ({"sequence": "   "}, ["sequence:", "empty"]),
        ({"sequence": "ACGTACGTACGT", "target": "0"}, ["target", "positive class"]),
        ({"sequence": "ACGTACGTACGT", "method": "deeplift"}, ["method"]),
    ],
)
def test_mistakes_are_one_line_4xx(client, body, words):
    response = client.post("/v1/attribute", json=body)
    assert 400 <= response.status_code < 500, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, str) and "\n" not in detail
    for word in words:
        assert word in detail, detail


def test_a_sequence_longer_than_the_model_reads_is_refused(client, loaded_run):
    # /v1/predict would window it (or refuse it); attributions explain the sequence whole
    response = client.post("/v1/attribute", json={"sequence": "ACGT" * (loaded_run.max_tokens // 4 + 1)})
    detail = response.json()["detail"]
    assert response.status_code == 422 and detail.startswith("sequence:") and "\n" not in detail
    assert f"at most {loaded_run.max_tokens} tokens" in detail


def test_the_api_key_guards_it_like_predict(loaded_run, sequence):
    with TestClient(create_app(loaded_run, ServeSettings(api_key="s3cret"))) as client:
        assert client.post("/v1/attribute", json={"sequence": sequence}).status_code == 401
        wrong = client.post("/v1/attribute", json={"sequence": sequence}, headers={"X-API-Key": "nope"})
        assert wrong.status_code == 401 and "X-API-Key" in wrong.json()["detail"]
        assert client.post("/v1/attribute", json={"sequence": sequence}, headers={"X-API-Key": "s3cret"}).status_code == 200


def test_the_model_card_example_is_the_first_test_row_and_is_accepted(client, sequence):
    card = client.get("/v1/model").json()
    assert card["task"] == "binary" and card["labels"] == ["0", "1"] and card["metrics"]
    assert card["example"] == sequence.upper()
    assert card["attribution"] == ["saliency", "ism"] and card["limits"]["ism_max_bp"] == ISM_MAX_BP
    for method in ("saliency", "ism"):
        assert client.post("/v1/attribute", json={"sequence": card["example"], "method": method}).status_code == 200


def test_the_example_falls_back_and_is_cut_to_fit(loaded_run, tmp_path):
    from dataclasses import replace

    from omegaconf import OmegaConf

    cfg = OmegaConf.create(OmegaConf.to_container(loaded_run.cfg))
    cfg.data.test, cfg.data.val, cfg.data.train = str(tmp_path / "gone.csv"), None, None
    assert example_sequence(replace(loaded_run, cfg=cfg), ServeSettings()) == FALLBACK_EXAMPLE
    long_file = tmp_path / "long.csv"
    long_file.write_text("sequence,label\n" + "ACGT" * 300 + ",1\n")
    cfg.data.test = str(long_file)
    cut = example_sequence(replace(loaded_run, cfg=cfg), ServeSettings())
    assert cut and ("ACGT" * 300).startswith(cut) and len(cut) <= ISM_MAX_BP
    assert len(loaded_run.tokenizer.encode(cut)) <= loaded_run.max_tokens


def test_the_example_setting_none_or_a_sequence(loaded_run):
    from biolm.errors import BiolmError

    assert example_sequence(loaded_run, ServeSettings(example="none")) is None
    assert example_sequence(loaded_run, ServeSettings(example="acgtnacgtacgt")) == "ACGTNACGTACGT"
    with pytest.raises(BiolmError, match="example: .*auto, none"):
        example_sequence(loaded_run, ServeSettings(example="ACGTXACGT"))
    with TestClient(create_app(loaded_run, ServeSettings(example="none"))) as client:
        assert client.get("/v1/model").json()["example"] is None


def test_a_protein_run_gets_no_dna_fallback(loaded_run, tmp_path):
    from dataclasses import replace

    from omegaconf import OmegaConf

    from biolm.tokenizers.alphabet import PROTEIN

    class ProteinView:  # the run's tokenizer, but reading protein letters
        def __init__(self, tokenizer):
            self._tokenizer = tokenizer
            self.alphabet = PROTEIN

        def __getattr__(self, name):
            return getattr(self._tokenizer, name)

    cfg = OmegaConf.create(OmegaConf.to_container(loaded_run.cfg))
    cfg.data.test, cfg.data.val, cfg.data.train = str(tmp_path / "gone.csv"), None, None
    assert example_sequence(replace(loaded_run, cfg=cfg, tokenizer=ProteinView(loaded_run.tokenizer)), ServeSettings()) is None


def test_saliency_without_captum_is_501_and_the_card_says_so(loaded_run, sequence, monkeypatch):
    import biolm.service.app as app
    import biolm.service.attribution as route

    def without_captum() -> list[str]:
        return ["ism"]

    monkeypatch.setattr(route, "attribution_methods", without_captum)  # what a server without captum reports
    monkeypatch.setattr(app, "attribution_methods", without_captum)
    with TestClient(create_app(loaded_run)) as client:
        assert client.get("/v1/model").json()["attribution"] == ["ism"]
        response = client.post("/v1/attribute", json={"sequence": sequence, "method": "saliency"})
        assert response.status_code == 501 and "captum" in response.json()["detail"] and "ism" in response.json()["detail"]
        assert client.post("/v1/attribute", json={"sequence": sequence[:40], "method": "ism"}).status_code == 200


def test_a_windowed_rc_averaged_run_explains_what_predict_averages(loaded_run, sequence):
    from dataclasses import replace

    from omegaconf import OmegaConf

    cfg = OmegaConf.create(OmegaConf.to_container(loaded_run.cfg))
    cfg.data.window_bp = 30
    cfg.predict = {"rc_average": True}
    run = replace(loaded_run, cfg=cfg)
    with TestClient(create_app(run)) as client:
        response = client.post("/v1/attribute", json={"sequence": sequence[:31]})
        detail = response.json()["detail"]
        assert response.status_code == 422 and "windows of 30 bp" in detail and "\n" not in detail
        body = client.post("/v1/attribute", json={"sequence": sequence[:30]}).json()
    expected = attribute(run, SequenceRecords("s", ["q"], [sequence[:30]], None, [0], "index"), method="saliency")
    assert expected.settings["rc_average"] is True
    assert body["output"] == pytest.approx(float(expected.output[0]), abs=1e-5)
    assert body["scores"] == pytest.approx(expected.scores[0].tolist(), abs=1e-5)

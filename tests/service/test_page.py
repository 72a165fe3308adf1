"""The web page in a real browser: headless Chromium (Debian's package) loads it, submits two
sequences, and the result table and the CSV download hold the API's predictions; /docs renders
from local files; Load example, Predict and the method switch draw the per-base attribution track."""

from __future__ import annotations

import json
import shutil
import socket
import threading
import time

import pandas as pd
import pytest

from biolm import api
from biolm.service import ServeSettings, create_app

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (Debian: apt-get install chromium; .ci/run installs it)"),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright not installed (pip install -e '.[test]')")


@pytest.fixture(scope="module")
def live_url(loaded_run):
    """The app served by uvicorn on a loopback port in a background thread."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(loaded_run, ServeSettings(port=port)), log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=30)


def test_page_predicts_two_sequences(live_url, loaded_run, tiny_task, tmp_path):
    seqs = pd.read_csv(tiny_task["test"])["sequence"].tolist()[:2]
    expected = api.predict(loaded_run, seqs, ids=["first", "second"])
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch_persistent_context(
            user_data_dir=str(tmp_path / "profile"),  # fresh profile
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            accept_downloads=True,
        )
        try:
            page = browser.new_page()
            page.goto(live_url + "/")
            page.wait_for_function("document.getElementById('model').textContent.includes('binary')", timeout=20_000)
            page.fill("#input", f">first\n{seqs[0]}\n>second\n{seqs[1][:30]}\n{seqs[1][30:]}\n")
            page.click("#submit")
            page.wait_for_selector("#results tbody tr", timeout=20_000)
            header = page.locator("#results thead th").all_inner_texts()
            rows = [row.locator("td").all_inner_texts() for row in page.locator("#results tbody tr").all()]
            with page.expect_download() as download_info:
                page.click("#download")
            csv_path = tmp_path / "download.csv"
            download_info.value.save_as(csv_path)
            page.goto(live_url + "/docs")  # Swagger UI from local files: renders without internet
            page.wait_for_selector(".swagger-ui .info .title", timeout=20_000)
            docs_title = page.locator(".swagger-ui .info .title").inner_text()
            operations = page.locator(".opblock-summary-path").all_inner_texts()
        finally:
            browser.close()
    assert header == ["id", "prediction", "prob_0", "prob_1"]
    assert [r[0] for r in rows] == ["first", "second"]
    assert [r[1] for r in rows] == expected["prediction"].astype(str).tolist()
    assert [float(r[3]) for r in rows] == pytest.approx(expected["prob_1"].tolist(), abs=1e-4)
    assert "biolm prediction service" in docs_title and "/v1/predict" in operations
    downloaded = pd.read_csv(csv_path, dtype={"prediction": str})
    assert downloaded["id"].tolist() == ["first", "second"]
    assert downloaded["prob_1"].tolist() == pytest.approx(expected["prob_1"].tolist(), abs=1e-6)


def test_load_example_predict_and_the_attribution_track(live_url, served_run, loaded_run, tmp_path):
    pytest.importorskip("captum", reason="saliency needs captum (pip install 'biolm[analysis]')")
    from biolm.service.attribution import example_sequence

    example = example_sequence(loaded_run, ServeSettings())
    expected = api.predict(loaded_run, [example], ids=["example"])
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch_persistent_context(
            user_data_dir=str(tmp_path / "profile"), executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = browser.new_page()
            page.goto(live_url + "/")
            page.wait_for_selector("#example:not([disabled])", timeout=20_000)
            metrics = page.locator("#metrics tbody tr td:first-child").all_inner_texts()
            page.click("#example")
            assert page.input_value("#input") == f">example\n{example}\n"
            page.click("#submit")
            page.wait_for_selector("#track .b", timeout=20_000)
            rows = [row.locator("td").all_inner_texts() for row in page.locator("#results tbody tr").all()]
            bases = "".join(page.locator("#track .b").all_inner_texts())
            titles = page.locator("#track .b").evaluate_all("cells => cells.map((c) => c.title)")
            outlined = "".join(page.locator("#track .b.top").all_inner_texts())
            saliency = page.inner_text("#attr-summary")
            page.check('input[name="method"][value="ism"]')
            page.wait_for_function("document.getElementById('attr-summary').textContent.startsWith('ISM')", timeout=30_000)
            ism_cells = page.locator("#track .b").count()
        finally:
            browser.close()
    assert metrics == list(json.loads((served_run / "test_metrics.json").read_text()))
    assert [r[:2] for r in rows] == [["example", str(expected["prediction"][0])]]
    assert float(rows[0][3]) == pytest.approx(expected["prob_1"][0], abs=1e-4)
    assert bases == example and len(titles) == len(example) == ism_cells
    assert titles[0].startswith(f"position 1: {example[0]}, score ")
    assert len(outlined) == 10 and outlined in example and f"({outlined})" in saliency
    assert saliency.startswith("Saliency scores of example") and "top 10 bp window is positions" in saliency

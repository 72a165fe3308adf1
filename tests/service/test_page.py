"""The web page in a real browser: headless Chromium (Debian's package) loads it, submits two
sequences, and the result table and the CSV download hold the API's predictions; /docs renders
from local files."""

from __future__ import annotations

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

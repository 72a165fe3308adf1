"""The micro-batcher: concurrent requests share forward passes, each caller gets its own rows,
one caller's error stays its own, the event loop stays free, and stop() finishes queued work."""

from __future__ import annotations

import asyncio
import threading
import time

import httpx
import pandas as pd
import pytest

from biolm import api
from biolm.service import ServeSettings, create_app
from biolm.service.batching import MicroBatcher


class Recorder:
    """A stand-in model: echoes each sequence and its length; records call sizes and threads."""

    def __init__(self, delay_s: float = 0.0):
        self.calls: list[int] = []
        self.threads: set[str] = set()
        self.delay_s = delay_s

    def __call__(self, sequences: list[str]) -> list[tuple[str, int]]:
        if any("BAD" in s for s in sequences):
            raise ValueError("bad sequence")
        self.calls.append(len(sequences))
        self.threads.add(threading.current_thread().name)
        time.sleep(self.delay_s)
        return [(s, len(s)) for s in sequences]


async def _submit_all(batcher: MicroBatcher, requests: list[list[str]]):
    await batcher.start()
    try:
        return await asyncio.gather(*(batcher.submit(r) for r in requests), return_exceptions=True)
    finally:
        await batcher.stop()


def test_concurrent_requests_share_one_call_and_get_their_own_rows():
    model = Recorder()
    requests = [[f"A{i}", f"C{i}"] for i in range(10)]
    results = asyncio.run(_submit_all(MicroBatcher(model, max_batch=64, max_wait_ms=200), requests))
    assert model.calls == [20]
    for request, rows in zip(requests, results):
        assert rows == [(s, len(s)) for s in request]
    assert model.threads and "MainThread" not in model.threads


def test_a_request_reaching_an_idle_batcher_does_not_wait_for_the_window():
    """The window adapts to load: alone, a request runs at once even with a 30 s max_wait_ms."""

    async def go():
        batcher = MicroBatcher(Recorder(), max_batch=64, max_wait_ms=30_000)
        await batcher.start()
        try:
            return await asyncio.wait_for(batcher.submit(["ACGT"]), timeout=10)
        finally:
            await batcher.stop()

    assert asyncio.run(go()) == [("ACGT", 4)]


def test_requests_arriving_during_a_forward_pass_share_the_next_one():
    model = Recorder(delay_s=0.3)

    async def go():
        batcher = MicroBatcher(model, max_batch=64, max_wait_ms=0)
        await batcher.start()
        try:
            first = asyncio.ensure_future(batcher.submit(["A"]))
            await asyncio.sleep(0.1)  # the first forward pass is running
            rest = await asyncio.gather(*(batcher.submit([f"C{i}"]) for i in range(5)))
            return await first, rest
        finally:
            await batcher.stop()

    first, rest = asyncio.run(go())
    assert model.calls == [1, 5] and first == [("A", 1)] and rest[4] == [("C4", 2)]


def test_max_batch_bounds_every_call_and_batching_off_is_one_call_per_request():
    model = Recorder()
    asyncio.run(_submit_all(MicroBatcher(model, max_batch=5, max_wait_ms=200), [["A", "C"]] * 10))
    assert sum(model.calls) == 20 and max(model.calls) <= 5 and len(model.calls) >= 4
    alone = Recorder()
    asyncio.run(_submit_all(MicroBatcher(alone, max_batch=64, max_wait_ms=200, enabled=False), [["A", "C"]] * 10))
    assert alone.calls == [2] * 10


def test_a_request_larger_than_max_batch_runs_alone():
    model = Recorder()
    results = asyncio.run(_submit_all(MicroBatcher(model, max_batch=4, max_wait_ms=50), [["A"] * 9, ["C"]]))
    assert sorted(model.calls) == [1, 9] and len(results[0]) == 9


def test_one_callers_error_does_not_reach_the_others():
    model = Recorder()
    results = asyncio.run(_submit_all(MicroBatcher(model, max_batch=64, max_wait_ms=200), [["A"], ["BAD"], ["C"]]))
    assert isinstance(results[1], ValueError)
    assert results[0] == [("A", 1)] and results[2] == [("C", 1)]


def test_the_event_loop_stays_free_during_a_forward_pass_and_stop_drains_the_queue():
    model = Recorder(delay_s=0.3)

    async def scenario():
        batcher = MicroBatcher(model, max_batch=1, max_wait_ms=0)
        await batcher.start()
        ticks = 0

        async def ticker():
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        tick_task = asyncio.create_task(ticker())
        pending = [asyncio.create_task(batcher.submit([s])) for s in ("A", "C", "G")]
        await asyncio.sleep(0.05)
        await batcher.stop()  # graceful: the three queued requests still finish
        tick_task.cancel()
        return ticks, [[s for s, _ in t.result()] for t in pending]

    ticks, results = asyncio.run(scenario())
    assert results == [["A"], ["C"], ["G"]]
    assert ticks >= 30  # ~0.9 s of model time; the loop ticked all along


def test_concurrent_http_requests_are_batched_and_equal_direct_predictions(loaded_run, tiny_task):
    seqs = pd.read_csv(tiny_task["test"])["sequence"].tolist()[:16]
    expected = api.predict(loaded_run, seqs)["prob_1"].tolist()
    app = create_app(loaded_run, ServeSettings(max_batch=64, max_wait_ms=100))

    async def scenario():
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                responses = await asyncio.gather(*(client.post("/v1/predict", json={"sequences": [s], "ids": [f"r{i}"]}) for i, s in enumerate(seqs)))
        return responses

    responses = asyncio.run(scenario())
    assert all(r.status_code == 200 for r in responses)
    got = [r.json()["predictions"][0] for r in responses]
    assert [p["id"] for p in got] == [f"r{i}" for i in range(16)]
    assert [p["probabilities"]["1"] for p in got] == pytest.approx(expected, abs=1e-6)
    assert app.state.batcher.calls < 16


def test_shutdown_lets_in_flight_requests_finish(loaded_run):
    import socket

    import uvicorn

    app = create_app(loaded_run)
    batcher = app.state.batcher
    fast = batcher.predict_fn

    def slow(sequences):
        time.sleep(1.0)
        return fast(sequences)

    batcher.predict_fn = slow
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=10))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    result = {}

    def call():
        result["response"] = httpx.post(f"http://127.0.0.1:{port}/v1/predict", json={"sequences": ["ACGTACGTAC"]}, timeout=30)

    caller = threading.Thread(target=call)
    caller.start()
    time.sleep(0.4)  # the request is in the forward pass now
    server.should_exit = True  # what SIGINT/SIGTERM do
    caller.join(timeout=30)
    thread.join(timeout=30)
    assert result["response"].status_code == 200
    assert not thread.is_alive() and not batcher.running

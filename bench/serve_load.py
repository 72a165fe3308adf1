"""Load test of `biolm serve`: dynamic micro-batching on vs off, side by side.

Starts the server on loopback twice (batching=false, then batching=true; same run, same settings
otherwise), drives each with N concurrent client threads (stdlib ``http.client`` keep-alive connections; see `Connection`) posting one real GUE sequence per
request (bounded by a request count and a time limit), alternating the two modes ``--repeats`` times, and
prints the medians of requests/s, sequences/s, p50/p99 latency, errors, and sequences per forward
pass; then what bounds the ratio on this machine: the HTTP ceiling (``GET /healthz`` with the same
client) and the model-side speed-up (the micro-batcher driven directly, no HTTP). The end-to-end
batching speed-up ratio is printed last.

    python bench/serve_load.py [--run runs/demo_prom300_bert] [--clients 32] [--requests 30] [--duration-s 40]
    python bench/serve_load.py --sequences-per-request 1,8,64 --repeats 1 --duration-s 20   # share of the model-side ceiling per size

Without the run folder (``make demo`` writes it) a stand-in run of the same architecture is trained
for a few steps into a temporary folder: throughput does not depend on how well it was trained.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
TEST_SET = REPO / "data" / "gue" / "prom_300_tata" / "test.csv.gz"


def stand_in_run(folder: Path) -> Path:
    """The demo's architecture trained for a few steps (for throughput only)."""
    from biolm import api
    from biolm.cli import compose

    cfg = compose(
        "finetune",
        [
            "experiment=demo_prom300",
            "trainer.max_epochs=1",
            "+trainer.limit_train_batches=4",
            "+trainer.limit_val_batches=1",
            "trainer.accelerator=cpu",
            "progress_bar=false",
            f"output_dir={folder}",
            "run_name=bench_stand_in",
        ],
    )
    return api.finetune(cfg)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(run: Path, port: int, batching: bool, args: argparse.Namespace, log_path: Path) -> subprocess.Popen:
    command = [
        sys.executable, "-m", "biolm.cli", "serve", f"run={run}", "host=127.0.0.1", f"port={port}",
        f"batching={str(batching).lower()}", f"max_batch={args.max_batch}", f"max_wait_ms={args.max_wait_ms}",
    ]  # fmt: skip
    if args.torch_threads:
        command.append(f"torch_threads={args.torch_threads}")
    log = open(log_path, "w")  # noqa: SIM115 (the server process keeps writing to it)
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)


def wait_ready(url: str, process: subprocess.Popen, timeout_s: float = 180.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited with code {process.returncode} before it was ready")
        try:
            if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"the server at {url} was not ready after {timeout_s:.0f} s")


def stop_server(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGINT)  # graceful: uvicorn finishes in-flight requests
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class Connection:
    """One client's keep-alive HTTP/1.1 connection (stdlib ``http.client``, reopened after a failure).

    The load is driven from threads over the standard library's client, not from httpx's async client:
    on this 2-core machine httpx spends milliseconds of CPU per request, so with 32 clients it becomes the
    bottleneck and its scheduling makes the latency tail (``GET /healthz``: 113 requests/s, p99 1,057 ms with
    one httpx pool; 1,268 requests/s, p99 195 ms with 32 threads of ``http.client``, measured 2026-12-01).
    """

    def __init__(self, url: str):
        host, port = url.split("//", 1)[1].rsplit(":", 1)
        self.host, self.port = host, int(port)
        self.conn: http.client.HTTPConnection | None = None

    def request(self, method: str, path: str, payload: dict | None = None) -> tuple[int, bytes]:
        body = None if payload is None else json.dumps(payload)
        try:
            return self._send(method, path, body)
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            # the server closed an idle keep-alive connection as the request went out: once more, on a fresh one
            return self._send(method, path, body)

    def _send(self, method: str, path: str, body: str | None) -> tuple[int, bytes]:
        if self.conn is None:
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=120)
        try:
            self.conn.request(method, path, body=body, headers={} if body is None else {"Content-Type": "application/json"})
            response = self.conn.getresponse()
            return response.status, response.read()
        except (OSError, http.client.HTTPException):
            self.close()
            raise

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def run_clients(connections: list[Connection], one_client) -> float:
    """Run ``one_client(k)`` for every connection on its own thread; the seconds it took (connections closed after)."""
    t0 = time.perf_counter()
    with ThreadPoolExecutor(len(connections)) as pool:
        list(pool.map(one_client, range(len(connections))))
    elapsed = time.perf_counter() - t0
    for connection in connections:
        connection.close()
    return elapsed


def drive(url: str, sequences: list[str], clients: int, requests_per_client: int, duration_s: float, per_request: int) -> dict:
    """N client threads, each posting up to ``requests_per_client`` requests until ``duration_s`` is over."""
    latencies: list[float] = []
    errors = 0
    kinds: Counter[str] = Counter()
    lock = threading.Lock()
    connections = [Connection(url) for _ in range(clients)]
    for i, connection in enumerate(connections[:8]):  # warm-up: first forward passes
        connection.request("POST", "/v1/predict", {"sequences": sequences[i : i + per_request]})
    stop_at = time.perf_counter() + duration_s

    def one_client(k: int) -> None:
        nonlocal errors
        for j in range(requests_per_client):
            if time.perf_counter() > stop_at:
                return
            start = (k * requests_per_client + j) * per_request % (len(sequences) - per_request)
            t0 = time.perf_counter()
            try:
                status, body = connections[k].request("POST", "/v1/predict", {"sequences": sequences[start : start + per_request]})
                ok = status == 200 and len(json.loads(body)["predictions"]) == per_request
                kind = f"HTTP {status}"
            except (OSError, http.client.HTTPException) as err:
                ok, kind = False, f"{type(err).__name__}: {err}"
            with lock:
                latencies.append(time.perf_counter() - t0)
                errors += not ok
                kinds[kind] += not ok

    elapsed = run_clients(connections, one_client)
    for kind, count in kinds.items():
        if count:
            print(f"  error: {count} x {kind}", file=sys.stderr)
    lat = np.array(latencies) * 1000
    return {
        "requests": len(latencies),
        "requests/s": len(latencies) / elapsed,
        "sequences/s": len(latencies) * per_request / elapsed,
        "p50 ms": float(np.percentile(lat, 50)),
        "p99 ms": float(np.percentile(lat, 99)),
        "errors": errors,
    }


def http_ceiling(url: str, clients: int, requests_per_client: int) -> float:
    """Requests/s of ``GET /healthz`` with the same client: what HTTP alone allows on this machine."""
    connections = [Connection(url) for _ in range(clients)]

    def one_client(k: int) -> None:
        for _ in range(requests_per_client):
            connections[k].request("GET", "/healthz")

    elapsed = run_clients(connections, one_client)
    return clients * requests_per_client / elapsed


def model_side(run_dir: Path, sequences: list[str], clients: int, rounds: int, args: argparse.Namespace, per_request: int = 1) -> dict[str, float]:
    """Sequences/s of the micro-batcher alone (no HTTP), ``clients`` concurrent callers of ``per_request`` sequences, on vs off."""
    import torch

    from biolm import api
    from biolm.service.app import predict_rows
    from biolm.service.batching import MicroBatcher

    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    run = api.load_run(run_dir)
    out = {}
    for enabled in (False, True):
        batcher = MicroBatcher(lambda s: predict_rows(run, s, args.max_batch), args.max_batch, args.max_wait_ms, enabled)

        async def go(batcher: MicroBatcher = batcher) -> float:
            await batcher.start()
            await batcher.submit(sequences[:4])

            async def caller(k: int, batcher: MicroBatcher = batcher) -> None:
                for j in range(rounds):
                    start = (k * rounds + j) * per_request % (len(sequences) - per_request)
                    await batcher.submit(sequences[start : start + per_request])

            t0 = time.perf_counter()
            await asyncio.gather(*(caller(k) for k in range(clients)))
            elapsed = time.perf_counter() - t0
            await batcher.stop()
            return clients * rounds * per_request / elapsed

        out["on" if enabled else "off"] = asyncio.run(go())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", default=str(REPO / "runs" / "demo_prom300_bert"))
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--requests", type=int, default=30, help="requests per client (upper bound)")
    parser.add_argument("--duration-s", type=float, default=40.0, help="time limit per round")
    parser.add_argument("--sequences-per-request", default="1", help="comma-separated sizes, e.g. 1,8,64 (one table per size)")
    parser.add_argument("--max-batch", type=int, default=64)
    parser.add_argument("--max-wait-ms", type=float, default=10.0)
    parser.add_argument("--repeats", type=int, default=2, help="alternating off/on rounds; medians are reported")
    parser.add_argument("--torch-threads", type=int, default=1, help="the server's torch_threads (0: torch's default)")
    args = parser.parse_args()

    with gzip.open(TEST_SET, "rt") as handle:
        sequences = pd.read_csv(handle)["sequence"].tolist()
    sizes = [int(v) for v in str(args.sequences_per_request).split(",")]
    summary = []
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(args.run)
        if not (run / "model.safetensors").exists():
            print(f"{run} not found (make demo writes it); training a stand-in run of the same architecture", file=sys.stderr)
            run = stand_in_run(Path(tmp))
        for per_request in sizes:
            rows, ceiling = rounds_of(run, sequences, per_request, args, Path(tmp))
            inside = model_side(run, sequences, args.clients, max(2, 64 // per_request), args, per_request)
            report(run, rows, ceiling, inside, per_request, args)
            on, off = rows["batching on"], rows["batching off"]
            summary.append({"sequences/request": per_request, "off seqs/s": off["sequences/s"], "on seqs/s": on["sequences/s"],
                            "model-side ceiling seqs/s": inside["on"], "share of ceiling": on["sequences/s"] / inside["on"],
                            "p99 off ms": off["p99 ms"], "p99 on ms": on["p99 ms"], "p99 on/off": on["p99 ms"] / off["p99 ms"]})
    if len(summary) > 1:
        print("\nend to end (batching on) as a share of the model-side ceiling (the micro-batcher alone, batching on):")
        print(pd.DataFrame(summary).to_string(index=False, float_format=lambda v: f"{v:,.2f}"))


def rounds_of(run: Path, sequences: list[str], per_request: int, args: argparse.Namespace, tmp: Path) -> tuple[dict, float]:
    """Median rows of alternating batching off/on rounds at ``per_request`` sequences per request, and the HTTP ceiling."""
    runs: dict[str, list[dict]] = {"batching off": [], "batching on": []}
    ceiling = float("nan")
    for repeat in range(args.repeats):  # modes alternate, so that drifting machine load hits both
        for batching in (False, True):
            name = "batching on" if batching else "batching off"
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            log_path = tmp / f"server_{per_request}_{batching}_{repeat}.log"
            process = start_server(run, port, batching, args, log_path)
            try:
                wait_ready(url, process)
                if repeat == 0 and not batching:
                    ceiling = http_ceiling(url, args.clients, 20)
                row = drive(url, sequences, args.clients, args.requests, args.duration_s, per_request)
            finally:
                stop_server(process)
            passes = re.findall(r"\(([\d.]+) per pass\)", log_path.read_text())
            row["seqs/pass"] = float(passes[-1]) if passes else float("nan")
            runs[name].append(row)
            print(f"{per_request}/request, {name} #{repeat + 1}: " + ", ".join(f"{k} {v:,.1f}" for k, v in row.items()), file=sys.stderr)
    rows = {name: {key: float(np.median([r[key] for r in results])) for key in results[0]} for name, results in runs.items()}
    for name, results in runs.items():
        rows[name]["errors"] = sum(r["errors"] for r in results)
    return rows, ceiling


def report(run: Path, rows: dict, ceiling: float, inside: dict, per_request: int, args: argparse.Namespace) -> None:
    table = pd.DataFrame(rows).T
    print(f"\nrun {run.name}, {args.clients} concurrent clients, {per_request} sequence(s) per request, "
          f"max_batch={args.max_batch}, max_wait_ms={args.max_wait_ms:g}, torch_threads={args.torch_threads or 'default'}, {os.cpu_count()} CPUs")  # fmt: skip
    print(f"(medians of {args.repeats} alternating rounds; seqs/pass: mean sequences per forward pass)")
    print(table.to_string(float_format=lambda v: f"{v:,.1f}"))
    print(f"\nHTTP ceiling (GET /healthz, same client, {args.clients} clients): {ceiling:,.1f} requests/s")
    print(f"model side (micro-batcher alone, no HTTP, {args.clients} callers of {per_request}): {inside['off']:,.1f} -> {inside['on']:,.1f} sequences/s, "
          f"{inside['on'] / inside['off']:.2f}x")  # fmt: skip
    share = rows["batching on"]["sequences/s"] / inside["on"]
    print(f"end to end (batching on) / model-side ceiling: {share:.0%}; p99 on / off: {rows['batching on']['p99 ms'] / rows['batching off']['p99 ms']:.2f}x")
    ratio = rows["batching on"]["requests/s"] / rows["batching off"]["requests/s"]
    print(f"\nbatching speed-up (requests/s, on / off, {args.clients} clients, {per_request}/request): {ratio:.2f}x")

if __name__ == "__main__":
    main()

"""Long-context cost: HyenaEncoder vs a same-width attention encoder, forward + backward on CPU.

Both trunks get batch 1 of L random tokens and one step = forward + mean-square loss on the
hidden states + backward. The attention model is biolm's `BertEncoder` with ALiBi (no position
table, so no length limit), GELU MLP, same d_model, layers and MLP width, `--heads` heads; both
run without dropout. Each (model, L) case runs in a fresh subprocess so its peak memory is its
own: peak = the child's `ru_maxrss` minus its RSS just before the first step (model and input
already built), which counts torch's allocations where tracemalloc would not.

Attention is skipped at the next L once a step took longer than `--max-seconds`, or when the
last peak times (L_next / L)^2 would pass `--max-gb`. The growth exponent is the slope of a
least-squares line through (log L, log seconds) for each model; the ratio (attention / Hyena
step time) at the longest length both ran is printed last.

    python bench/long_context.py                       # L = 1k .. 32k, 128 wide, 2 layers
    python bench/long_context.py --d-model 256 --layers 4 --threads 2

`--threads` defaults to 1: on a 2-core machine shared with another job, two OpenMP threads
per process oversubscribe the cores and make step times swing by an order of magnitude.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import statistics
import subprocess
import sys
import time

MODELS = ("hyena", "attention")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--lengths", type=int, nargs="+", default=[1024, 2048, 4096, 8192, 16384, 32768]
    )
    parser.add_argument("--d-model", type=int, default=128)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--heads", type=int, default=4, help="attention heads (attention model only)")
    parser.add_argument("--repeats", type=int, default=3, help="timed steps per case (median)")
    parser.add_argument("--max-seconds", type=float, default=15.0, help="per-step budget per case")
    parser.add_argument("--max-gb", type=float, default=8.0, help="peak-memory budget per case")
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads per case")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--child", choices=MODELS, help=argparse.SUPPRESS)
    parser.add_argument("--length", type=int, help=argparse.SUPPRESS)
    return parser.parse_args()


def rss_mb() -> float:
    """Current resident set size in MB (psutil if present, else the peak so far)."""
    try:
        import psutil
    except ImportError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return psutil.Process().memory_info().rss / 2**20


def run_child(args: argparse.Namespace) -> None:
    """Build one model, time `--repeats` steps at `--length`, print one JSON line."""
    import torch

    from biolm.models import BertEncoder, HyenaEncoder

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    vocab, d, length = 16, args.d_model, args.length
    if args.child == "hyena":
        model = HyenaEncoder(
            vocab, pad_token_id=0, d_model=d, n_layer=args.layers, max_seq_len=length,
            embed_dropout=0.0,
        )
    else:
        model = BertEncoder(
            vocab, pad_token_id=0, hidden_size=d, num_layers=args.layers, num_heads=args.heads,
            intermediate_size=4 * d, position_embedding="alibi", mlp="gelu",
            hidden_dropout=0.0, attention_dropout=0.0,
        )
    model.train()
    ids = torch.randint(1, vocab, (1, length))
    mask = torch.ones(1, length, dtype=torch.long)

    def step() -> float:
        start = time.perf_counter()
        model(ids, mask).square().mean().backward()
        model.zero_grad(set_to_none=True)
        return time.perf_counter() - start

    baseline_mb = rss_mb()
    times = [step()]  # warm-up, timed only to decide whether more steps fit the budget
    if times[0] <= args.max_seconds:
        times = []
        for _ in range(args.repeats):
            times.append(step())
            if sum(times) > args.max_seconds:
                break
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - baseline_mb
    print(json.dumps({"seconds": statistics.median(times), "peak_mb": peak_mb}))


def run_case(args: argparse.Namespace, model: str, length: int) -> dict[str, float] | None:
    """Run one case in a fresh interpreter; None if it failed or ran past its time limit."""
    command = [
        sys.executable, __file__, "--child", model, "--length", str(length),
        "--d-model", str(args.d_model), "--layers", str(args.layers), "--heads", str(args.heads),
        "--repeats", str(args.repeats), "--max-seconds", str(args.max_seconds),
        "--threads", str(args.threads), "--seed", str(args.seed),
    ]
    limit_s = 60 + 4 * args.max_seconds * (args.repeats + 1)
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=limit_s, check=False)
    except subprocess.TimeoutExpired:
        return None
    if done.returncode != 0:
        sys.stderr.write(f"{model} L={length} failed:\n{done.stderr[-2000:]}\n")
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


def growth_exponent(points: dict[int, dict[str, float]]) -> float:
    """Least-squares slope of log(seconds) on log(L)."""
    xs = [math.log(length) for length in points]
    ys = [math.log(p["seconds"]) for p in points.values()]
    mean_x, mean_y = statistics.fmean(xs), statistics.fmean(ys)
    num = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys))
    return num / sum((x - mean_x) ** 2 for x in xs)


def main() -> None:
    args = parse_args()
    if args.child:
        run_child(args)
        return
    import torch

    print(
        f"torch {torch.__version__}, CPU, {args.threads} thread(s) per case; batch 1; "
        f"d_model {args.d_model}, {args.layers} layers, MLP {4 * args.d_model}; "
        f"attention: BertEncoder ALiBi, {args.heads} heads; step = forward + backward"
    )
    results: dict[str, dict[int, dict[str, float]]] = {m: {} for m in MODELS}
    skipped: dict[str, str] = {}
    for length in sorted(args.lengths):
        for model in MODELS:
            if model in skipped:
                continue
            done = results[model]
            if model == "attention" and done:
                last_length = max(done)
                last = done[last_length]
                predicted_gb = last["peak_mb"] * (length / last_length) ** 2 / 1024
                if last["seconds"] > args.max_seconds:
                    skipped[model] = f"from L={length}: L={last_length} took {last['seconds']:.1f} s"
                    continue
                if predicted_gb > args.max_gb:
                    skipped[model] = f"from L={length}: predicted peak {predicted_gb:.1f} GB"
                    continue
            result = run_case(args, model, length)
            if result is None:
                skipped[model] = f"from L={length}: failed or timed out"
                continue
            done[length] = result
    header = f"{'L':>7} | {'hyena s':>8} {'MB':>7} | {'attention s':>11} {'MB':>7} | {'attn/hyena':>10}"
    print(header)
    print("-" * len(header))
    for length in sorted(args.lengths):
        h, a = results["hyena"].get(length), results["attention"].get(length)
        cells = [f"{length:>7}"]
        cells.append(f"{h['seconds']:>8.3f} {h['peak_mb']:>7.0f}" if h else f"{'-':>8} {'-':>7}")
        cells.append(f"{a['seconds']:>11.3f} {a['peak_mb']:>7.0f}" if a else f"{'-':>11} {'-':>7}")
        cells.append(f"{a['seconds'] / h['seconds']:>9.1f}x" if h and a else f"{'-':>10}")
        print(" | ".join(cells))
    for model, reason in skipped.items():
        print(f"{model} skipped {reason}")
    for model in MODELS:
        points = results[model]
        if len(points) >= 2:
            span = f"L {min(points)}..{max(points)}"
            print(f"growth exponent {model}: {growth_exponent(points):.2f} (time ~ L^k, {span})")
    common = sorted(set(results["hyena"]) & set(results["attention"]))
    if common:
        length = common[-1]
        ratio = results["attention"][length]["seconds"] / results["hyena"][length]["seconds"]
        print(f"ratio (attention / hyena step time) at L={length}: {ratio:.1f}x")


if __name__ == "__main__":
    main()

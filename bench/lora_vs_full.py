"""LoRA vs full fine-tuning, side by side: cost on a base-size model, quality on a pretrained one.

Part 1, cost (random weights are enough: cost does not depend on their values). For each model
config, each mode (full, lora) runs in its own fresh process: build the sequence model, wrap it
with LoRA (peft, the project's defaults) or not, then time training steps (forward, loss,
backward, AdamW over the trainable parameters) on one random batch. It prints the trainable
share, the step time (median), the peak memory of training above the loaded model (Linux
VmHWM, reset after loading; CUDA max allocated when a GPU is present), and what the run saves
(full model.safetensors vs adapter_model.safetensors), with the LoRA / full ratios.

Part 2, quality: `biolm finetune` twice from the same pretrained run (``--init-from``), same
data and epochs, full vs ``adapter=lora``, and the test metrics of both.

    python bench/lora_vs_full.py                                    # both parts
    python bench/lora_vs_full.py --skip-quality --models dnabert_base
    python bench/lora_vs_full.py --skip-cost --init-from runs/ecoli_hyena_clm_20min --epochs 1
    python bench/lora_vs_full.py --skip-quality --models dnabert_base --gradient-checkpointing
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["dnabert_base", "hyena_small"])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--r", type=int, default=16)
    parser.add_argument("--gradient-checkpointing", action="store_true", help="both modes recompute activations (the usual pairing with LoRA on small GPUs)")
    parser.add_argument("--skip-quality", action="store_true")
    parser.add_argument("--skip-cost", action="store_true")
    parser.add_argument("--init-from", default="runs/ecoli_hyena_clm_20min")
    parser.add_argument("--data", default="gue_prom_300_tata")
    parser.add_argument("--train-rows", type=int, default=0, help="0: the whole training file")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--lr-full", type=float, default=1e-3)
    parser.add_argument("--lr-lora", type=float, default=5e-3)
    parser.add_argument("--child", nargs=2, metavar=("MODEL", "MODE"), help=argparse.SUPPRESS)
    return parser.parse_args()


def _status_kb(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def child(args: argparse.Namespace) -> None:
    """One model x mode in this fresh process; prints one JSON line."""
    import torch
    from omegaconf import OmegaConf

    from biolm.models import build_sequence_model
    from biolm.models.adapters import apply_adapter, save_adapter
    from biolm.runs import count_parameters
    from biolm.tasks.callbacks import save_weights

    model_name, mode = args.child
    torch.manual_seed(0)
    cuda = torch.cuda.is_available()
    device = "cuda" if cuda else "cpu"
    cfg = OmegaConf.load(REPO / "configs" / "model" / f"{model_name}.yaml")
    cfg.trunk.gradient_checkpointing = bool(args.gradient_checkpointing)
    model = build_sequence_model(cfg, vocab_size=4101, pad_token_id=0, num_outputs=1)
    if mode == "lora":
        adapter = OmegaConf.create({"name": "lora", "r": args.r, "alpha": 2 * args.r, "dropout": 0.05, "bias": "none", "target_modules": None})
        model = apply_adapter(model, adapter)
    model.to(device).train()
    trainable, total = count_parameters(model)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    ids = torch.randint(5, 4101, (args.batch, args.tokens), device=device)
    mask = torch.ones_like(ids, dtype=torch.bool)
    target = torch.randint(0, 2, (args.batch,), device=device).float()
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM: peak from here on
    loaded_kb = _status_kb("VmRSS")
    if cuda:
        torch.cuda.reset_peak_memory_stats()
        loaded_cuda = torch.cuda.memory_allocated()
    times = []
    for _ in range(args.steps + 2):
        start = time.perf_counter()
        logits = model(ids, mask).logits[:, 0]
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, target)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    peak_mb = (_status_kb("VmHWM") - loaded_kb) / 1024
    cuda_mb = (torch.cuda.max_memory_allocated() - loaded_cuda) / 2**20 if cuda else None
    with tempfile.TemporaryDirectory() as tmp:
        if mode == "lora":
            save_adapter(model, Path(tmp) / "adapter")
            saved = (Path(tmp) / "adapter" / "adapter_model.safetensors").stat().st_size
        else:
            save_weights(model, Path(tmp) / "model.safetensors")
            saved = (Path(tmp) / "model.safetensors").stat().st_size
    print(json.dumps({
        "model": model_name, "mode": mode, "trainable": trainable, "total": total,
        "step_s": statistics.median(times[2:]), "train_peak_mb": peak_mb, "cuda_peak_mb": cuda_mb, "saved_mb": saved / 2**20,
    }))


def cost(args: argparse.Namespace) -> None:
    print(f"== cost: batch {args.batch} x {args.tokens} tokens, {args.steps} timed steps, LoRA r={args.r}, gradient checkpointing {'on' if args.gradient_checkpointing else 'off'} (device: {'cuda' if _has_cuda() else 'cpu'})")
    for model_name in args.models:
        rows = {}
        for mode in ("full", "lora"):
            out = subprocess.run(
                [sys.executable, __file__, "--child", model_name, mode, "--batch", str(args.batch), "--tokens", str(args.tokens), "--steps", str(args.steps), "--r", str(args.r)]
                + (["--gradient-checkpointing"] if args.gradient_checkpointing else []),
                capture_output=True, text=True, check=True,
            )
            rows[mode] = json.loads(out.stdout.strip().splitlines()[-1])
        full, lora = rows["full"], rows["lora"]
        memory_key = "cuda_peak_mb" if full["cuda_peak_mb"] is not None else "train_peak_mb"
        print(f"{model_name}: {full['total']:,} parameters")
        for mode, row in rows.items():
            print(
                f"  {mode:<4}  trainable {row['trainable']:>12,} ({100 * row['trainable'] / row['total']:6.2f}%)  "
                f"step {row['step_s']:.3f} s  training peak {row[memory_key]:8.1f} MB  saves {row['saved_mb']:8.2f} MB"
            )
        print(
            f"  lora/full: trainable {lora['trainable'] / full['trainable']:.4f}  step time {lora['step_s'] / full['step_s']:.2f}x  "
            f"peak memory {lora[memory_key] / full[memory_key]:.2f}x  checkpoint {lora['saved_mb'] / full['saved_mb']:.4f}x"
        )


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def quality(args: argparse.Namespace) -> None:
    import gzip

    from biolm import api
    from biolm.cli import compose

    init_from = Path(args.init_from)
    if not (init_from / "model.safetensors").exists():
        print(f"== quality: skipped, no pretrained run at {init_from} (pretrain one: biolm pretrain experiment=ecoli_hyena_clm)")
        return
    data_cfg = compose("finetune", [f"data={args.data}"]).data
    work = Path(tempfile.mkdtemp(prefix="lora_bench_"))
    train = work / "train.csv"
    with gzip.open(REPO / data_cfg.train, "rt") if str(data_cfg.train).endswith(".gz") else open(REPO / data_cfg.train) as handle:
        lines = handle.read().splitlines()
    rows = args.train_rows or len(lines) - 1
    train.write_text("\n".join(lines[: rows + 1]) + "\n")
    print(f"== quality: {args.data}, {rows} training rows, {args.epochs} epochs, from {init_from}")
    results = {}
    for mode, extra in (("full", [f"optim.lr={args.lr_full}"]), ("lora", ["adapter=lora", f"adapter.r={args.r}", f"adapter.alpha={2 * args.r}", f"optim.lr={args.lr_lora}"])):
        cfg = compose(
            "finetune",
            [
                f"data={args.data}", f"data.train={train}", f"data.val={REPO / data_cfg.val}", f"data.test={REPO / data_cfg.test}",
                f"init_from={init_from}", f"trainer.max_epochs={args.epochs}", "early_stopping.patience=0", "progress_bar=false",
                f"output_dir={work}", f"run_name={mode}", *extra,
            ],
        )
        start = time.perf_counter()
        run = api.finetune(cfg)
        metrics = json.loads((run / "test_metrics.json").read_text())
        results[mode] = metrics
        print(
            f"  {mode:<4}  test MCC {metrics.get('mcc', float('nan')):.3f}  AUROC {metrics.get('auroc', float('nan')):.3f}  "
            f"best val {metrics['best_val']:.3f}  trainable {metrics['trainable_params']:,}/{metrics['total_params']:,}  {time.perf_counter() - start:.0f} s"
        )
    if "auroc" in results["full"]:
        print(f"  lora - full: AUROC {100 * (results['lora']['auroc'] - results['full']['auroc']):+.1f} points, MCC {100 * (results['lora']['mcc'] - results['full']['mcc']):+.1f} points")


def main() -> None:
    args = parse_args()
    if args.child:
        child(args)
        return
    os.chdir(REPO)
    if not args.skip_cost:
        cost(args)
    if not args.skip_quality:
        quality(args)


if __name__ == "__main__":
    main()

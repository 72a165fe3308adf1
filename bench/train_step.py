"""Training-step throughput: biolm BertEncoder + SequenceHead vs transformers BertForSequenceClassification.

One step = forward + cross-entropy + backward + AdamW step, on the same random batch for both
models, same size and dropout. The reference uses transformers' default attention
implementation (sdpa); the line it prints says which one was actually used. Warm-up steps first,
then timed steps alternate between the two models (one step each, in turn) so drift on a shared
machine hits both; throughput uses the median step time. Prints samples/s for each and the
ratio (ours / transformers) last.

    python bench/train_step.py                       # 256 wide, 4 layers, batch 32 x 128 tokens
    python bench/train_step.py --pad-fraction 0.5    # half the rows padded to random lengths

Where ours differs: one fused QKV matmul instead of three, token type 0 added as a row instead
of a lookup, no mask at all when the batch has no pads (SDPA then takes its fastest path), and
no pooler dense+tanh in the head (cls hidden -> dropout -> linear). On CPU both spend most of a
step in the same matmuls and ~15% drawing dropout masks (attention dropout also keeps SDPA on its
math path), so expect parity-plus rather than a large gap at this size.

Length-bucketed batching (the datamodule's ``data.bucket_pool``) is measured by bench/train_varlen.py, with what
was tried and did not win on CPU (unpadding the linears: no gain once batches are bucketed; nested-tensor
attention: 4-5x slower; torch.compile with dynamic shapes: slower). Not measured: bf16 autocast on GPU.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import transformers

from biolm.models import BertEncoder, SequenceHead, SequenceModel


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--intermediate", type=int, default=1024)
    parser.add_argument("--vocab", type=int, default=4101, help="4101 = 6-mer vocabulary + 5 specials")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--labels", type=int, default=2)
    parser.add_argument(
        "--pad-fraction", type=float, default=0.0, help="share of rows padded to a random length"
    )
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=15, help="timed steps per model")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)"
    )
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def make_batch(args: argparse.Namespace) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(args.seed)
    ids = torch.randint(5, args.vocab, (args.batch, args.seq_len), generator=g)
    ids[:, 0] = 2  # a CLS-like id at position 0
    mask = torch.ones(args.batch, args.seq_len, dtype=torch.long)
    padded_rows = int(round(args.pad_fraction * args.batch))
    for row in range(padded_rows):
        length = int(torch.randint(args.seq_len // 4, args.seq_len, (1,), generator=g))
        mask[row, length:] = 0
    ids = ids.masked_fill(mask == 0, 0)
    labels = torch.randint(0, args.labels, (args.batch,), generator=g)
    return ids, mask, labels


def build_ours(args: argparse.Namespace) -> torch.nn.Module:
    trunk = BertEncoder(
        args.vocab,
        pad_token_id=0,
        hidden_size=args.hidden,
        num_layers=args.layers,
        num_heads=args.heads,
        intermediate_size=args.intermediate,
        max_position_embeddings=max(512, args.seq_len),
        hidden_dropout=0.1,
        attention_dropout=0.1,
    )
    return SequenceModel(trunk, SequenceHead(args.hidden, args.labels, pooling="cls", dropout=0.1))


def build_reference(args: argparse.Namespace) -> torch.nn.Module:
    config = transformers.BertConfig(
        vocab_size=args.vocab,
        hidden_size=args.hidden,
        num_hidden_layers=args.layers,
        num_attention_heads=args.heads,
        intermediate_size=args.intermediate,
        max_position_embeddings=max(512, args.seq_len),
        hidden_dropout_prob=0.1,
        attention_probs_dropout_prob=0.1,
        num_labels=args.labels,
        pad_token_id=0,
    )
    return transformers.BertForSequenceClassification(config)


def make_step(
    model: torch.nn.Module,
    ids: torch.Tensor,
    mask: torch.Tensor,
    labels: torch.Tensor,
    ours: bool,
):
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    model.train()

    def step() -> None:
        if ours:
            logits = model(ids, mask).logits
        else:
            logits = model(input_ids=ids, attention_mask=mask).logits
        loss = torch.nn.functional.cross_entropy(logits, labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def time_step(step) -> float:
    start = time.perf_counter()
    step()
    return time.perf_counter() - start


def main() -> None:
    args = parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    ids, mask, labels = make_batch(args)
    ours_model, reference_model = build_ours(args), build_reference(args)
    n_ours = sum(p.numel() for p in ours_model.parameters())
    n_ref = sum(p.numel() for p in reference_model.parameters())
    print(
        f"torch {torch.__version__}, transformers {transformers.__version__}, "
        f"threads {torch.get_num_threads()}; "
        f"reference attention: {reference_model.config._attn_implementation}"
    )
    print(
        f"size: hidden {args.hidden}, layers {args.layers}, heads {args.heads}, "
        f"intermediate {args.intermediate}, vocab {args.vocab}; batch {args.batch} x {args.seq_len} tokens, "
        f"{int((mask == 0).any(1).sum())} padded rows; params ours {n_ours:,}, transformers {n_ref:,}"
    )
    steps = {
        "ours": make_step(ours_model, ids, mask, labels, ours=True),
        "transformers": make_step(reference_model, ids, mask, labels, ours=False),
    }
    for step in steps.values():
        for _ in range(args.warmup):
            step()
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(args.steps):
        for name, step in steps.items():
            times[name].append(time_step(step))
    median = {name: statistics.median(t) for name, t in times.items()}
    rate = {name: args.batch / s for name, s in median.items()}
    for name in steps:
        print(f"{name:>13}: {rate[name]:8.1f} samples/s (median {1000 * median[name]:.1f} ms/step)")
    print(f"ratio (ours / transformers): {rate['ours'] / rate['transformers']:.2f}x")


if __name__ == "__main__":
    main()

"""Training throughput on variable-length data: biolm's loader + model vs transformers' usual pipeline.

Same data for every side: 384 sequences of 50..500 bp drawn at random (or ``--data gue``: the
bundled GUE sets mixed, 70 / 100 / 300 bp), tokenised once as non-overlapping 3-mers (17..167
tokens; ``--k 6 --stride 1`` for DNABERT's overlapping 6-mers, 3x the tokens), random
labels; same model size (256 wide, 4 layers, as bench/train_step.py) and dropout (0.1).

- ours: `SequenceDataModule` with ``bucket_pool=50`` (the finetune default: length-bucketed
  batches, `biolm.data.bucketing.LengthBucketBatches`) and `Collator`, into `BertEncoder` +
  `SequenceHead`.
- transformers: what ``Trainer`` does by default: ``RandomSampler`` batches, collated by
  ``DataCollatorWithPadding``, into ``BertForSequenceClassification`` (its default attention, sdpa).
- transformers group_by_length: the same with the order of ``Trainer(group_by_length=True)``
  (``LengthGroupedSampler``: mega-batches of 50 batches sorted by length, the size it uses from
  6,400 sequences on), a second, fairer reference.

One step = fetch + collate the batch, forward, cross-entropy, backward, gradient clipping at 1.0
(as both trainers do by default), AdamW step. After warm-up steps, one timed epoch per side with
the steps interleaved (one step of each side in turn) so drift on a shared machine hits all;
samples/s = sequences / summed step time. Prints each side, the padding share of its batches and
the ratios; the ratio over transformers' default pipeline last.

    python bench/train_varlen.py                  # random 50..500 bp, batch 32
    python bench/train_varlen.py --data gue       # the bundled GUE sets mixed
    python bench/train_varlen.py --compile        # also torch.compile ours (dynamic shapes)

Measured and not kept (2-core CPU): unpadding, i.e. packing the real tokens into ``(tokens, D)``
for the linears and LayerNorms and re-padding only for attention, is 1.28x on a randomly batched
50..500 bp batch (43% padding) but 1.00x on a bucketed one (1% padding), so bucketing already
takes the gain; nested-tensor (jagged) SDPA runs 4-5x slower than padded SDPA on CPU (a per-sequence
fallback). torch.compile (inductor, ``dynamic=True``) took 137 s to compile and then ran bucketed
batches of new lengths at 0.31x eager speed, so it is not offered for training.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import time
from pathlib import Path

import numpy as np
import torch
import transformers
from torch.utils.data import DataLoader, RandomSampler
from transformers.trainer_pt_utils import get_length_grouped_indices

from biolm.data.datasets import SequenceDataModule, TokenDataset
from biolm.models import BertEncoder, SequenceHead, SequenceModel
from biolm.tokenizers import KmerTokenizer

GUE = Path(__file__).resolve().parents[1] / "data" / "gue"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", choices=("random", "gue"), default="random")
    parser.add_argument("--n", type=int, default=384, help="training sequences (one timed epoch)")
    parser.add_argument("--min-bp", type=int, default=50)
    parser.add_argument("--max-bp", type=int, default=500)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--k", type=int, default=3, help="k-mer size")
    parser.add_argument("--stride", type=int, default=3, help="k-mer stride (1: overlapping, DNABERT's 6-mers are --k 6 --stride 1)")
    parser.add_argument("--pool", type=int, default=50, help="batches per sorted pool, ours (the finetune default) and transformers' mega-batches")
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--intermediate", type=int, default=1024)
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per side first")
    parser.add_argument("--compile", action="store_true", help="torch.compile our model (dynamic shapes)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def sequences(args: argparse.Namespace) -> list[str]:
    """``args.n`` DNA sequences: uniform lengths in [min_bp, max_bp], or GUE rows of the three bundled sets."""
    rng = np.random.default_rng(args.seed)
    if args.data == "random":
        lengths = rng.integers(args.min_bp, args.max_bp + 1, size=args.n)
        return ["".join(rng.choice(list("ACGT"), size=n)) for n in lengths]
    rows = []
    for task in ("prom_300_tata", "prom_core_all", "tf_human_0"):
        with gzip.open(GUE / task / "train.csv.gz", "rt") as handle:
            rows += [row["sequence"] for _, row in zip(range(args.n), csv.DictReader(handle), strict=False)]
    return [rows[i] for i in rng.permutation(len(rows))[: args.n]]


def build_ours(args: argparse.Namespace, vocab: int) -> torch.nn.Module:
    trunk = BertEncoder(
        vocab, pad_token_id=0, hidden_size=args.hidden, num_layers=args.layers, num_heads=args.heads,
        intermediate_size=args.intermediate, max_position_embeddings=512, hidden_dropout=0.1, attention_dropout=0.1,
    )
    return SequenceModel(trunk, SequenceHead(args.hidden, 2, pooling="cls", dropout=0.1))


def build_reference(args: argparse.Namespace, vocab: int) -> torch.nn.Module:
    config = transformers.BertConfig(
        vocab_size=vocab, hidden_size=args.hidden, num_hidden_layers=args.layers, num_attention_heads=args.heads,
        intermediate_size=args.intermediate, max_position_embeddings=512, hidden_dropout_prob=0.1,
        attention_probs_dropout_prob=0.1, num_labels=2, pad_token_id=0,
    )
    return transformers.BertForSequenceClassification(config)


def reference_tokenizer(pad_id: int) -> transformers.PreTrainedTokenizerFast:
    """A fast tokenizer that only pads (the ids are already made), for ``DataCollatorWithPadding``."""
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel

    vocab = {"[PAD]": pad_id, "[UNK]": pad_id + 1}
    return transformers.PreTrainedTokenizerFast(tokenizer_object=Tokenizer(WordLevel(vocab, unk_token="[UNK]")), pad_token="[PAD]")


class MegaBatchSampler(torch.utils.data.Sampler):
    """``LengthGroupedSampler``'s order with mega-batches of ``pool`` batches: Trainer's group_by_length
    uses 50 from 6,400 sequences on (fewer on smaller sets, which would favour ours in a short bench)."""

    def __init__(self, lengths: list[int], batch_size: int, pool: int, generator: torch.Generator):
        self.lengths, self.batch_size, self.pool, self.generator = lengths, batch_size, pool, generator

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self):
        return iter(get_length_grouped_indices(self.lengths, self.batch_size, mega_batch_mult=self.pool, generator=self.generator))


class Side:
    """One pipeline: a batch iterator and a model stepped by AdamW; ``step()`` is timed whole."""

    def __init__(self, name: str, loader: DataLoader, model: torch.nn.Module, ours: bool):
        self.name, self.loader, self.model, self.ours = name, loader, model, ours
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        self.batches = iter(loader)
        self.seconds = 0.0
        self.samples = self.cells = self.pads = 0
        model.train()

    def step(self, timed: bool) -> None:
        start = time.perf_counter()
        batch = next(self.batches)
        ids, mask = batch["input_ids"], batch["attention_mask"]
        if self.ours:
            logits = self.model(ids, mask).logits
        else:
            logits = self.model(input_ids=ids, attention_mask=mask).logits
        loss = torch.nn.functional.cross_entropy(logits, batch["labels"])
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.optimizer.step()
        if timed:
            self.seconds += time.perf_counter() - start
            self.samples += len(ids)
            self.cells += mask.numel()
            self.pads += int((mask == 0).sum())

    def restart(self) -> None:
        self.batches = iter(self.loader)

    def __str__(self) -> str:
        return (f"{self.name:>31}: {self.samples / self.seconds:7.1f} samples/s "
                f"({self.seconds:.1f} s for {self.samples} sequences, {100 * self.pads / self.cells:.0f}% of batch cells padding)")


def main() -> None:
    args = parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    tokenizer = KmerTokenizer(k=args.k, stride=args.stride)
    seqs = sequences(args)
    tokens = tokenizer.encode_batch(seqs)
    labels = np.random.default_rng(args.seed).integers(0, 2, size=len(tokens))
    lengths = [len(t) for t in tokens]

    ours_loader = SequenceDataModule({"train": TokenDataset(tokens, labels)}, tokenizer.pad_id, args.batch, seed=args.seed, bucket_pool=args.pool).train_dataloader()
    features = [{"input_ids": t.tolist(), "labels": int(y)} for t, y in zip(tokens, labels, strict=True)]
    collate = transformers.DataCollatorWithPadding(reference_tokenizer(tokenizer.pad_id))
    generator = torch.Generator().manual_seed(args.seed)
    random_loader = DataLoader(features, batch_size=args.batch, sampler=RandomSampler(features, generator=generator), collate_fn=collate)
    grouped = MegaBatchSampler(lengths, args.batch, args.pool, torch.Generator().manual_seed(args.seed))
    grouped_loader = DataLoader(features, batch_size=args.batch, sampler=grouped, collate_fn=collate)

    ours_model = build_ours(args, tokenizer.vocab_size)
    if args.compile:
        ours_model = torch.compile(ours_model, dynamic=True)
    sides = [
        Side("ours (bucketed)" + (" compiled" if args.compile else ""), ours_loader, ours_model, ours=True),
        Side("transformers (random batches)", random_loader, build_reference(args, tokenizer.vocab_size), ours=False),
        Side("transformers group_by_length", grouped_loader, build_reference(args, tokenizer.vocab_size), ours=False),
    ]
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, threads {torch.get_num_threads()}; "
          f"reference attention: {sides[1].model.config._attn_implementation}")
    print(f"data: {args.data}, {len(seqs)} sequences of {min(map(len, seqs))}..{max(map(len, seqs))} bp "
          f"({min(lengths)}..{max(lengths)} tokens, mean {np.mean(lengths):.0f}), batch {args.batch}, sorted pools of {args.pool} batches; "
          f"model: hidden {args.hidden}, layers {args.layers}, heads {args.heads}, intermediate {args.intermediate}")
    for side in sides:
        for _ in range(args.warmup):
            side.step(timed=False)
        side.restart()
    for _ in range(min(len(side.loader) for side in sides)):
        for side in sides:
            side.step(timed=True)
    for side in sides:
        print(side)
    rate = {side.name: side.samples / side.seconds for side in sides}
    ours, default, grouped_rate = rate[sides[0].name], rate[sides[1].name], rate[sides[2].name]
    print(f"ratio (ours / transformers group_by_length): {ours / grouped_rate:.2f}x")
    print(f"ratio (ours / transformers default random batches): {ours / default:.2f}x")


if __name__ == "__main__":
    main()

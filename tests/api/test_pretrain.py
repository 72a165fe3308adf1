"""Genome pretraining end to end: resume equals uninterrupted, fine-tuning from a pretrained
trunk, BPE tokenizer training, and bits/base bookkeeping."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from biolm import api
from biolm.cli import compose, main
from biolm.tasks.language_model import LanguageModelTask
from biolm.tokenizers import load_tokenizer

REPO = Path(__file__).resolve().parents[2]

TINY_HYENA = [
    "model=hyena_tiny",
    "tokenizer=char",
    "model.trunk.d_model=32",
    "model.trunk.n_layer=1",
    "model.trunk.max_seq_len=256",
    "model.trunk.embed_dropout=0.1",
    "data.window_bp=200",
    "data.windows_per_epoch=32",
    "data.val_windows=8",
    "data.batch_size=8",
    "trainer.accelerator=cpu",
    "progress_bar=false",
    "baseline.markov_order=2",
]


def _pretrain(genome, out, name, *extra):
    cfg = compose("pretrain", [f"data.fasta={genome}", f"output_dir={out}", f"run_name={name}", *TINY_HYENA, *extra])
    return api.pretrain(cfg)


def test_pretrain_writes_a_run_with_bits_per_base_and_the_markov_baseline(genome, tmp_path):
    run = _pretrain(genome, tmp_path, "p", "trainer.max_epochs=2")
    metrics = json.loads((run / "pretrain_metrics.json").read_text())
    assert {"val/loss", "val/perplexity", "val/bits_per_base", "heldout/bits_per_base", "heldout/markov2_bits_per_base"} <= set(metrics)
    # char tokens: one base per predicted token, so bits/base is nats/token over ln 2
    assert metrics["val/bits_per_base"] == pytest.approx(metrics["val/loss"] / np.log(2), rel=1e-5)
    assert metrics["val/perplexity"] == pytest.approx(np.exp(metrics["val/loss"]), rel=1e-5)
    # the final report scores every held-out tile (two 1500 bp tails / 200 bp = 7 + 7), not the 8 validated each epoch
    assert metrics["heldout/windows"] == 14 and metrics["heldout/bases"] == 14 * 200
    # causal LM over [CLS] w [SEP]: every base of every tile is predicted once ([SEP] is not a target)
    assert metrics["heldout/predicted_tokens"] == 14 * 200
    # the Markov chain is fitted on the first 90% of each contig and scores exactly those tiles
    from biolm.models.markov import MarkovChain

    text = genome.read_text().split()
    a, b = text[1], text[3]
    chain = MarkovChain(order=2).fit([a[:13500], b[:13500]])
    tiles = [seq[13500 + i * 200 : 13500 + (i + 1) * 200] for seq in (a, b) for i in range(7)]
    assert metrics["heldout/markov2_bits_per_base"] == pytest.approx(chain.bits_per_base(tiles), rel=1e-9)
    assert {"config.yaml", "tokenizer", "model.safetensors", "metrics.csv", "checkpoints"} <= {p.name for p in run.iterdir()}
    assert (run / "checkpoints" / "last.ckpt").exists()


def test_length_warmup_grows_the_training_windows(genome, tmp_path, monkeypatch):
    seen: dict[int, set[int]] = {}
    original = LanguageModelTask.training_step

    def record(self, batch, batch_idx):
        seen.setdefault(self.current_epoch, set()).add(int(batch["attention_mask"].sum(dim=1).max()))
        return original(self, batch, batch_idx)

    monkeypatch.setattr(LanguageModelTask, "training_step", record)
    _pretrain(genome, tmp_path, "warm", "trainer.max_epochs=3", "data.length_warmup.min_bp=50", "data.length_warmup.epochs=2")
    # 50, 100, then the full 200 bp, each window between [CLS] and [SEP]
    assert seen == {0: {52}, 1: {102}, 2: {202}}


def test_resume_equals_uninterrupted_training(genome, tmp_path, monkeypatch):
    whole = _pretrain(genome, tmp_path, "whole", "trainer.max_epochs=2")

    original = LanguageModelTask.on_train_epoch_end

    def stop_after_first_epoch(self):
        original(self)
        self.trainer.should_stop = True

    monkeypatch.setattr(LanguageModelTask, "on_train_epoch_end", stop_after_first_epoch, raising=False)
    _pretrain(genome, tmp_path, "resumed", "trainer.max_epochs=2")
    monkeypatch.undo()
    first = torch.load(tmp_path / "resumed" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert first["global_step"] == 4  # stopped after the first epoch of 32 windows / 8
    resumed = _pretrain(genome, tmp_path, "resumed", "trainer.max_epochs=2", "ckpt=last")
    a = torch.load(whole / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["state_dict"]
    b = torch.load(resumed / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["state_dict"]
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)


def test_finetune_starts_from_the_pretrained_trunk(genome, tiny_task, tmp_path):
    pre = _pretrain(genome, tmp_path, "pre", "trainer.max_epochs=1")
    cfg = compose(
        "finetune",
        [
            f"init_from={pre}",
            "model=hyena_tiny",
            f"data.train={tiny_task['train']}",
            f"data.val={tiny_task['dev']}",
            f"data.test={tiny_task['test']}",
            "trainer.max_epochs=0",
            "progress_bar=false",
            f"output_dir={tmp_path}",
            "run_name=ft",
        ],
    )
    run = api.finetune(cfg)
    before = load_file(str(pre / "model.safetensors"))
    after = load_file(str(run / "model.safetensors"))
    trunk = [k for k in after if k.startswith("trunk.")]
    assert trunk and all(torch.equal(after[k], before[k]) for k in trunk)
    assert load_tokenizer(run / "tokenizer").vocab == load_tokenizer(pre / "tokenizer").vocab


def test_tokenizer_train_cli_writes_a_loadable_bpe(genome, tmp_path):
    out = tmp_path / "tok"
    assert main(["tokenizer", "train", f"fasta={genome}", "vocab_size=64", f"output={out}"]) == 0
    tokenizer = load_tokenizer(out)
    assert tokenizer.kind == "bpe" and tokenizer.vocab_size == 64
    ids = tokenizer.encode_batch(["ACGTACGTTTGA"])[0]
    assert ids[0] == tokenizer.cls_id and tokenizer.decode(ids) == "ACGTACGTTTGA"


def test_pretrain_errors_are_one_line(genome, tmp_path, capsys):
    assert main(["pretrain", f"data.fasta={tmp_path / 'none.fa'}", f"output_dir={tmp_path}"]) == 2
    assert "none.fa" in capsys.readouterr().err
    assert main(["pretrain", f"data.fasta={genome}", f"output_dir={tmp_path}", "run_name=x", "ckpt=last", *TINY_HYENA]) == 2
    assert "ckpt: no checkpoint at" in capsys.readouterr().err
    assert main(["pretrain", f"data.fasta={genome}", "data.holdout=middle", f"output_dir={tmp_path}", *TINY_HYENA]) == 2
    assert "data.holdout" in capsys.readouterr().err


class _UniformOverBases(torch.nn.Module):
    """Logits that put equal mass on every token made only of A/C/G/T bases, none elsewhere."""

    def __init__(self, tokenizer):
        super().__init__()
        allowed = [i for tok, i in tokenizer.vocab.items() if tok and set(tok) <= set("ACGT")]
        self.bias = torch.full((tokenizer.vocab_size,), -1e9)
        self.bias[allowed] = 0.0
        self.max_tokens = None

    def forward(self, input_ids, attention_mask, positions=None):
        from biolm.models.heads import ModelOutput

        logits = self.bias.expand(*input_ids.shape, -1)
        return ModelOutput(logits=logits if positions is None else logits[positions], hidden=logits)


@pytest.mark.parametrize(
    ("tokenizer_name", "objective", "expected"),
    [
        ("char", "clm", 2.0),
        ("char", "mlm", 2.0),
        ("kmer3_stride3", "clm", 2.0),  # 6 bits per 3-mer token, 3 bases per token
        # Overlapping 6-mers: each masked token stands for the one base its span hides, so a model
        # that ignores the visible neighbours pays log2(4096) = 12 bits for it; one that reads them
        # pays 2. Bits/base of overlapping k-mer MLM is comparable only between such models.
        ("kmer6", "mlm", 12.0),
    ],
)
def test_uniform_model_bits_per_base(tokenizer_name, objective, expected):
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    tokenizer = instantiate(OmegaConf.load(REPO / "configs" / "tokenizer" / f"{tokenizer_name}.yaml"))
    task = LanguageModelTask(_UniformOverBases(tokenizer), tokenizer, objective)
    rng = np.random.default_rng(0)
    windows = ["".join(rng.choice(list("ACGT"), 300)) for _ in range(4)]
    ids = torch.from_numpy(np.stack(tokenizer.encode_batch(windows)))
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids, dtype=torch.bool)}
    total, count = task._nll(batch, torch.Generator().manual_seed(0))
    bits = float(total) / count / np.log(2) / task.bases_per_token
    assert bits == pytest.approx(expected, abs=1e-4)

"""Continued pretraining from a public checkpoint: `biolm pretrain model.pretrained=<folder> tokenizer=pretrained`
starts from the checkpoint's weights, its MLM head included, and its tokenizer (a tiny DNABERT-2 folder)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from biolm import api
from biolm.cli import compose
from biolm.data.pretraining import GenomeDataModule
from biolm.models import build_language_model
from biolm.tasks.language_model import LanguageModelTask
from biolm.tokenizers import load_tokenizer
from biolm.tokenizers.checkpoint import from_checkpoint
from tests.checkpoints import REPO, write_tiny_dnabert2


def test_pretraining_starts_from_the_checkpoint_weights_head_and_tokenizer(genome, tmp_path):
    folder = write_tiny_dnabert2(tmp_path / "dnabert2")
    # lr=0: the one training step leaves every weight where the checkpoint put it
    cfg = compose("pretrain", [
        "model=dnabert2_base", f"model.pretrained={folder}", "tokenizer=pretrained", "objective=mlm", f"data.fasta={genome}",
        "data.window_bp=256", "data.windows_per_epoch=4", "data.val_windows=4", "data.batch_size=4", "trainer.max_epochs=1",
        "trainer.accelerator=cpu", "optim.lr=0", "baseline.markov_order=0", "progress_bar=false", f"output_dir={tmp_path}", "run_name=cpt",
    ])
    run_dir = api.pretrain(cfg)

    reference = build_language_model({"trunk": {"_target_": "biolm.models.bert.BertEncoder"}, "pretrained": str(folder)}, 4096, 3)
    saved = load_file(str(run_dir / "model.safetensors"))
    assert saved.keys() == reference.state_dict().keys() and any(name.startswith("head.transform") for name in saved)
    for name, tensor in reference.state_dict().items():
        torch.testing.assert_close(saved[name], tensor, rtol=0, atol=0, msg=name)

    tokenizer = load_tokenizer(run_dir / "tokenizer")
    sequence = "ACGTTGCAGGATTACCAGATTACAGGGCCCATAT"
    assert tokenizer.vocab_size == 4096 and (tokenizer.encode_batch([sequence])[0] == from_checkpoint(folder).encode_batch([sequence])[0]).all()

    # the held-out MLM loss of the run is the checkpoint's own, computed here without biolm's training loop
    metrics = json.loads((run_dir / "pretrain_metrics.json").read_text())
    datamodule = GenomeDataModule(cfg.data, tokenizer, int(cfg.seed))
    task = LanguageModelTask(reference, tokenizer, objective="mlm", seed=int(cfg.seed), **cfg.optim)
    direct = task.score(datamodule.loader(datamodule.heldout_windows()))
    assert np.isfinite(metrics["heldout/loss"]) and metrics["heldout/loss"] == pytest.approx(direct["loss"], rel=1e-5)

    # zero-shot scores of the run equal those of the checkpoint folder itself
    snvs = pd.read_csv(REPO / "data/variants/clinvar_brca1_windows_256/val.csv.gz", dtype={"chrom": str}).head(4)[["chrom", "pos", "ref", "alt"]]
    ref = REPO / "data/variants/clinvar_brca_grch38/chr17_42425000-43600000.GRCh38.fa.gz"
    from_run = api.score_variants(run_dir, snvs, ref, window_bp=128)
    from_folder = api.score_variants(api.load_pretrained_language_model(folder), snvs, ref, window_bp=128)
    assert np.isfinite(from_run["score"]).all()
    np.testing.assert_allclose(from_run["score"], from_folder["score"], rtol=1e-6)

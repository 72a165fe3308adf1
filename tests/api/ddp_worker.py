"""Run by test_ddp.py: a few DDP pretraining steps on CPU; each rank saves its weights.

Lightning starts rank 1 by re-running this script, so it must be a plain script.
"""

import sys
from pathlib import Path

import lightning as L
import torch
from hydra.utils import instantiate

from biolm.cli import compose
from biolm.data.pretraining import GenomeDataModule
from biolm.models import build_language_model
from biolm.tasks.language_model import LanguageModelTask

genome, out = sys.argv[1], Path(sys.argv[2])
cfg = compose(
    "pretrain",
    [f"data.fasta={genome}", "model=hyena_tiny", "tokenizer=char", "model.trunk.d_model=32", "model.trunk.n_layer=1",
     "model.trunk.max_seq_len=256", "data.window_bp=200", "data.windows_per_epoch=32", "data.val_windows=8", "data.batch_size=4"],
)
L.seed_everything(0)
tokenizer = instantiate(cfg.tokenizer)
datamodule = GenomeDataModule(cfg.data, tokenizer, seed=0)
task = LanguageModelTask(build_language_model(cfg.model, tokenizer.vocab_size, tokenizer.pad_id), tokenizer, "clm", lr=1e-2)
seen = []
original = task.training_step


def record(batch, batch_idx):
    seen.append(batch["input_ids"].clone())
    return original(batch, batch_idx)


task.training_step = record
trainer = L.Trainer(accelerator="cpu", strategy="ddp", devices=2, max_steps=3, logger=False, enable_checkpointing=False,
                    enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0)
trainer.fit(task, datamodule=datamodule)
torch.save({"state": task.model.state_dict(), "batches": seen}, out / f"rank{trainer.global_rank}.pt")

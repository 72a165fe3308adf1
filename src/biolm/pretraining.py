"""Genome pretraining runs and tokenizer training (re-exported by `biolm.api`).

`LanguageModelRecipe` is the `biolm.training` recipe of ``configs/pretrain.yaml``; `pretrain`
(= `biolm.training.fit` on that config) turns a composed ``pretrain`` config into a run folder: ``config.yaml``, ``tokenizer/``,
``model.safetensors`` (best held-out bits/base), ``checkpoints/last.ckpt`` (resume with
``ckpt=last``), ``metrics.csv`` and ``pretrain_metrics.json`` (per-epoch validation metrics, then the best weights and an
order-k Markov baseline scored on every held-out window: ``heldout/*``).
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import lightning as L
import torch
from omegaconf import DictConfig, OmegaConf

from biolm.errors import BiolmError
from biolm.fitting import resume_checkpoint
from biolm.runs import (
    check_window_fits,
    count_parameters,
    default_run_name,
    instantiate_config,
    write_json,
)
from biolm.tasks.callbacks import ResumeCheckpoint, SafetensorsCheckpoint, save_weights
from biolm.training import Job, Recipe

if TYPE_CHECKING:
    from biolm.tokenizers import BpeTokenizer

log = logging.getLogger(__name__)


def pretrain(cfg: DictConfig) -> Path:
    """Pretrain a model on FASTA genomes (masked or causal LM) and write its run folder.

    The run folder is written in place (it holds ``checkpoints/last.ckpt`` to resume from with
    ``ckpt=last``); every file in it is written atomically, and ``pretrain_metrics.json`` marks
    a finished run. The same as `biolm.training.fit` with the ``pretrain`` config (whose
    ``recipe`` is `LanguageModelRecipe`).

    Args:
        cfg: the composed ``pretrain`` config.

    Returns:
        The run folder.
    """
    from biolm.training import fit

    return fit(cfg)


class LanguageModelRecipe(Recipe):
    """Masked or causal LM pretraining on genome windows (``configs/pretrain.yaml``)."""

    def prepare(self, cfg: DictConfig) -> Job:
        from lightning.pytorch.utilities import rank_zero_only

        from biolm.data.pretraining import GenomeDataModule
        from biolm.models import build_language_model, pin_pretrained
        from biolm.tasks.language_model import LanguageModelTask

        tokenizer = instantiate_config(cfg.tokenizer, "tokenizer")
        datamodule = GenomeDataModule(cfg.data, tokenizer, int(cfg.seed))
        model = build_language_model(cfg.model, tokenizer.vocab_size, tokenizer.pad_id)
        pin_pretrained(cfg.model, model.trunk)
        check_window_fits(tokenizer, int(cfg.data.window_bp), model.max_tokens, "data.window_bp")
        run_dir = Path(cfg.output_dir) / (cfg.get("run_name") or default_run_name(f"pretrain-{cfg.objective.name}"))
        resume_from = resume_checkpoint(cfg, run_dir)
        # ckpt=last on a finished run continues it (e.g. with a larger trainer.max_epochs)
        # Under DDP, Lightning starts the other ranks by re-running this command: only rank 0 prepares the folder.
        if rank_zero_only.rank == 0 and (resume_from is None or not (run_dir / "config.yaml").exists()):
            if resume_from is None and run_dir.exists() and not cfg.get("overwrite"):
                raise BiolmError(f"run_name: {run_dir} already exists; pass ckpt=last to resume it, overwrite=true to replace it, or another run_name=")
            if resume_from is None and run_dir.exists():
                shutil.rmtree(run_dir)
            run_dir.mkdir(parents=True, exist_ok=True)  # ckpt=<path>: a checkpoint kept elsewhere starts this folder
            OmegaConf.save(cfg, run_dir / "config.yaml", resolve=True)
            tokenizer.save(run_dir / "tokenizer")
        trainable, total = count_parameters(model)
        log.info("model: %s trainable of %s parameters | objective: %s | run: %s", f"{trainable:,}", f"{total:,}", cfg.objective.name, run_dir)
        task = LanguageModelTask(
            model,
            tokenizer,
            objective=cfg.objective.name,
            mlm_probability=float(cfg.objective.get("mlm_probability", 0.15)),
            seed=int(cfg.seed),
            **cfg.optim,
        )
        best = SafetensorsCheckpoint(run_dir, "val/bits_per_base", "min")
        return Job(
            task=task,
            datamodule=datamodule,
            folder=run_dir,
            final=run_dir,
            resume_from=resume_from,
            resume_hint=f"the same command and run_name={run_dir.name} ckpt=last",
            callbacks=[best, ResumeCheckpoint(run_dir / "checkpoints")],
            state={"best": best},
        )

    def finish(self, cfg: DictConfig, trainer: L.Trainer, job: Job) -> Path:
        run_dir, best, task = job.final, job.state["best"], job.task
        if best.best is None:
            save_weights(task.model, run_dir / "model.safetensors")
        metrics = {key: float(value) for key, value in trainer.callback_metrics.items() if key.startswith("val/")}
        metrics.update({"best_val_bits_per_base": best.best, "best_epoch": best.best_epoch, "global_step": trainer.global_step})
        order = int(cfg.get("baseline", {}).get("markov_order", 0) or 0)
        metrics.update(_heldout_report(task, job.datamodule, run_dir / "model.safetensors", order, trainer.strategy.root_device))
        write_json(metrics, run_dir / "pretrain_metrics.json")
        return run_dir


def _heldout_report(task, datamodule, weights: Path, markov_order: int, device: torch.device | str = "cpu") -> dict[str, float]:
    """The saved (best) weights and an order-k Markov chain scored on the same held-out tiles.

    Every non-overlapping held-out window is scored (``data.val_windows`` thins only the
    per-epoch validation). The Markov chain is fitted on the training regions and scores the
    bases of those same windows from their ``k``-th on; the model scores every base of a window.
    """
    from safetensors.torch import load_file

    windows = datamodule.heldout_windows()
    if windows is None:
        return {}
    task.model.load_state_dict(load_file(str(weights)), strict=True)
    task.to(device)  # the training device: Lightning moves the model back to the CPU after fit
    scores = task.score(datamodule.loader(windows))
    report = {f"heldout/{key}": value for key, value in scores.items()}
    report["heldout/windows"] = float(len(windows))
    report["heldout/bases"] = float(len(windows) * windows.window_bp)
    if markov_order:
        from biolm.models.markov import MarkovChain

        chain = MarkovChain(order=markov_order).fit(datamodule.genome[r.contig][r.start : r.end] for r in datamodule.train_regions)
        tiles = (windows.locate(i)[0] for i in range(len(windows)))
        report[f"heldout/markov{markov_order}_bits_per_base"] = float(chain.bits_per_base(datamodule.genome[t.contig][t.start : t.end] for t in tiles))
    return report


def train_tokenizer(fasta: str | Path | list[str | Path], vocab_size: int, output: str, chunk_bp: int = 1000, max_bp: int | None = None) -> BpeTokenizer:
    """Train a DNABERT-2-style BPE tokenizer on genome chunks and save it to ``output``.

    Args:
        fasta: one FASTA path or a list of them.
        vocab_size: vocabulary size, special tokens included.
        output: folder to write (``tokenizer.json`` + ``biolm_tokenizer.json``).
        chunk_bp: genomes are cut into chunks of this length, and at runs of N.
        max_bp: use at most this many bases.

    Returns:
        The trained `BpeTokenizer`.
    """
    import re

    from biolm.data.genome import load_genome
    from biolm.tokenizers import BpeTokenizer

    if vocab_size < 10:
        raise BiolmError(f"vocab_size: {vocab_size} is too small (the 5 special tokens and A, C, G, T come first)")
    genome = load_genome([fasta] if isinstance(fasta, str) else list(fasta))
    chunks: list[str] = []
    used = 0
    for seq in genome.values():
        text = seq.tobytes().decode("ascii")
        for piece in re.split(r"N+", text):
            for start in range(0, len(piece), chunk_bp):
                chunk = piece[start : start + chunk_bp]
                if max_bp is not None and used >= int(max_bp):
                    break
                chunks.append(chunk)
                used += len(chunk)
    tokenizer = BpeTokenizer.train(chunks, vocab_size=vocab_size)
    tokenizer.save(output)
    return tokenizer

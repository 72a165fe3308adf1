"""Instruction tuning of a causal LM (``biolm llm sft``): `SftRecipe`, the `biolm.training` recipe of
``configs/text/llm_sft.yaml``, and `SftTask`, its LightningModule.

In: ``model.pretrained`` (`biolm.models.causal_lm.load_causal_lm`), ``data.train`` (a labelled corpus,
turned into JSON-answer chats, or a JSONL instruction file, `biolm.text.instructions`), optionally
``data.val`` (else ``data.split.val`` of the training documents is held out) and ``data.test`` (a
labelled corpus scored before and after tuning, `biolm.text.llm.evaluate_llm`). The loss is the
mean cross-entropy over answer tokens (prompt tokens carry -100); the adapter is ``adapter=lora``
(peft, the same config group as the NER encoders; a causal LM's default targets are ``q_proj`` and
``v_proj``) or ``adapter=none`` (all weights). Batches are length-bucketed on one device, or packed
(``data.packing``). The engine is `biolm.training.fit`: Lightning's loop, precision, accumulation and
progress bar, ``checkpoints/last.ckpt`` resuming, early stopping on ``val/loss``.

Out: a run folder with ``config.yaml``, ``llm.json`` (schema, prompt, the base model's SHA-256),
``tokenizer/``, ``adapter/`` (LoRA; the base stays where ``model.pretrained`` points) or
``model.safetensors``, ``metrics.csv``, ``test_metrics.json`` (``before``/``after``),
``test_answers.jsonl``, ``plots/curves.png`` and ``report.md``.

TRL's ``SFTTrainer`` is not used: it is a ``transformers.Trainer``, a second training loop beside
Lightning. Its three SFT pieces are small and live here: the completion-only loss (`encode_example`),
packing (`pack_examples`) and chat templates (the tokenizer's own).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict

from biolm.errors import BiolmError
from biolm.finetuning import plan_schedule, staged_job
from biolm.fitting import publish, training_stage
from biolm.models.causal_lm import load_causal_lm, weights_fingerprint
from biolm.runs import count_parameters, write_json
from biolm.tasks.sequence import configure_adamw
from biolm.text.answers import RecordSchema, schema_for
from biolm.text.instructions import (
    Example,
    PromptStyle,
    corpus_examples,
    encode_example,
    is_instruction_file,
    pack_examples,
    read_instructions,
)
from biolm.text.llm import LlmRun, corpus_maps, evaluate_llm, full_schema, pretrained_path, prompt_style, record_maps, sample_sentences
from biolm.text.ner import held_out, read_corpora, require_labels
from biolm.training import Job, Recipe

log = logging.getLogger(__name__)


# ---------------------------------------------------------------- data


def _paths(source) -> list:
    return list(source) if isinstance(source, list | ListConfig | tuple) else [source]


def read_examples(cfg: DictConfig, name: str, schema: RecordSchema | None) -> tuple[list[Example], RecordSchema | None]:
    """The examples of ``data.<name>`` and the record schema: a corpus's schema is that of its entity types (or
    ``schema`` when given, e.g. the training split's); an instruction file's that of its JSON answers."""
    source = cfg.data.get(name)
    if not source:
        raise BiolmError(f"data.{name}: missing; pass data.{name}=<labelled corpus or JSONL instructions>")
    style = prompt_style(cfg)
    if all(is_instruction_file(str(path)) for path in _paths(source)):
        examples = [e for path in _paths(source) for e in read_instructions(str(path), f"data.{name}", style)]
        return examples, schema or answers_schema(examples, full_schema(cfg))
    sentences = read_corpora(source, f"data.{name}")
    require_labels(sentences, f"data.{name}")
    fields, methylation, descriptions = record_maps(cfg)
    schema = schema or schema_for(sentences, fields, methylation, descriptions)
    return corpus_examples(sentences, schema, style, fields, methylation), schema


def answers_schema(examples: list[Example], full: RecordSchema) -> RecordSchema | None:
    """The schema of instruction answers that are all JSON objects with keys of the record config; None for free text."""
    keys: set[str] = set()
    for example in examples:
        try:
            answer = json.loads(example.messages[-1]["content"])
        except json.JSONDecodeError:
            return None
        if not isinstance(answer, dict) or not set(answer) <= set(full.keys):
            return None
        keys |= set(answer)
    fields = [name for name in full.fields if name in keys]
    return RecordSchema(fields, full.statuses if "methylation" in keys else [], {k: v for k, v in full.descriptions.items() if k in keys})


def split_examples(examples: list[Example], fraction: float, seed: int) -> tuple[list[Example], list[Example]]:
    """``(train, val)``: `biolm.text.ner.held_out` of the documents (a corpus sentence's ``doc_id``; an example alone otherwise)."""
    held = held_out([e.sentence.doc_id if e.sentence is not None else None for e in examples], fraction, seed)
    return [e for i, e in enumerate(examples) if i not in held], [e for i, e in enumerate(examples) if i in held]


def encode_all(tokenizer, examples: list[Example], max_tokens: int, field: str) -> list[tuple[list[int], list[int]]]:
    """`encode_example` of each example; longer ones are dropped (logged), none left is an error."""
    encoded = [encode_example(tokenizer, e.messages, max_tokens) for e in examples]
    kept = [item for item in encoded if item is not None]
    if len(kept) < len(encoded):
        log.warning("%s: %d of %d examples are longer than data.max_tokens=%d and are left out", field, len(encoded) - len(kept), len(encoded), max_tokens)
    if not kept:
        raise BiolmError(f"{field}: every example is longer than data.max_tokens={max_tokens}")
    return kept


class SftCollator:
    """``[(input_ids, labels), ...]`` -> ``input_ids``/``attention_mask``/``labels`` ``(B, T)``, right-padded (labels -100)."""

    def __init__(self, pad_id: int):
        self.pad_id = int(pad_id)

    def __call__(self, items):
        width = max(len(ids) for ids, _ in items)
        ids = torch.full((len(items), width), self.pad_id, dtype=torch.long)
        labels = torch.full((len(items), width), -100, dtype=torch.long)
        mask = torch.zeros((len(items), width), dtype=torch.long)
        for row, (x, y) in enumerate(items):
            ids[row, : len(x)], labels[row, : len(y)], mask[row, : len(x)] = torch.tensor(x), torch.tensor(y), 1
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}


class SftDataModule(L.LightningDataModule):
    """Training chats in length buckets (one device; `biolm.data.bucketing.LengthBucketBatches`) or shuffled
    (several devices: Lightning shards them), validation chats sorted by length."""

    def __init__(self, train: list, val: list, collate: SftCollator, batch_size: int, eval_batch_size: int, seed: int, pool: int, bucket: bool,
                 num_workers: int = 0):
        super().__init__()
        self.train, self.val, self.collate = train, val, collate
        self.batch_size, self.eval_batch_size, self.seed, self.pool, self.bucket = batch_size, eval_batch_size, seed, pool, bucket
        self.num_workers = num_workers

    def train_dataloader(self):
        if not self.bucket:
            return torch.utils.data.DataLoader(self.train, batch_size=self.batch_size, shuffle=True, collate_fn=self.collate, num_workers=self.num_workers)
        from biolm.data.bucketing import LengthBucketBatches

        epoch_of = lambda: int(self.trainer.current_epoch) if self.trainer is not None else 0  # noqa: E731
        sampler = LengthBucketBatches([len(ids) for ids, _ in self.train], self.batch_size, self.seed, epoch_of, self.pool)
        return torch.utils.data.DataLoader(self.train, batch_sampler=sampler, collate_fn=self.collate, num_workers=self.num_workers)

    def val_dataloader(self):
        ordered = sorted(self.val, key=lambda item: len(item[0]))
        return torch.utils.data.DataLoader(ordered, batch_size=self.eval_batch_size, collate_fn=self.collate, num_workers=self.num_workers)


# ---------------------------------------------------------------- task


class SftTask(L.LightningModule):
    """Trains a causal LM on answer tokens; logs ``train/loss`` and ``val/loss`` (mean cross-entropy per answer token, nats).

    Args:
        model: a transformers causal LM, possibly peft-wrapped.
        lr, weight_decay, warmup_ratio, betas: AdamW with linear warm-up and decay (`biolm.tasks.sequence.configure_adamw`).
        seed: dropout is drawn from (seed, epoch, batch), as in `biolm.tasks.sequence.SequenceTask`.
    """

    def __init__(self, model, lr: float = 2e-4, weight_decay: float = 0.0, warmup_ratio: float = 0.05, betas=(0.9, 0.999), seed: int = 0):
        super().__init__()
        self.model = model
        self.lr, self.weight_decay, self.warmup_ratio, self.betas, self.seed = lr, weight_decay, warmup_ratio, tuple(betas), seed

    def on_train_batch_start(self, batch, batch_idx) -> None:
        torch.manual_seed(hash((self.seed, self.current_epoch, batch_idx, self.global_rank)) % (2**63))

    def _loss(self, batch) -> tuple[torch.Tensor, int]:
        out = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"])
        return out.loss, int((batch["labels"][:, 1:] != -100).sum())  # the answer tokens the shifted loss averages over

    def training_step(self, batch, batch_idx):
        loss, n_tokens = self._loss(batch)
        self.log("train/loss", loss, prog_bar=True, batch_size=n_tokens)
        return loss

    def validation_step(self, batch, batch_idx):
        loss, n_tokens = self._loss(batch)
        self.log("val/loss", loss, prog_bar=True, batch_size=n_tokens, sync_dist=True)  # a token-weighted mean, over all devices

    def configure_optimizers(self):
        return configure_adamw(self, self.lr, self.weight_decay, self.warmup_ratio, self.betas)


# ---------------------------------------------------------------- recipe


def _one_device(trainer_cfg: DictConfig) -> bool:
    devices, nodes = trainer_cfg.get("devices"), int(trainer_cfg.get("num_nodes") or 1)
    return nodes == 1 and (devices in (1, "1") or (isinstance(devices, list | ListConfig) and len(devices) == 1) or devices == "auto" and not torch.cuda.device_count() > 1)


class SftRecipe(Recipe):
    """``biolm llm sft``: LoRA (or full) instruction tuning of a causal LM (see the module docstring)."""

    def prepare(self, cfg: DictConfig) -> Job:
        from biolm.finetuning import _run_name
        from biolm.models.adapters import apply_adapter

        started = time.time()
        base = pretrained_path(cfg.model)
        with open_dict(cfg):
            cfg.model.pretrained = base  # the run's config.yaml names the folder its base weights come from
        train, schema = read_examples(cfg, "train", None)
        if cfg.data.get("val"):
            val, _ = read_examples(cfg, "val", schema)
        else:
            train, val = split_examples(train, float(cfg.data.split.val), int(cfg.data.split.seed))
        warn_if_asked_differently(train, schema, prompt_style(cfg))
        test = None
        if cfg.data.get("test"):
            if schema is None:
                raise BiolmError("data.test: the training answers are free text (no record schema), so there is nothing to score; drop data.test")
            test = read_corpora(cfg.data.test, "data.test")
            require_labels(test, "data.test")
            test = sample_sentences(test, cfg.evaluate.sample, int(cfg.seed))
        model, tokenizer = load_causal_lm(base, cfg.model.get("chat_template"))
        if cfg.model.get("gradient_checkpointing"):
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        max_tokens = int(cfg.data.max_tokens)
        encoded = {name: encode_all(tokenizer, examples, max_tokens, f"data.{name}") for name, examples in (("train", train), ("val", val))}
        if cfg.data.packing:
            encoded = {name: pack_examples(items, max_tokens) for name, items in encoded.items()}
        model = apply_adapter(model, cfg.get("adapter")).train()
        trainable, total = count_parameters(model)
        log.info("data: train %d, val %d examples%s | schema: %s | model: %s, %s trainable of %s parameters", len(train), len(val),
                 f", test {len(test)} sentences" if test else "", ", ".join(schema.keys) if schema else "free text",
                 type(model.get_base_model() if hasattr(model, "get_base_model") else model).__name__, f"{trainable:,}", f"{total:,}")
        plan = plan_schedule(cfg, len(encoded["train"]))
        final = Path(cfg.output_dir) / _run_name(cfg)
        stage, resume_from = training_stage(final, cfg)
        if (resume_from is None or not (stage / "config.yaml").exists()) and rank_zero_only.rank == 0:
            OmegaConf.save(cfg, stage / "config.yaml", resolve=True)
            style = prompt_style(cfg)
            write_json({"schema": schema.to_dict() if schema else None, "prompt": {"instruction": style.instruction, "system": style.system},
                        "base": {"pretrained": base, **weights_fingerprint(base)}}, stage / "llm.json")
            tokenizer.save_pretrained(str(stage / "tokenizer"))
        task = SftTask(model, seed=int(cfg.seed), **cfg.optim)
        datamodule = SftDataModule(encoded["train"], encoded["val"], SftCollator(tokenizer.pad_token_id), int(cfg.data.batch_size),
                                   int(cfg.data.eval_batch_size), int(cfg.seed), int(cfg.data.bucket_pool),
                                   _one_device(cfg.trainer) and not cfg.data.packing, int(cfg.data.num_workers))
        return staged_job(task, datamodule, stage, final, resume_from, "val/loss", "min", plan, tokenizer=tokenizer, schema=schema,
                          test=test, started=started, sizes=(trainable, total), counts={"train": len(train), "val": len(val)})

    def finish(self, cfg: DictConfig, trainer: L.Trainer, job: Job) -> Path:
        from biolm.finetuning import keep_best_weights
        from biolm.text.sft_report import write_sft_report

        keep_best_weights(job)
        model = load_best(job).to(trainer.strategy.root_device)  # Lightning's teardown moved it to the CPU
        trainable, total = job.state["sizes"]
        checkpoint = job.state["checkpoint"]
        metrics: dict = {"monitor": checkpoint.monitor, "best_val": checkpoint.best, "best_epoch": checkpoint.best_epoch,
                         "best_step": checkpoint.best_step, "steps": int(trainer.global_step),
                         "train_minutes": (time.time() - job.state["started"]) / 60,
                         **{f"n_{k}_examples": v for k, v in job.state["counts"].items()}, "trainable_params": trainable, "total_params": total}
        rows: dict[str, list[dict]] = {}
        if job.state["test"]:
            llm = LlmRun(model, job.state["tokenizer"], job.state["schema"], prompt_style(cfg))
            fields, methylation, _ = record_maps(cfg)
            maps = corpus_maps(llm.schema, fields, methylation)
            metrics["after"], rows["after"] = evaluate_llm(llm, job.state["test"], *maps, cfg.generation)
            if cfg.evaluate.before:
                metrics["before"], rows["before"] = evaluate_before(cfg, llm, job.state["test"], maps)
            _write_answers(rows, job.folder / "test_answers.jsonl")
        write_json(metrics, job.folder / "test_metrics.json")
        write_sft_report(job.folder, metrics, rows)
        publish(job.folder, job.final)
        if "after" in metrics:
            log.info("test entity F1 %.4f (parse rate %.3f)%s; run written to %s", metrics["after"]["entity_f1"], metrics["after"]["parse_rate"],
                     f", before tuning {metrics['before']['entity_f1']:.4f} ({metrics['before']['parse_rate']:.3f})" if "before" in metrics else "", job.final)
        return job.final


def warn_if_asked_differently(examples: list[Example], schema: RecordSchema | None, style: PromptStyle) -> None:
    """Warn when JSONL instructions ask in other words than ``prompt.instruction`` and the key lines, which is how
    ``llm evaluate`` and ``llm extract`` will ask the tuned model."""
    if schema is None or not examples or examples[0].sentence is not None:
        return
    expected = style.user_turn("", schema).removesuffix("Text: ")
    asked = next(m["content"] for m in examples[0].messages if m["role"] == "user")
    if not asked.startswith(expected):
        log.warning("data.train asks in other words than prompt.instruction and the answer keys; biolm llm evaluate/extract ask the "
                    "tuned model with the latter (set prompt.instruction to the training instruction)")


def load_best(job: Job):
    """The task's model with the best validation's weights (the adapter, or all weights), in eval mode."""
    from safetensors.torch import load_file

    from biolm.models.adapters import is_adapted

    model = job.task.model
    if is_adapted(model):
        from peft import set_peft_model_state_dict

        saved = job.folder / "adapter" / "adapter_model.safetensors"
        if saved.exists():
            set_peft_model_state_dict(model, load_file(str(saved)))
    elif (job.folder / "model.safetensors").exists():
        model.load_state_dict(load_file(str(job.folder / "model.safetensors")))
    return model.eval()


def evaluate_before(cfg: DictConfig, tuned: LlmRun, test, maps) -> tuple[dict, list[dict]]:
    """The same test, prompt and schema, on the model before tuning (the adapter switched off, or the base reloaded)."""
    from biolm.models.adapters import is_adapted

    if is_adapted(tuned.model):
        with tuned.model.disable_adapter():
            return evaluate_llm(tuned, test, *maps, cfg.generation)
    base, _ = load_causal_lm(str(cfg.model.pretrained), cfg.model.get("chat_template"))
    base.to(next(tuned.model.parameters()).device)
    return evaluate_llm(LlmRun(base, tuned.tokenizer, tuned.schema, tuned.style), test, *maps, cfg.generation)


def _write_answers(rows: dict[str, list[dict]], path: Path) -> None:
    """One line per test sentence: the gold record, the tuned answer (and the answer before tuning)."""
    from biolm.data.io import atomic_path

    lines = []
    for i, row in enumerate(rows["after"]):
        line = {"text": row["text"], "gold": row["gold"], "answer": row["answer"], "valid": row["valid"], "error": row["error"]}
        if "before" in rows:
            line.update({"answer_before": rows["before"][i]["answer"], "valid_before": rows["before"][i]["valid"]})
        lines.append(json.dumps(line, ensure_ascii=False))
    with atomic_path(path) as tmp:
        Path(tmp).write_text("\n".join(lines) + "\n", encoding="utf-8")

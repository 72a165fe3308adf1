"""Named-entity recognition: `NerRecipe` (the `biolm.training` recipe of ``configs/text/ner_train.yaml``),
`NerTask` (the LightningModule), run loading and the one tagging path behind evaluate, predict,
extract and the service.

In: IOB2 corpora (`biolm.text.corpus.read_corpus`: CoNLL/BIO columns, brat/BioNLP standoff, JSONL
spans) and a `biolm.models.word_tagger.WordTagger` (``model=bilstm_crf`` or ``model=encoder``, any
local Hugging Face encoder). A sentence longer than the tagger takes is cut into overlapping word
windows (`WordTagger.windows`); each word keeps the tag of the window in which it sits farthest
from an edge. Out: a run folder like every fine-tune's (``config.yaml``, ``tags.json``,
``tagger/`` (vocabularies or the encoder's config and tokenizer), ``model.safetensors``,
``metrics.csv``, ``test_metrics.json``, ``test_predictions.tsv``, plots and ``report.md``).

Entity scores (`biolm.text.scores`) are seqeval's strict IOB2 precision, recall and F1 (exact span and type match),
micro-averaged and per type, the convention of the BLURB and CoNLL benchmarks.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from biolm.errors import BiolmError, require_extra
from biolm.finetuning import plan_schedule, staged_job
from biolm.fitting import publish, training_stage
from biolm.models.word_tagger import WordTagger, repair_iob2_names
from biolm.runs import count_parameters, default_run_name, write_json
from biolm.tasks.sequence import configure_adamw
from biolm.text.corpus import Sentence, entity_types, read_corpus, tag_set
from biolm.text.scores import entity_scores, error_summary
from biolm.training import Job, Recipe

log = logging.getLogger(__name__)
SPLITS = ("train", "val", "test")
TEXT_MODULES = ("seqeval", "torchcrf")  # what the text extra adds that every NER run needs


# ---------------------------------------------------------------- data


def read_corpora(source, field: str) -> list[Sentence]:
    """The sentences of one corpus file or folder, or of a list of them (concatenated); ``field`` names the setting in errors."""
    if not source:
        raise BiolmError(f"{field}: missing; pass {field}=<CoNLL/BIO file, standoff folder or JSONL>")
    paths = list(source) if isinstance(source, list | ListConfig | tuple) else [source]
    return [sentence for path in paths for sentence in read_corpus(str(path), field_name=field)]


def read_split(data_cfg: DictConfig, name: str) -> list[Sentence]:
    """The sentences of ``data.<name>`` (`read_corpora`)."""
    return read_corpora(data_cfg.get(name), f"data.{name}")


def held_out(doc_ids: list[str | None], fraction: float, seed: int) -> set[int]:
    """Indices of a seeded ``fraction`` of the documents (items without a document id count alone), for
    validation: every item of a document is on the same side.

    Raises:
        BiolmError: ``fraction`` is not in (0, 1), or there are too few documents to hold some out.
    """
    import random

    if not 0 < fraction < 1:
        raise BiolmError(f"data.split.val={fraction}: accepted: a fraction between 0 and 1 (or give data.val=<corpus>)")
    groups: dict[str, list[int]] = {}
    for i, doc in enumerate(doc_ids):
        groups.setdefault(doc if doc is not None else f"#{i}", []).append(i)
    keys = sorted(groups)
    random.Random(seed).shuffle(keys)
    n_val = max(1, round(len(keys) * fraction))
    if n_val >= len(keys):
        raise BiolmError(f"data.train: {len(keys)} documents are too few to hold out data.split.val={fraction}; give data.val=<corpus>")
    log.info("data.val not given: %d of %d documents of data.train held out for validation (data.split.val=%s)", n_val, len(keys), fraction)
    return {i for key in keys[:n_val] for i in groups[key]}


def hold_out(sentences: list[Sentence], fraction: float, seed: int) -> tuple[list[Sentence], list[Sentence]]:
    """``(train, val)`` sentences: `held_out` of their documents (``doc_id``)."""
    val_index = held_out([s.doc_id for s in sentences], fraction, seed)
    return [s for i, s in enumerate(sentences) if i not in val_index], [s for i, s in enumerate(sentences) if i in val_index]


def require_labels(sentences: list[Sentence], field: str) -> None:
    """Every sentence must carry tags (a JSONL line without ``spans`` is unlabelled text)."""
    for sentence in sentences:
        if sentence.tags is None:
            raise BiolmError(f"{sentence.where or field}: no labels (a JSONL line without \"spans\"); {field} needs labelled text")


def check_tags(sentences: list[Sentence], tags: list[str], field: str, unseen: str = "error") -> None:
    """Every sentence must be labelled; tags the run never learned are an error (``unseen="error"``: the validation
    split, whose tags the model's loss needs), or a warning (``"warn"``: a test set, scored by seqeval on the tag
    strings, where entities of an unseen type simply count as missed)."""
    require_labels(sentences, field)
    known = set(tags)
    missed: dict[str, int] = {}
    for sentence in sentences:
        for tag in sentence.tags:
            if tag not in known:
                if unseen == "error":
                    raise BiolmError(f"{sentence.where or field}: tag {tag!r} is not one the run was trained on ({', '.join(tags)})")
                if tag.startswith("B-"):
                    missed[tag[2:]] = missed.get(tag[2:], 0) + 1
    if missed:
        log.warning("%s: entity types the run was not trained on (%s); they are scored as missed entities", field,
                    ", ".join(f"{name}: {n}" for name, n in sorted(missed.items())))


class NerDataset(torch.utils.data.Dataset):
    """Encoded word windows with their tag ids: item i is ``(features, tags (T_words,) long)``."""

    def __init__(self, tagger: WordTagger, sentences: list[Sentence], tags: list[str]):
        index = {tag: i for i, tag in enumerate(tags)}
        self.items = []
        for sentence in sentences:
            for start, end in tagger.windows(sentence.tokens):
                tag_ids = torch.tensor([index[t] for t in sentence.tags[start:end]], dtype=torch.long)
                self.items.append((tagger.encode(sentence.tokens[start:end]), tag_ids))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        return self.items[i]


class NerCollator:
    """``[(features, tags), ...]`` -> the tagger's batch plus ``tags`` ``(B, T_words)`` (-100 on padding)."""

    def __init__(self, tagger: WordTagger):
        self.tagger = tagger

    def __call__(self, items):
        batch = self.tagger.collate([features for features, _ in items])
        batch["tags"] = torch.nn.utils.rnn.pad_sequence([tags for _, tags in items], batch_first=True, padding_value=-100)
        return batch


class NerDataModule(L.LightningDataModule):
    """Training windows in length buckets (`biolm.data.bucketing.LengthBucketBatches`, ``data.bucket_pool``
    batches per sorted pool), validation windows sorted by length."""

    def __init__(self, datasets: dict[str, NerDataset], collate: NerCollator, batch_size: int, eval_batch_size: int, seed: int, pool: int,
                 num_workers: int = 0):
        super().__init__()
        self.datasets, self.collate = datasets, collate
        self.batch_size, self.eval_batch_size, self.seed, self.pool, self.num_workers = batch_size, eval_batch_size, seed, pool, num_workers

    def _lengths(self, name: str) -> list[int]:
        return [len(tags) for _, tags in self.datasets[name].items]

    def train_dataloader(self):
        from biolm.data.bucketing import LengthBucketBatches

        epoch_of = lambda: int(self.trainer.current_epoch) if self.trainer is not None else 0  # noqa: E731
        sampler = LengthBucketBatches(self._lengths("train"), self.batch_size, self.seed, epoch_of, self.pool)
        return torch.utils.data.DataLoader(self.datasets["train"], batch_sampler=sampler, collate_fn=self.collate, num_workers=self.num_workers)

    def val_dataloader(self):
        lengths = self._lengths("val")
        order = sorted(range(len(lengths)), key=lengths.__getitem__)
        batches = [order[i : i + self.eval_batch_size] for i in range(0, len(order), self.eval_batch_size)]
        return torch.utils.data.DataLoader(self.datasets["val"], batch_sampler=batches, collate_fn=self.collate, num_workers=self.num_workers)


# ---------------------------------------------------------------- task


class NerTask(L.LightningModule):
    """Trains a `WordTagger`; logs ``train/loss``, ``val/loss`` and seqeval's strict ``val/f1``,
    ``val/precision``, ``val/recall`` (over the validation windows) every epoch.

    Args:
        model: the tagger.
        lr, weight_decay, warmup_ratio, betas: AdamW with linear warm-up and decay
            (`biolm.tasks.sequence.configure_adamw`).
        seed: dropout is drawn from (seed, epoch, batch), as in `biolm.tasks.sequence.SequenceTask`.
    """

    def __init__(self, model: WordTagger, lr: float = 1e-3, weight_decay: float = 0.0, warmup_ratio: float = 0.1, betas=(0.9, 0.999), seed: int = 0):
        super().__init__()
        self.model = model
        self.lr, self.weight_decay, self.warmup_ratio, self.betas = lr, weight_decay, warmup_ratio, tuple(betas)
        self.seed = seed
        self._gold: list[list[str]] = []
        self._predicted: list[list[str]] = []

    def on_train_batch_start(self, batch, batch_idx) -> None:
        torch.manual_seed(hash((self.seed, self.current_epoch, batch_idx, self.global_rank)) % (2**63))

    def training_step(self, batch, batch_idx):
        loss = self.model.loss(batch, batch["tags"])
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch["tags"]))
        return loss

    def validation_step(self, batch, batch_idx):
        loss = self.model.loss(batch, batch["tags"])
        self.log("val/loss", loss, batch_size=len(batch["tags"]))
        names = self.model.tags
        for path, gold in zip(self.model.decode(batch), batch["tags"].tolist(), strict=True):
            self._predicted.append([names[t] for t in path])
            self._gold.append([names[t] for t in gold if t != -100])

    def on_validation_epoch_end(self) -> None:
        scores = entity_scores(self._gold, self._predicted)
        self._gold, self._predicted = [], []
        for name in ("f1", "precision", "recall"):
            self.log(f"val/{name}", scores[name], prog_bar=name == "f1")

    def configure_optimizers(self):
        return configure_adamw(self, self.lr, self.weight_decay, self.warmup_ratio, self.betas)


# ---------------------------------------------------------------- runs


@dataclass
class NerRun:
    """A trained tagger and what it was trained with (`load_ner_run`)."""

    path: Path
    cfg: DictConfig
    tagger: WordTagger
    tags: list[str]

    @property
    def types(self) -> list[str]:
        return sorted({tag[2:] for tag in self.tags if tag != "O"})


def tagger_class(model_cfg: DictConfig) -> type[WordTagger]:
    """The `WordTagger` class named by ``model.tagger._target_`` (a class or one of its classmethods)."""
    import importlib

    target = str(model_cfg.tagger._target_)
    if not target.startswith("biolm."):
        raise BiolmError(f"model.tagger._target_: {target!r} is not a biolm class")
    parts, found = target.split("."), None
    for cut in range(len(parts) - 1, 0, -1):  # the longest importable module, then attributes (class, classmethod)
        try:
            found = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for name in parts[cut:]:
            found = getattr(found, name, None)
        break
    found = getattr(found, "__self__", found)  # a classmethod -> its class
    if not (isinstance(found, type) and issubclass(found, WordTagger)):
        raise BiolmError(f"model.tagger._target_: {target!r} is not a biolm WordTagger")
    return found


def load_ner_run(path: str | Path) -> NerRun:
    """Load a run folder written by ``biolm ner train``.

    Raises:
        BiolmError: the folder is not a finished NER run.
    """
    from safetensors.torch import load_file

    require_extra("text", *TEXT_MODULES)
    path = Path(path)
    missing = [name for name in ("config.yaml", "tags.json", "tagger", "model.safetensors") if not (path / name).exists()]
    if missing:
        raise BiolmError(f"run: {path} is not a finished NER run (missing: {', '.join(missing)}); pass run=runs/<name> of biolm ner train")
    try:
        cfg = OmegaConf.load(path / "config.yaml")
        tags = [str(tag) for tag in json.loads((path / "tags.json").read_text())["tags"]]
    except (OSError, ValueError, KeyError, TypeError, OmegaConfBaseException) as err:
        raise BiolmError(f"run: {path} has an unreadable config.yaml or tags.json ({str(err).splitlines()[0][:120]})") from None
    tagger = tagger_class(cfg.model).from_assets(path / "tagger", tags)
    tagger.load_state_dict(load_file(str(path / "model.safetensors")))
    tagger.eval()
    return NerRun(path=path, cfg=cfg, tagger=tagger, tags=tags)


@torch.inference_mode()
def tag_sentences(tagger: WordTagger, sentences: list[Sentence], batch_size: int = 64) -> list[list[str]]:
    """IOB2 tags per word of each sentence, whole sentences (windows merged, see the module docstring)."""
    tagger.eval()
    device = next(iter(tagger.parameters()), torch.empty(0)).device
    pieces = [(i, start, end) for i, s in enumerate(sentences) if s.tokens for start, end in tagger.windows(s.tokens)]
    pieces.sort(key=lambda piece: piece[2] - piece[1])  # batches of similar length pad little
    out = [["O"] * len(s.tokens) for s in sentences]
    margin = [[-1] * len(s.tokens) for s in sentences]  # distance to the nearer window edge of the tag kept so far
    for first in range(0, len(pieces), batch_size):
        chunk = pieces[first : first + batch_size]
        batch = tagger.collate([tagger.encode(sentences[i].tokens[start:end]) for i, start, end in chunk])
        batch = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
        for (i, start, end), path in zip(chunk, tagger.decode(batch), strict=True):
            for offset, tag_id in enumerate(path):
                word, edge = start + offset, min(offset, end - start - 1 - offset)
                if edge > margin[i][word]:
                    out[i][word], margin[i][word] = tagger.tags[tag_id], edge
    return [repair_iob2_names(tags) for tags in out]  # windows merged: an I- may follow another type


def evaluate_ner(run: NerRun, sentences: list[Sentence], batch_size: int = 64) -> tuple[dict, list[list[str]]]:
    """Entity scores (`entity_scores`) and `error_summary` of ``run`` on labelled ``sentences``; also the predicted tags."""
    check_tags(sentences, run.tags, "data.test", unseen="warn")
    predicted = tag_sentences(run.tagger, sentences, batch_size)
    scores = entity_scores([s.tags for s in sentences], predicted)
    scores["errors"] = error_summary(sentences, predicted)
    scores["n_sentences"] = len(sentences)
    scores["n_entities"] = sum(len(s.spans()) for s in sentences)
    return scores, predicted


def write_predictions(sentences: list[Sentence], predicted: list[list[str]], path: Path) -> None:
    """``token<TAB>gold<TAB>predicted`` per word, a blank line between sentences (conlleval's layout)."""
    from biolm.data.io import atomic_path

    lines = []
    for sentence, tags in zip(sentences, predicted, strict=True):
        lines += [f"{w}\t{g}\t{p}" for w, g, p in zip(sentence.tokens, sentence.tags, tags, strict=True)] + [""]
    with atomic_path(path) as tmp:
        Path(tmp).write_text("\n".join(lines) + "\n", encoding="utf-8")


# ---------------------------------------------------------------- recipe


def build_tagger(model_cfg: DictConfig, tags: list[str], train: list[Sentence]) -> WordTagger:
    """Instantiate ``model.tagger`` for training, with the run's ``tags`` and training words."""
    from hydra.utils import instantiate

    tagger_class(model_cfg)  # a clear error for a bad target
    options = OmegaConf.to_container(model_cfg.tagger, resolve=True)
    from hydra.errors import InstantiationException

    from biolm.errors import find_user_error

    try:
        return instantiate(options, tags=tags, train_words=[s.tokens for s in train], _convert_="all")
    except InstantiationException as err:  # hydra wraps what the tagger raised
        raise find_user_error(err) or BiolmError(f"model.tagger: {str(err.__cause__ or err).splitlines()[0]}") from None


def apply_text_adapter(tagger: WordTagger, adapter_cfg) -> WordTagger:
    """The tagger wrapped with LoRA (``adapter=lora``: the encoder's attention projections train as low-rank
    updates, the classifier fully), or as it is (``adapter=none``)."""
    from biolm.models.adapters import adapter_name, apply_adapter

    if adapter_name(adapter_cfg) != "none" and not getattr(tagger, "lora_target_modules", None) and not adapter_cfg.get("target_modules"):
        raise BiolmError(f"adapter={adapter_name(adapter_cfg)}: {type(tagger).__name__} has no pretrained layers to adapt; use model=encoder")
    return apply_adapter(tagger, adapter_cfg)


def merge_best_adapter(job: Job) -> None:
    """A LoRA run: load the best epoch's adapter, fold it into the encoder and save full weights, so the
    run folder is loadable on its own (``adapter/`` stays beside them)."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    from biolm.models.adapters import is_adapted
    from biolm.tasks.callbacks import save_weights

    model = job.task.model
    if not is_adapted(model):
        return
    saved = job.folder / "adapter" / "adapter_model.safetensors"
    if saved.exists():
        set_peft_model_state_dict(model, load_file(str(saved)))
    save_weights(model.merge_and_unload(), job.folder / "model.safetensors")


class NerRecipe(Recipe):
    """``biolm ner train``: a word-level tagger on IOB2 corpora (see the module docstring)."""

    def prepare(self, cfg: DictConfig) -> Job:
        require_extra("text", *TEXT_MODULES)
        devices, nodes = cfg.trainer.get("devices"), int(cfg.trainer.get("num_nodes") or 1)
        if nodes > 1 or (isinstance(devices, int) and devices > 1) or (isinstance(devices, list | ListConfig) and len(devices) > 1) or devices == -1:
            raise BiolmError(f"trainer.devices={devices}, num_nodes={nodes}: biolm ner train runs on one device for now (length buckets "
                             "and entity F1 are not sharded across processes yet); use trainer.devices=1")
        splits = {name: read_split(cfg.data, name) for name in ("train", "test")}
        require_labels(splits["train"], "data.train")
        types = entity_types(splits["train"])  # before a hold-out, which may take a rare type's only documents
        if cfg.data.get("val"):
            splits["val"] = read_split(cfg.data, "val")
        else:
            split = cfg.data.get("split") or {}
            splits["train"], splits["val"] = hold_out(splits["train"], float(split.get("val", 0.1)), int(split.get("seed", 42)))
        if not types:
            raise BiolmError("data.train: no entities in the training corpus (every tag is O)")
        tags = tag_set(types)
        check_tags(splits["val"], tags, "data.val")
        check_tags(splits["test"], tags, "data.test", unseen="warn")
        tagger = build_tagger(cfg.model, tags, splits["train"])
        model = apply_text_adapter(tagger, cfg.get("adapter")).train()  # transformers loads encoders in eval mode (no dropout)
        datasets = {name: NerDataset(tagger, splits[name], tags) for name in ("train", "val")}
        trainable, total = count_parameters(model)
        log.info(
            "data: %s | entity types: %s | model: %s, %s trainable of %s parameters",
            ", ".join(f"{n} {len(s)} sentences ({sum(len(x.spans()) for x in s):,} entities)" for n, s in splits.items()),
            ", ".join(types), type(tagger).__name__, f"{trainable:,}", f"{total:,}",
        )
        plan = plan_schedule(cfg, len(datasets["train"]))
        final = Path(cfg.output_dir) / (str(cfg.run_name) if cfg.get("run_name") else default_run_name("ner"))
        stage, resume_from = training_stage(final, cfg)
        if (resume_from is None or not (stage / "config.yaml").exists()) and rank_zero_only.rank == 0:
            OmegaConf.save(cfg, stage / "config.yaml", resolve=True)
            write_json({"tags": tags}, stage / "tags.json")
            tagger.save_assets(stage / "tagger")
        task = NerTask(model, seed=int(cfg.seed), **cfg.optim)
        datamodule = NerDataModule(datasets, NerCollator(tagger), int(cfg.data.batch_size), int(cfg.data.eval_batch_size), int(cfg.seed),
                                   int(cfg.data.get("bucket_pool") or 50), int(cfg.data.get("num_workers") or 0))
        monitor = f"val/{cfg.task.monitor}"
        return staged_job(task, datamodule, stage, final, resume_from, monitor, "min" if cfg.task.monitor == "loss" else "max", plan,
                          splits=splits, tags=tags, sizes=(trainable, total))

    def finish(self, cfg: DictConfig, trainer: L.Trainer, job: Job) -> Path:
        from biolm.finetuning import keep_best_weights
        from biolm.text.ner_report import write_ner_report

        keep_best_weights(job)
        merge_best_adapter(job)
        run = load_ner_run(job.folder)
        splits = job.state["splits"]
        metrics, predicted = evaluate_ner(run, splits["test"], int(cfg.data.eval_batch_size))
        write_predictions(splits["test"], predicted, job.folder / "test_predictions.tsv")
        checkpoint = job.state["checkpoint"]
        trainable, total = job.state["sizes"]
        metrics.update({"monitor": checkpoint.monitor, "best_val": checkpoint.best, "best_epoch": checkpoint.best_epoch,
                        **{f"n_{name}": len(s) for name, s in splits.items()}, "trainable_params": trainable, "total_params": total})
        write_json(metrics, job.folder / "test_metrics.json")
        write_ner_report(job.folder, metrics, splits["test"], predicted, run.types)
        publish(job.folder, job.final)
        log.info("test entity F1 %.4f (P %.4f, R %.4f); run written to %s", metrics["f1"], metrics["precision"], metrics["recall"], job.final)
        return job.final

"""Shared fixtures: tiny labelled files cut from the bundled GUE data (a few KB each)."""

from __future__ import annotations

import csv
import gzip
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
GUE = REPO / "data" / "gue" / "prom_300_tata"


def _rows(split: str, n: int, length: int) -> list[tuple[str, str]]:
    with gzip.open(GUE / f"{split}.csv.gz", "rt") as handle:
        reader = csv.DictReader(handle)
        rows = []
        for row in reader:
            rows.append((row["sequence"][:length], row["label"]))
            if len(rows) == n:
                break
    return rows


@pytest.fixture(scope="session", autouse=True)
def fixed_epochs():
    """In-process fine-tunes train exactly the epochs a test names: the step budget (``schedule.min_steps``,
    which would stretch the tiny test sets to 1,000 steps) is off, except under the `step_budget` fixture.
    Tests that start ``biolm finetune`` in a subprocess pass ``schedule.min_steps=0`` themselves."""
    import biolm.finetuning as finetuning

    real = finetuning.plan_steps

    def without_budget(n_train, batch_size, max_epochs, min_steps, *args, **kwargs):
        return real(n_train, batch_size, max_epochs, 0, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(finetuning, "plan_steps", without_budget)
        yield real


@pytest.fixture
def step_budget(fixed_epochs, monkeypatch):
    """Fine-tunes in this test follow ``schedule.min_steps`` as users' runs do."""
    import biolm.finetuning as finetuning

    monkeypatch.setattr(finetuning, "plan_steps", fixed_epochs)


@pytest.fixture(scope="session")
def tiny_task(tmp_path_factory) -> dict[str, Path]:
    """Real prom_300_tata rows cut to 60 bp: train 96, dev 32, test 32 (CSV)."""
    root = tmp_path_factory.mktemp("tiny_task")
    paths = {}
    for split, n in (("train", 96), ("dev", 32), ("test", 32)):
        path = root / f"{split}.csv"
        with open(path, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["sequence", "label"])
            writer.writerows(_rows(split, n, 60))
        paths[split] = path
    return paths


# Overrides that make any finetune run take seconds on a CPU.
TINY_MODEL = [
    "model.trunk.hidden_size=32",
    "model.trunk.num_layers=1",
    "model.trunk.num_heads=2",
    "model.trunk.intermediate_size=64",
    "trainer.max_epochs=2",
    "trainer.accelerator=cpu",
    "progress_bar=false",
    "data.batch_size=16",
]


@pytest.fixture(scope="session")
def tiny_model_overrides() -> list[str]:
    return list(TINY_MODEL)


@pytest.fixture(scope="session")
def genome(tmp_path_factory) -> Path:
    """A 30 kbp slice of the bundled E. coli genome, as two contigs."""
    import gzip

    with gzip.open(REPO / "data" / "genomes" / "ecoli_k12_mg1655.fa.gz", "rt") as handle:
        text = handle.read()
    seq = "".join(line.strip() for line in text.splitlines()[1:2000])[:30000]
    path = tmp_path_factory.mktemp("genome") / "slice.fa"
    path.write_text(f">a\n{seq[:15000]}\n>b\n{seq[15000:]}\n")
    return path


@pytest.fixture(scope="session")
def tiny_binary_run(tiny_task, tmp_path_factory) -> Path:
    """One small binary run trained through the CLI (kmer3 BERT, 2 epochs on 60 bp rows), shared by the
    CLI and service tests; tests read it and never write into it."""
    from biolm.cli import main

    out = tmp_path_factory.mktemp("runs")
    code = main(
        [
            "finetune",
            f"data.train={tiny_task['train']}",
            f"data.val={tiny_task['dev']}",
            f"data.test={tiny_task['test']}",
            "tokenizer=kmer3",
            "model=bert_tiny",
            "task=binary",
            f"output_dir={out}",
            "run_name=tiny",
            *TINY_MODEL,
        ]
    )
    assert code == 0
    return out / "tiny"


TINY_BERT_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "a", "of", "in", "and", "is", "with", ",", ".", "gene", "protein", "cancer"]
TINY_BERT_VOCAB += ["patient", "tumor", "breast", "mut", "##ation", "##s", "##ed", "##ing", "brca", "##1", "##2", "tp", "##5", "##3", "loss", "function"]


@pytest.fixture(scope="session")
def tiny_wordpiece_bert(tmp_path_factory) -> Path:
    """A BertForMaskedLM checkpoint folder (2 layers, width 32) with a fast WordPiece tokenizer over
    `TINY_BERT_VOCAB`, in the real Hugging Face layout, written offline."""
    import torch
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import BertConfig, BertForMaskedLM, BertTokenizerFast

    folder = tmp_path_factory.mktemp("tiny_bert")
    vocab_file = folder / "vocab.txt"
    vocab_file.write_text("\n".join(TINY_BERT_VOCAB) + "\n")
    wordpiece = Tokenizer(models.WordPiece.from_file(str(vocab_file), unk_token="[UNK]"))
    wordpiece.normalizer = normalizers.BertNormalizer(lowercase=True)
    wordpiece.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    wordpiece.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    wordpiece.decoder = decoders.WordPiece()
    vocab_file.unlink()
    BertTokenizerFast(tokenizer_object=wordpiece).save_pretrained(folder)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(TINY_BERT_VOCAB), hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
    BertForMaskedLM(config).save_pretrained(folder)
    return folder

"""Fixtures for the variant tests: a hand-made reference, tiny VCFs, tiny random runs on disk."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from safetensors.torch import save_file

from biolm.data.labels import LabelSpec
from biolm.models import build_language_model, build_sequence_model
from biolm.tokenizers import CharTokenizer, KmerTokenizer

random.seed(7)
CHR1 = "".join(random.choice("ACGT") for _ in range(400))

HEADER = """##fileformat=VCFv4.2
##contig=<ID=chr1,length=400>
##FILTER=<ID=LowQual,Description="low quality">
##INFO=<ID=DP,Number=1,Type=Integer,Description="Total depth">
##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">
##FORMAT=<ID=DP,Number=1,Type=Integer,Description="Read depth">
"""


def write_vcf(path: Path, rows: list[str], samples: list[str] | None = None) -> Path:
    """A VCF from tab-joined data rows (``samples`` adds FORMAT + sample columns to the header)."""
    columns = ["#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO"]
    if samples:
        columns += ["FORMAT", *samples]
    path.write_text(HEADER + "\t".join(columns) + "\n" + "".join(r + "\n" for r in rows))
    return path


@pytest.fixture(scope="session")
def reference_fasta(tmp_path_factory) -> Path:
    """Plain FASTA, contig ``chr1``, 400 random bases (60 per line)."""
    path = tmp_path_factory.mktemp("ref") / "ref.fa"
    path.write_text(">chr1 test\n" + "\n".join(CHR1[i : i + 60] for i in range(0, len(CHR1), 60)) + "\n")
    return path


TRUNKS = {
    "hyena": {"_target_": "biolm.models.hyena.HyenaEncoder", "d_model": 16, "n_layer": 1, "max_seq_len": 256, "emb_dim": 5, "filter_order": 8},
    "bert": {
        "_target_": "biolm.models.bert.BertEncoder", "hidden_size": 16, "num_layers": 1, "num_heads": 2,
        "intermediate_size": 32, "max_position_embeddings": 256,
    },
}


def write_lm_run(folder: Path, objective: str, trunk: str, tokenizer, seed: int = 0) -> Path:
    """A pretraining run folder in the real layout, with random weights."""
    torch.manual_seed(seed)
    folder.mkdir(parents=True)
    cfg = OmegaConf.create({"model": {"trunk": TRUNKS[trunk], "head": {"pooling": "last" if trunk == "hyena" else "cls", "dropout": 0.0}},
                            "objective": {"name": objective}, "data": {}})
    OmegaConf.save(cfg, folder / "config.yaml")
    tokenizer.save(folder / "tokenizer")
    model = build_language_model(cfg.model, tokenizer.vocab_size, tokenizer.pad_id)
    save_file({k: v.contiguous().clone() for k, v in model.state_dict().items()}, str(folder / "model.safetensors"))
    return folder


@pytest.fixture(scope="session")
def clm_run(tmp_path_factory) -> Path:
    return write_lm_run(tmp_path_factory.mktemp("runs") / "clm", "clm", "hyena", CharTokenizer())


@pytest.fixture(scope="session")
def mlm_char_run(tmp_path_factory) -> Path:
    return write_lm_run(tmp_path_factory.mktemp("runs") / "mlm_char", "mlm", "bert", CharTokenizer())


@pytest.fixture(scope="session")
def mlm_kmer_run(tmp_path_factory) -> Path:
    return write_lm_run(tmp_path_factory.mktemp("runs") / "mlm_kmer", "mlm", "bert", KmerTokenizer(k=3, stride=1))


@pytest.fixture(scope="session")
def classifier_run(tmp_path_factory) -> Path:
    """A fine-tuned binary run folder (random weights) for supervised scores."""
    torch.manual_seed(1)
    folder = tmp_path_factory.mktemp("runs") / "classifier"
    folder.mkdir()
    tokenizer = CharTokenizer()
    cfg = OmegaConf.create({"model": {"trunk": TRUNKS["bert"], "head": {"pooling": "cls", "dropout": 0.0}}, "data": {"sequence_column": "sequence"}})
    OmegaConf.save(cfg, folder / "config.yaml")
    tokenizer.save(folder / "tokenizer")
    LabelSpec("binary", ["benign", "pathogenic"]).to_json(folder / "labels.json")
    model = build_sequence_model(cfg.model, tokenizer.vocab_size, tokenizer.pad_id, 1)
    save_file({k: v.contiguous().clone() for k, v in model.state_dict().items()}, str(folder / "model.safetensors"))
    return folder


@pytest.fixture(scope="session")
def chr1() -> str:
    """The bases of the test reference's ``chr1``."""
    return CHR1


@pytest.fixture(scope="session")
def make_vcf():
    """`write_vcf(path, rows, samples=None)`."""
    return write_vcf

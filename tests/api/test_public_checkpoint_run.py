"""A public checkpoint end to end: a tiny Nucleotide Transformer folder in the real layout (written by
transformers itself, NT v2 vocab.txt) -> `finetune model.pretrained=<folder> tokenizer=pretrained` ->
a run that predicts without the checkpoint folder."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest
import torch
import transformers

from biolm.cli import main
from tests.conftest import TINY_MODEL
from tests.tokenizers.test_nt_tokenizer import V2_LINES


@pytest.fixture
def nt_folder(tmp_path):
    config = transformers.EsmConfig(
        vocab_size=len(V2_LINES), hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
        max_position_embeddings=200, pad_token_id=1, mask_token_id=2, position_embedding_type="absolute",
        token_dropout=True, tie_word_embeddings=False, emb_layer_norm_before=False,
    )
    torch.manual_seed(0)
    folder = tmp_path / "nt"
    transformers.EsmForMaskedLM(config).save_pretrained(folder)
    (folder / "vocab.txt").write_text("\n".join(V2_LINES))
    return folder


def test_finetune_from_a_nucleotide_transformer_folder(nt_folder, tiny_task, tmp_path):
    keep = [o for o in TINY_MODEL if not o.startswith("model.")]
    args = ["finetune", f"model.pretrained={nt_folder}", "tokenizer=pretrained", f"data.train={tiny_task['train']}",
            f"data.val={tiny_task['dev']}", f"data.test={tiny_task['test']}", f"output_dir={tmp_path / 'runs'}", "run_name=nt", *keep,
            "trainer.max_epochs=1"]
    assert main(args) == 0
    run = tmp_path / "runs" / "nt"
    config = (run / "config.yaml").read_text()
    assert "biolm.models.esm.EsmEncoder" in config and "pretrained_from" in config
    out = tmp_path / "a.csv"
    assert main(["predict", f"run={run}", f"input={tiny_task['test']}", f"output={out}"]) == 0
    shutil.rmtree(nt_folder)  # the run holds its architecture and weights: the checkpoint is no longer needed
    again = tmp_path / "b.csv"
    assert main(["predict", f"run={run}", f"input={tiny_task['test']}", f"output={again}"]) == 0
    pd.testing.assert_frame_equal(pd.read_csv(out), pd.read_csv(again))


def test_a_sequence_model_drops_the_imported_lm_head(nt_folder):
    from omegaconf import OmegaConf

    from biolm.models import build_language_model, build_sequence_model

    cfg = OmegaConf.create({"trunk": {"_target_": "biolm.models.esm.EsmEncoder"}, "head": {"pooling": "cls"}, "pretrained": str(nt_folder)})
    sequence_model = build_sequence_model(cfg, vocab_size=len(V2_LINES), pad_token_id=1, num_outputs=2)
    assert sequence_model.trunk.lm_head is None and not sequence_model.trunk.config.lm_head
    assert not any("lm_head" in name for name, _ in sequence_model.named_parameters())
    language_model = build_language_model(cfg, vocab_size=len(V2_LINES), pad_token_id=1)
    assert language_model.trunk.lm_head is not None

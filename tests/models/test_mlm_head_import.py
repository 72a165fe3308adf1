"""`build_language_model` with `pretrained`: a BERT-family checkpoint's MLM head (`cls.predictions.*`) is imported,
not trained afresh: logits equal transformers' BertForMaskedLM (DNABERT-1 layout) and a hand computation on DNABERT-2."""

from __future__ import annotations

import pytest
import torch
import transformers

from biolm.errors import BiolmError
from biolm.models import build_language_model
from tests.checkpoints import dnabert2_state_dict, write_tiny_dnabert2

BERT = {"trunk": {"_target_": "biolm.models.bert.BertEncoder"}}


def test_dnabert1_layout_logits_equal_transformers_bert_for_masked_lm(tmp_path):
    config = transformers.BertConfig(vocab_size=30, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                                     max_position_embeddings=64, pad_token_id=0, attn_implementation="eager")
    torch.manual_seed(0)
    hf = transformers.BertForMaskedLM(config).eval()
    with torch.no_grad():  # a head that is not at its initial values
        for param in hf.cls.parameters():
            param.add_(0.1 * torch.randn_like(param))
    hf.save_pretrained(tmp_path / "bert")
    ours = build_language_model({**BERT, "pretrained": str(tmp_path / "bert")}, vocab_size=30, pad_token_id=0).eval()
    ids = torch.randint(5, 30, (2, 12), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(ours(ids, torch.ones_like(ids, dtype=torch.bool)).logits, hf(input_ids=ids).logits, rtol=1e-4, atol=1e-4)


def test_dnabert2_head_is_the_checkpoints_tied_head(tmp_path):
    folder = write_tiny_dnabert2(tmp_path / "dnabert2")
    sd = dnabert2_state_dict(32, 2, 64)
    model = build_language_model({**BERT, "pretrained": str(folder)}, vocab_size=4096, pad_token_id=3).eval()
    ids = torch.tensor([[1, 5, 194, 72, 260, 55, 474, 2]])
    with torch.no_grad():
        out = model(ids, torch.ones_like(ids, dtype=torch.bool))
    p = "cls.predictions."
    hidden = torch.nn.functional.gelu(out.hidden @ sd[p + "transform.dense.weight"].T + sd[p + "transform.dense.bias"])
    hidden = torch.nn.functional.layer_norm(hidden, (32,), sd[p + "transform.LayerNorm.weight"], sd[p + "transform.LayerNorm.bias"], eps=1e-12)
    expected = hidden @ sd["bert.embeddings.word_embeddings.weight"].T + sd[p + "decoder.bias"]
    torch.testing.assert_close(out.logits, expected, rtol=1e-4, atol=1e-4)
    assert model.head.decoder.weight is model.trunk.embeddings.word_embeddings.weight  # still tied, as DNABERT-2 trains it


def test_a_checkpoint_without_an_mlm_head_gets_a_new_one_or_an_error(tmp_path, caplog):
    folder = write_tiny_dnabert2(tmp_path / "bare", mlm_head=False)
    with caplog.at_level("WARNING"):
        build_language_model({**BERT, "pretrained": str(folder)}, vocab_size=4096, pad_token_id=3)
    assert "the LM head starts untrained" in caplog.text
    with pytest.raises(BiolmError, match="no MLM head"):
        build_language_model({**BERT, "pretrained": str(folder)}, vocab_size=4096, pad_token_id=3, require_lm_head=True)


def test_mlm_head_layer_norm_takes_the_trunk_epsilon():
    # transformers' BERT head (and GENA-LM's) uses config.layer_norm_eps: 1e-5 for gena-lm-bert-large-t2t
    from biolm.models import build_language_model

    for eps in (1e-12, 1e-5):
        cfg = {"trunk": {"_target_": "biolm.models.bert.BertEncoder", "hidden_size": 16, "num_layers": 1, "num_heads": 2,
                         "intermediate_size": 32, "layer_norm_eps": eps}}
        assert build_language_model(cfg, vocab_size=12, pad_token_id=0).head.norm.eps == eps

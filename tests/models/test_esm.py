"""EsmEncoder against transformers' ESM (NT v1, ESM-2), NT v2's gated MLP by hand, full-size counts."""

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import transformers
from omegaconf import OmegaConf

from biolm.errors import BiolmError
from biolm.models import EsmEncoder, build_language_model, build_sequence_model
from biolm.models.esm import EsmConfig, EsmMlp
from biolm.models.esm_hub import convert_hf_esm_state_dict, esm_config_from_hf, esm_encoder_from_hf

CONFIG_DIR = Path(__file__).parents[2] / "configs/model"
PAD, MASK = 1, 2
TINY = {
    "vocab_size": 30, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
    "intermediate_size": 64, "max_position_embeddings": 40, "pad_token_id": PAD, "mask_token_id": MASK,
    "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0, "emb_layer_norm_before": False,
}
NT_V1_STYLE = {**TINY, "position_embedding_type": "absolute", "token_dropout": True, "tie_word_embeddings": False}
ESM2_STYLE = {**TINY, "position_embedding_type": "rotary", "token_dropout": True}  # decoder tied, as ESM-2


def tiny_hf_esm(config: dict) -> transformers.EsmForMaskedLM:
    """A tiny `EsmForMaskedLM` with every tensor random (biases and LayerNorms too)."""
    torch.manual_seed(0)
    model = transformers.EsmForMaskedLM(transformers.EsmConfig(**config)).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return model


def batch(lengths: list[int], total: int, with_mask_token: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """`<cls>`-led rows of random ids, right-padded with PAD; one `<mask>` in the first row."""
    ids = torch.randint(4, 30, (len(lengths), total), generator=torch.Generator().manual_seed(1))
    ids[:, 0] = 0
    if with_mask_token:
        ids[0, 3] = MASK
    mask = (torch.arange(total)[None, :] < torch.tensor(lengths)[:, None]).long()
    return ids.masked_fill(mask == 0, PAD), mask


@pytest.mark.parametrize("config", [NT_V1_STYLE, ESM2_STYLE], ids=["nt_v1_absolute", "esm2_rotary"])
def test_hidden_states_and_logits_match_transformers(config, tmp_path):
    hf = tiny_hf_esm(config)
    hf.save_pretrained(tmp_path)
    encoder = EsmEncoder.from_pretrained(tmp_path).eval()
    expected_position = "learned" if config["position_embedding_type"] == "absolute" else "rotary"
    assert encoder.config.position_embedding == expected_position and encoder.config.token_dropout
    assert encoder.config.tie_word_embeddings == config.get("tie_word_embeddings", True)
    ids, mask = batch([12, 7], 12)
    with torch.no_grad():
        reference = hf(input_ids=ids, attention_mask=mask, output_hidden_states=True)
        hidden = encoder(ids, mask)
        logits = encoder.lm_logits(hidden)
    real = mask.bool()
    torch.testing.assert_close(hidden[real], reference.hidden_states[-1][real], atol=1e-5, rtol=0)
    torch.testing.assert_close(logits[real], reference.logits[real], atol=1e-5, rtol=0)


def test_padding_does_not_change_real_tokens():
    hf = tiny_hf_esm(ESM2_STYLE)
    encoder = esm_encoder_from_hf(hf.config.to_dict(), hf.state_dict()).eval()
    ids, mask = batch([7], 7)
    padded_ids, padded_mask = batch([7], 11)
    padded_ids[:, :7] = ids
    with torch.no_grad():
        torch.testing.assert_close(encoder(padded_ids, padded_mask)[:, :7], encoder(ids, mask), atol=1e-5, rtol=0)


def test_token_dropout_scales_embeddings_by_0_88_without_masks():
    encoder = EsmEncoder(vocab_size=30, pad_token_id=PAD, token_dropout=True, position_embedding="rotary").eval()
    ids, mask = batch([9, 5], 9, with_mask_token=False)
    keep = mask.bool()
    scaled = encoder.embeddings(ids, keep)
    plain = encoder.embeddings.word_embeddings(ids) * keep[..., None]
    torch.testing.assert_close(scaled, plain * (1 - 0.15 * 0.8))


def test_gated_silu_mlp_by_hand():
    config = EsmConfig(hidden_size=4, num_heads=2, intermediate_size=3, mlp="swiglu", mlp_bias=False)
    mlp = EsmMlp(config)
    assert mlp.fc_in.weight.shape == (6, 4) and mlp.fc_in.bias is None and mlp.fc_out.bias is None
    g = torch.Generator().manual_seed(0)
    w_in, w_out, x = torch.randn(6, 4, generator=g), torch.randn(4, 3, generator=g), torch.randn(2, 4, generator=g)
    with torch.no_grad():
        mlp.fc_in.weight.copy_(w_in)
        mlp.fc_out.weight.copy_(w_out)
    u = x @ w_in.T  # (2, 6): the first I columns are gated by SiLU, the last I pass through linearly
    x1, x2 = u[:, :3], u[:, 3:]
    expected = (x1 * torch.sigmoid(x1) * x2) @ w_out.T
    torch.testing.assert_close(mlp(x), expected)
    torch.testing.assert_close(mlp(x), F.linear(F.silu(x1) * x2, w_out))


def nt_v2_state_dict(vocab: int, d: int, inner: int, layers: int, positions: int, heads: int) -> dict:
    """Random tensors under the NT v2 `EsmForMaskedLM` remote-code names and shapes (layouts §1.4)."""
    g = torch.Generator().manual_seed(0)
    shapes = {
        "esm.embeddings.word_embeddings.weight": (vocab, d),
        "esm.embeddings.position_embeddings.weight": (positions, d),  # stored, unused with rotary
        "esm.encoder.emb_layer_norm_after.weight": (d,),
        "esm.encoder.emb_layer_norm_after.bias": (d,),
        "esm.contact_head.regression.weight": (1, layers * heads),
        "esm.contact_head.regression.bias": (1,),
        "lm_head.dense.weight": (d, d),
        "lm_head.dense.bias": (d,),
        "lm_head.layer_norm.weight": (d,),
        "lm_head.layer_norm.bias": (d,),
        "lm_head.decoder.weight": (vocab, d),
        "lm_head.bias": (vocab,),
    }
    for i in range(layers):
        p = f"esm.encoder.layer.{i}."
        for part in ("query", "key", "value"):
            shapes |= {f"{p}attention.self.{part}.weight": (d, d), f"{p}attention.self.{part}.bias": (d,)}
        shapes |= {
            p + "attention.self.rotary_embeddings.inv_freq": (d // heads // 2,),  # persistent buffer
            p + "attention.output.dense.weight": (d, d),
            p + "attention.output.dense.bias": (d,),
            p + "attention.LayerNorm.weight": (d,),
            p + "attention.LayerNorm.bias": (d,),
            p + "intermediate.dense.weight": (2 * inner, d),  # gated: [2I, H], no bias
            p + "output.dense.weight": (d, inner),  # no bias
            p + "LayerNorm.weight": (d,),
            p + "LayerNorm.bias": (d,),
        }
    return {name: torch.randn(shape, generator=g) for name, shape in shapes.items()}


NT_V2_TINY_CONFIG = {
    "vocab_size": 4107, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
    "intermediate_size": 48, "max_position_embeddings": 2050, "position_embedding_type": "rotary",
    "add_bias_fnn": False, "token_dropout": False, "emb_layer_norm_before": False, "pad_token_id": 1,
    "mask_token_id": 2, "layer_norm_eps": 1e-12, "tie_word_embeddings": False,
    "auto_map": {"AutoModelForMaskedLM": "modeling_esm.EsmForMaskedLM"},  # no model_type, as NT v2
}


def test_nt_v2_layout_loads_strict_and_runs_the_gated_mlp(write_hf_folder):
    sd = nt_v2_state_dict(4107, 32, 48, 2, 2050, 4)
    folder = write_hf_folder(NT_V2_TINY_CONFIG, sd)
    encoder = EsmEncoder.from_pretrained(folder).eval()
    c = encoder.config
    assert (c.position_embedding, c.mlp, c.mlp_bias, c.token_dropout, c.lm_head) == ("rotary", "swiglu", False, False, True)
    ours = encoder.state_dict()
    assert "embeddings.position_embeddings.weight" not in ours  # the stored table is never read
    torch.testing.assert_close(ours["layers.1.mlp.fc_in.weight"], sd["esm.encoder.layer.1.intermediate.dense.weight"])
    torch.testing.assert_close(ours["layers.0.mlp.fc_out.weight"], sd["esm.encoder.layer.0.output.dense.weight"])
    torch.testing.assert_close(ours["lm_head.decoder.weight"], sd["lm_head.decoder.weight"])
    # Layer 0's MLP by hand, on the checkpoint's own tensors.
    x = torch.randn(3, 32)
    u = x @ sd["esm.encoder.layer.0.intermediate.dense.weight"].T
    expected = (F.silu(u[:, :48]) * u[:, 48:]) @ sd["esm.encoder.layer.0.output.dense.weight"].T
    with torch.no_grad():
        torch.testing.assert_close(encoder.layers[0].mlp(x), expected, atol=1e-4, rtol=1e-5)
    ids, mask = batch([10, 6], 10)
    with torch.no_grad():
        hidden = encoder(ids, mask)
    assert hidden.shape == (2, 10, 32) and torch.isfinite(hidden).all()


def test_query_key_value_fused_in_order():
    hf = tiny_hf_esm(ESM2_STYLE)
    converted = convert_hf_esm_state_dict(hf.state_dict(), rotary=True)
    qkv = converted["layers.1.attention.qkv.weight"]
    attn = hf.esm.encoder.layer[1].attention.self
    torch.testing.assert_close(qkv, torch.cat([attn.query.weight, attn.key.weight, attn.value.weight]))


def test_checkpoint_without_lm_head_builds_an_encoder_only(tmp_path):
    hf_config = transformers.EsmConfig(**ESM2_STYLE)
    torch.manual_seed(0)
    transformers.EsmModel(hf_config, add_pooling_layer=False).save_pretrained(tmp_path)
    encoder = EsmEncoder.from_pretrained(tmp_path)
    assert encoder.lm_head is None
    with pytest.raises(BiolmError, match="no LM head"):
        encoder.lm_logits(torch.zeros(1, 32))


def test_lm_head_can_be_left_out_and_checkpointing_changes_no_gradient(write_hf_folder):
    sd = nt_v2_state_dict(4107, 32, 48, 2, 2050, 4)
    folder = write_hf_folder(NT_V2_TINY_CONFIG, sd)
    encoder = EsmEncoder.from_pretrained(folder, lm_head=False, gradient_checkpointing=True)
    assert encoder.lm_head is None and not encoder.config.lm_head and encoder.config.gradient_checkpointing
    reference = EsmEncoder.from_pretrained(folder, lm_head=False)
    ids, mask = batch([10, 6], 10)
    for model in (encoder, reference):
        model.train()
        model(ids, mask)[mask.bool()].pow(2).mean().backward()
    for (name, p), q in zip(encoder.named_parameters(), reference.parameters()):
        torch.testing.assert_close(p.grad, q.grad, msg=name)


def test_mismatch_and_bad_config_are_user_errors(write_hf_folder):
    sd = nt_v2_state_dict(4107, 32, 48, 2, 2050, 4)
    del sd["esm.encoder.layer.1.output.dense.weight"]
    folder = write_hf_folder(NT_V2_TINY_CONFIG, sd)
    with pytest.raises(BiolmError, match=r"missing 1 \(layers.1.mlp.fc_out.weight\)"):
        EsmEncoder.from_pretrained(folder)
    with pytest.raises(BiolmError, match="position_embedding_type: 'relative_key'"):
        esm_config_from_hf({**NT_V2_TINY_CONFIG, "position_embedding_type": "relative_key"}, sd)


def test_learned_positions_limit_the_length():
    encoder = EsmEncoder(vocab_size=30, pad_token_id=PAD, position_embedding="learned", max_position_embeddings=12)
    assert encoder.max_tokens == 10  # positions start at pad + 1 = 2
    ids, mask = batch([11], 11)
    with pytest.raises(BiolmError, match="longer than the 10"):
        encoder(ids, mask)


def test_build_models_with_pretrained(tmp_path):
    hf = tiny_hf_esm(NT_V1_STYLE)
    hf.save_pretrained(tmp_path)
    cfg = OmegaConf.load(CONFIG_DIR / "nt_v1_500m.yaml")
    cfg.pretrained = str(tmp_path)
    model = build_sequence_model(cfg, vocab_size=30, pad_token_id=PAD, num_outputs=2).eval()
    assert model.trunk.hidden_size == 32 and model.trunk.config.token_dropout
    lm = build_language_model(cfg, vocab_size=30, pad_token_id=PAD).eval()
    ids, mask = batch([12, 7], 12)
    with torch.no_grad():
        expected = hf(input_ids=ids, attention_mask=mask).logits
        got = lm(ids, mask).logits
    torch.testing.assert_close(got[mask.bool()], expected[mask.bool()], atol=1e-5, rtol=0)


def count(name: str, vocab_size: int) -> int:
    """Parameters of a full-size config's trunk (LM head included), built on the meta device."""
    cfg = OmegaConf.load(CONFIG_DIR / f"{name}.yaml")
    with torch.device("meta"):
        model = build_language_model(cfg, vocab_size=vocab_size, pad_token_id=PAD)
    return sum(p.numel() for p in model.trunk.parameters())


def test_full_size_parameter_counts():
    # Layouts file §1.4: EsmForMaskedLM totals that include the contact head (1 x layers*heads + 1),
    # which EsmEncoder drops; NT v2 also stores a 2050 x 512 position table that rotary never reads.
    assert count("nt_v2_50m", 4107) + 2050 * 512 + (12 * 16 + 1) == 55_904_972
    # NT v1-500m: 24 layers x 20 heads; vocab 4105 (the model drops vocab.txt's <eos>, <bos>).
    assert count("nt_v1_500m", 4105) + (24 * 20 + 1) == 485_699_306


def test_esm2_8m_parameter_count_equals_transformers():
    # facebook/esm2_t6_8M_UR50D's config, built by transformers' own EsmForMaskedLM (the reference); it
    # counts the contact head (6 x 20 + 1) that EsmEncoder drops; the decoder is tied to the embedding.
    # The Hub checkpoint also stores, as NT v2 does, a 1026 x 320 position table that rotary never reads
    # (the importer drops it): 7,840,794 with it, the "8M" of the name.
    config = transformers.EsmConfig(
        vocab_size=33, hidden_size=320, num_hidden_layers=6, num_attention_heads=20, intermediate_size=1280,
        max_position_embeddings=1026, pad_token_id=1, mask_token_id=32, position_embedding_type="rotary",
        token_dropout=True, emb_layer_norm_before=False, tie_word_embeddings=True,
    )
    with torch.device("meta"):
        reference = sum(p.numel() for p in transformers.EsmForMaskedLM(config).parameters())
    assert count("esm2_t6_8m", 33) + (6 * 20 + 1) == reference == 7_512_474
    assert reference + 1026 * 320 == 7_840_794

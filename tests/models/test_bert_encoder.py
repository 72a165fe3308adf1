"""BertEncoder: equivalence with transformers' BERT, ALiBi, GEGLU, padding, checkpointing."""

import math

import pytest
import torch
import transformers

from biolm.errors import BiolmError
from biolm.models import BertEncoder, alibi_bias, alibi_slopes

VOCAB = 30


def padded_batch(lengths: list[int], total: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random ids 5..VOCAB-1 with pads (id 0) after each length; mask 1 at real tokens."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, VOCAB, (len(lengths), total), generator=g)
    mask = (torch.arange(total)[None, :] < torch.tensor(lengths)[:, None]).long()
    return ids.masked_fill(mask == 0, 0), mask


def tiny(**overrides) -> BertEncoder:
    kwargs = dict(hidden_size=32, num_layers=2, num_heads=4, intermediate_size=64,
                  max_position_embeddings=64)
    kwargs.update(overrides)
    torch.manual_seed(0)
    return BertEncoder(VOCAB, pad_token_id=0, **kwargs).eval()


def test_matches_transformers_bert_with_padding():
    from biolm.models.bert_hub import bert_config_from_hf, convert_hf_bert_state_dict

    hf_config = transformers.BertConfig(
        vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=64, max_position_embeddings=64, attn_implementation="eager",
    )
    torch.manual_seed(0)
    hf = transformers.BertModel(hf_config, add_pooling_layer=False).eval()
    ours = BertEncoder(**bert_config_from_hf(hf_config)).eval()
    ours.load_state_dict(convert_hf_bert_state_dict(hf.state_dict()), strict=True)

    ids, mask = padded_batch([12, 7, 3], total=12)
    with torch.no_grad():
        expected = hf(input_ids=ids, attention_mask=mask).last_hidden_state
        got = ours(ids, mask)
    real = mask.bool()
    torch.testing.assert_close(got[real], expected[real], atol=1e-5, rtol=1e-5)


def test_alibi_slopes_match_published_lists():
    eight = [2.0**-k for k in range(1, 9)]
    torch.testing.assert_close(alibi_slopes(8), torch.tensor(eight))
    twelve = eight + [2.0**-0.5, 2.0**-1.5, 2.0**-2.5, 2.0**-3.5]
    torch.testing.assert_close(alibi_slopes(12), torch.tensor(twelve))
    torch.testing.assert_close(alibi_slopes(4), torch.tensor([2.0**-2, 2.0**-4, 2.0**-6, 2.0**-8]))


def test_alibi_bias_known_answer():
    slopes = alibi_slopes(2)  # 2^-4, 2^-8
    assert slopes.tolist() == [2.0**-4, 2.0**-8]
    expected = torch.tensor(
        [
            [[0, -1, -2], [-1, 0, -1], [-2, -1, 0]],
        ],
        dtype=torch.float32,
    )
    expected = torch.cat([expected * 2.0**-4, expected * 2.0**-8])
    torch.testing.assert_close(alibi_bias(slopes, 3), expected)


def test_alibi_cache_slices_larger_bias():
    model = tiny(position_embedding="alibi", mlp="geglu")
    big = model._alibi(10, torch.float32)
    small = model._alibi(4, torch.float32)
    torch.testing.assert_close(small[0], alibi_bias(model.alibi_slopes, 4))
    assert big.shape == (1, 4, 10, 10)
    assert model.max_tokens is None


def test_geglu_known_answer():
    model = tiny(hidden_size=2, num_heads=1, intermediate_size=1, num_layers=1, mlp="geglu")
    mlp = model.layers[0].mlp
    with torch.no_grad():
        mlp.gated.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 2.0]]))  # row 0 gate, row 1 linear
        mlp.fc_out.weight.copy_(torch.tensor([[1.0], [-1.0]]))
        mlp.fc_out.bias.copy_(torch.tensor([0.5, 0.0]))
    x = torch.tensor([[1.0, 3.0]])
    gelu_1 = 0.5 * (1 + math.erf(1 / math.sqrt(2)))  # exact GELU(1) = 0.8413447
    value = gelu_1 * 6.0
    torch.testing.assert_close(mlp(x), torch.tensor([[value + 0.5, -value]]))


@pytest.mark.parametrize(
    "overrides",
    [dict(), dict(position_embedding="alibi", mlp="geglu")],
    ids=["learned", "alibi"],
)
def test_padding_invariance(overrides):
    model = tiny(**overrides)
    ids, mask = padded_batch([9, 5], total=9)
    extra_ids = torch.cat([ids, torch.zeros(2, 6, dtype=torch.long)], dim=1)
    extra_mask = torch.cat([mask, torch.zeros(2, 6, dtype=torch.long)], dim=1)
    with torch.no_grad():
        short = model(ids, mask)
        long = model(extra_ids, extra_mask)[:, :9]
    real = mask.bool()
    torch.testing.assert_close(long[real], short[real], atol=1e-5, rtol=1e-5)


def test_gradient_checkpointing_same_gradients():
    ids, mask = padded_batch([10, 6], total=10)

    def grads(checkpointing: bool) -> dict[str, torch.Tensor]:
        model = tiny(gradient_checkpointing=checkpointing, hidden_dropout=0.0).train()
        model(ids, mask).pow(2).mean().backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    plain, checkpointed = grads(False), grads(True)
    assert plain.keys() == checkpointed.keys()
    for name in plain:
        torch.testing.assert_close(checkpointed[name], plain[name], msg=name)


def test_pad_embedding_starts_at_zero():
    model = BertEncoder(VOCAB, pad_token_id=3)
    assert model.embeddings.word_embeddings.weight[3].abs().sum() == 0
    assert model.hidden_size == 128 and model.max_tokens == 512


@pytest.mark.parametrize(
    ("field", "value"),
    [("position_embedding", "rotary"), ("mlp", "swish"), ("num_heads", 3), ("hidden_sise", 64)],
)
def test_bad_config_names_the_field(field, value):
    with pytest.raises(BiolmError, match=f"model.trunk.{field}"):
        BertEncoder(VOCAB, **{field: value})


def test_too_long_input_is_a_user_error():
    model = tiny()
    ids = torch.ones(1, 65, dtype=torch.long)
    with pytest.raises(BiolmError, match="max_position_embeddings"):
        model(ids, torch.ones_like(ids))


@pytest.mark.parametrize(
    "overrides",
    [{}, {"position_embedding": "alibi", "mlp": "geglu"}, {"pre_layer_norm": True, "last_layer_norm": True}, {"num_layers": 1}],
)
def test_first_token_only_equals_the_full_pass(overrides):
    # the last layer computed for position 0 alone gives the same position-0 state (pads in the batch, ALiBi rows)
    model = tiny(**overrides)
    ids, mask = padded_batch([12, 5, 9], 12, seed=3)
    with torch.no_grad():
        full = model(ids, mask)
        first = model(ids, mask, first_token_only=True)
    assert first.shape == (3, 1, 32)
    torch.testing.assert_close(first[:, 0], full[:, 0], atol=1e-6, rtol=1e-5)


def test_logits_only_prediction_equals_the_full_pass():
    from biolm.models.heads import SequenceHead, SequenceModel

    for pooling in ("cls", "mean"):
        torch.manual_seed(1)
        model = SequenceModel(tiny(), SequenceHead(32, 2, pooling=pooling)).eval()
        ids, mask = padded_batch([10, 4, 7], 10, seed=4)
        with torch.no_grad():
            torch.testing.assert_close(model(ids, mask, logits_only=True).logits, model(ids, mask).logits, atol=1e-6, rtol=1e-5)

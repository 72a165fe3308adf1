"""SequenceHead pooling and SequenceModel composition."""

import pytest
import torch

from biolm.errors import BiolmError
from biolm.models import CnnEncoder, ModelOutput, SequenceHead, SequenceModel, SequenceModelOutput


@pytest.fixture
def hidden_and_mask() -> tuple[torch.Tensor, torch.Tensor]:
    hidden = torch.randn(2, 5, 3, generator=torch.Generator().manual_seed(0))
    hidden[1, 3:] = 100.0  # pad positions hold large values that must be ignored
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    return hidden, mask


def test_mean_pooling_ignores_pads(hidden_and_mask):
    hidden, mask = hidden_and_mask
    _, pooled = SequenceHead(3, 2, pooling="mean")(hidden, mask)
    torch.testing.assert_close(pooled[0], hidden[0].mean(0))
    torch.testing.assert_close(pooled[1], hidden[1, :3].mean(0))


def test_max_pooling_ignores_pads(hidden_and_mask):
    hidden, mask = hidden_and_mask
    _, pooled = SequenceHead(3, 2, pooling="max")(hidden, mask)
    torch.testing.assert_close(pooled[0], hidden[0].amax(0))
    torch.testing.assert_close(pooled[1], hidden[1, :3].amax(0))


def test_cls_pooling_and_logits(hidden_and_mask):
    hidden, mask = hidden_and_mask
    head = SequenceHead(3, 4, pooling="cls").eval()
    logits, pooled = head(hidden, mask)
    torch.testing.assert_close(pooled, hidden[:, 0])
    torch.testing.assert_close(logits, head.out(hidden[:, 0]))
    assert logits.shape == (2, 4)


def test_bad_pooling_is_a_user_error():
    with pytest.raises(BiolmError, match=r"model.head.pooling.*cls, mean, max"):
        SequenceHead(3, 2, pooling="attention")


def test_sequence_model_output():
    model = SequenceModel(CnnEncoder(10, hidden_size=8), SequenceHead(8, 3, pooling="mean"))
    ids = torch.randint(1, 10, (2, 7))
    out = model(ids, torch.ones_like(ids))
    assert isinstance(out, ModelOutput) and SequenceModelOutput is ModelOutput
    assert out.logits.shape == (2, 3) and out.pooled.shape == (2, 8) and out.hidden.shape == (2, 7, 8)
    assert out.loss is None and model.max_tokens is None

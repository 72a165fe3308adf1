"""CnnEncoder: shapes, padding invariance, config errors."""

import pytest
import torch

from biolm.errors import BiolmError
from biolm.models import CnnEncoder


def test_padding_invariance_and_zero_pads():
    torch.manual_seed(0)
    model = CnnEncoder(12, pad_token_id=0, hidden_size=16, num_layers=3, kernel_size=5).eval()
    ids = torch.randint(1, 12, (2, 11))
    mask = torch.ones(2, 11, dtype=torch.long)
    mask[1, 6:] = 0
    ids = ids.masked_fill(mask == 0, 0)
    longer_ids = torch.cat([ids, torch.zeros(2, 7, dtype=torch.long)], dim=1)
    longer_mask = torch.cat([mask, torch.zeros(2, 7, dtype=torch.long)], dim=1)
    with torch.no_grad():
        short = model(ids, mask)
        long = model(longer_ids, longer_mask)
    assert short.shape == (2, 11, 16)
    torch.testing.assert_close(long[:, :11], short, atol=1e-6, rtol=1e-5)
    assert long[:, 11:].abs().sum() == 0 and short[1, 6:].abs().sum() == 0
    assert model.max_tokens is None and model.hidden_size == 16


@pytest.mark.parametrize(("field", "value"), [("kernel_size", 4), ("dilation_growth", 0), ("width", 3)])
def test_bad_config_names_the_field(field, value):
    with pytest.raises(BiolmError, match=f"model.trunk.{field}"):
        CnnEncoder(12, **{field: value})

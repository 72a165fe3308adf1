"""Shared fixture: write a tiny checkpoint folder in the Hugging Face layout (no network)."""

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file


@pytest.fixture
def write_hf_folder(tmp_path) -> Callable[..., Path]:
    """`write(config, state_dict, weights="model.safetensors", name="checkpoint") -> folder`.

    `weights` is `model.safetensors` or `pytorch_model.bin` (a pickled state dict, as
    `torch.save` writes it).
    """

    def write(config: dict, state_dict: dict, weights: str = "model.safetensors", name: str = "checkpoint") -> Path:
        folder = tmp_path / name
        folder.mkdir()
        (folder / "config.json").write_text(json.dumps(config))
        tensors = {key: value.detach().clone().contiguous() for key, value in state_dict.items()}
        if weights == "model.safetensors":
            save_file(tensors, folder / weights)
        else:
            torch.save(tensors, folder / weights)
        return folder

    return write

"""model.pretrained=org/name: a Hub id is downloaded when online and refused in one line when offline (no network here)."""

from __future__ import annotations

from pathlib import Path

import huggingface_hub
import pytest
import torch
import transformers
from huggingface_hub.errors import LocalEntryNotFoundError, RepositoryNotFoundError

from biolm.errors import BiolmError
from biolm.models import build_sequence_model
from biolm.models.hub import resolve_pretrained

MODEL_CFG = {"trunk": {"_target_": "biolm.models.bert.BertEncoder"}, "head": {"pooling": "cls", "dropout": 0.0}}


def test_local_paths_are_kept(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "org" / "name").mkdir(parents=True)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", _no_download)
    assert resolve_pretrained("org/name") == Path("org/name")  # an existing folder wins over the Hub id it looks like
    assert resolve_pretrained("./missing/folder") == Path("missing/folder")  # not an id: read_hf_folder names it missing
    assert resolve_pretrained("/no/such/checkpoint") == Path("/no/such/checkpoint")


def test_offline_hub_id_is_one_line_naming_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))  # the real snapshot_download, cache only: no network
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(BiolmError) as info:
        resolve_pretrained("zhihan1996/DNA_bert_3")
    message = str(info.value)
    assert "\n" not in message
    assert "model.pretrained=zhihan1996/DNA_bert_3" in message and "HF_HUB_OFFLINE" in message
    assert "hf download zhihan1996/DNA_bert_3 --local-dir <folder>" in message and "model.pretrained=<folder>" in message


def test_no_network_and_unknown_repository(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", _raise(LocalEntryNotFoundError("cannot reach the Hub")))
    with pytest.raises(BiolmError, match=r"model.pretrained=org/name: .*no network.*pass model.pretrained=<folder>"):
        build_sequence_model({**MODEL_CFG, "pretrained": "org/name"}, vocab_size=30, pad_token_id=0, num_outputs=1)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", _raise(RepositoryNotFoundError("404", response=_Response())))
    with pytest.raises(BiolmError, match="no such repository"):
        resolve_pretrained("org/name")


def test_online_hub_id_builds_from_the_snapshot(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    config = transformers.BertConfig(vocab_size=30, hidden_size=32, num_hidden_layers=1, num_attention_heads=4, intermediate_size=64, pad_token_id=0)
    torch.manual_seed(0)
    transformers.BertModel(config).save_pretrained(tmp_path / "snapshot")
    calls = []

    def snapshot_download(repo_id, **kwargs):
        calls.append((repo_id, kwargs))
        return str(tmp_path / "snapshot")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    model = build_sequence_model({**MODEL_CFG, "pretrained": "org/tiny-bert"}, vocab_size=30, pad_token_id=0, num_outputs=2)
    assert calls[0][0] == "org/tiny-bert" and calls[0][1]["local_files_only"] is False
    assert model.trunk.config.hidden_size == 32


class _Response:
    status_code, headers, url, request = 404, {}, "https://huggingface.co/api/models/org/name", None


def _raise(exc: Exception):
    def fail(*args, **kwargs):
        raise exc

    return fail


def _no_download(*args, **kwargs):
    raise AssertionError("a local path must not be downloaded")

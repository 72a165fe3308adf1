"""Where a ``model.pretrained`` value lives: a local folder, or a Hugging Face Hub id downloaded
with `huggingface_hub` when online (a bottom-layer module: tokenizers and models both read
checkpoint folders)."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

from biolm.errors import BiolmError

log = logging.getLogger(__name__)

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")  # org/name, as the Hub spells repository ids
# What a model.pretrained download fetches: configs, tokenizer files and the weights (the .bin only without a .safetensors).
_HUB_FILES = ["*.json", "*.txt", "*.model", "*.safetensors"]


def resolve_pretrained(value: str | Path) -> Path:
    """The checkpoint folder a `model.pretrained` value names: an existing path, else a Hub id's download.

    ``org/name`` that is not a local path is fetched with `huggingface_hub.snapshot_download` into the
    Hugging Face cache (configs, tokenizer files, weights); with ``HF_HUB_OFFLINE=1`` only the cache is read.

    Args:
        value: a local folder or a Hub repository id.

    Returns:
        The folder (a value that is neither an existing path nor a Hub id is returned as a path, and
        `read_hf_folder` names it as missing).

    Raises:
        BiolmError: a Hub id that cannot be fetched (offline, no network, unknown or gated repository).
    """
    path = Path(str(value)).expanduser()
    if path.exists() or not HUB_ID.match(str(value)):
        return path
    return _download(str(value))


def _download(repo_id: str) -> Path:
    """Fetch a Hub repository's checkpoint files (cache only when offline), or raise one line that says what to do."""
    from huggingface_hub import snapshot_download

    offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")
    try:
        folder = Path(snapshot_download(repo_id, allow_patterns=_HUB_FILES, local_files_only=offline))
        if not (folder / "model.safetensors").is_file():
            folder = Path(snapshot_download(repo_id, allow_patterns=[*_HUB_FILES, "pytorch_model.bin"], local_files_only=offline))
    except Exception as exc:  # huggingface_hub raises its own errors, httpx's and OSError for the network and the cache
        reason = "HF_HUB_OFFLINE is set and it is not in the Hugging Face cache" if offline else _download_failure(exc)
        raise BiolmError(
            f"model.pretrained={repo_id}: cannot download it from the Hugging Face Hub ({reason}); download it where there is "
            f"network (hf download {repo_id} --local-dir <folder>) and pass model.pretrained=<folder>"
        ) from None
    log.info("model.pretrained=%s: Hugging Face Hub snapshot in %s", repo_id, folder)
    return folder


def _download_failure(exc: Exception) -> str:
    """A few words on why a Hub download failed."""
    from huggingface_hub.errors import GatedRepoError, LocalEntryNotFoundError, RepositoryNotFoundError

    if isinstance(exc, GatedRepoError):
        return "the repository is gated: accept its terms on the Hub and log in with `hf auth login`"
    if isinstance(exc, RepositoryNotFoundError):
        return "no such repository, or it is private"
    if isinstance(exc, LocalEntryNotFoundError):
        return "no network, and it is not in the Hugging Face cache"
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]

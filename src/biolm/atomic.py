"""Atomic file writes: a path to write to that replaces the target only once the writing succeeded.

In: the destination path. Out: a temporary sibling path to write; on a clean exit it is renamed
onto the destination (``os.replace``, atomic on one filesystem), on an exception it is removed, so
an interrupted run never leaves a half-written file that looks complete. `atomic_folder` does the same
for a whole folder (written beside the target, swapped in, an earlier folder replaced whole). This module imports
nothing from biolm, so every layer (tokenizers, data, runs, reports) can use it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only on success.

    Args:
        path: the destination; its parent folder is created if needed.

    Yields:
        A fresh temporary file path in the same folder (mode 0666 minus the umask once written).
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        if os.path.exists(tmp):
            os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; give the usual permissions
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@contextlib.contextmanager
def atomic_folder(folder: str | Path) -> Iterator[Path]:
    """Yield a fresh hidden staging folder beside ``folder``; swap it into place only on success.

    An earlier ``folder`` is replaced whole (renamed aside, then removed), so no file of an earlier
    output survives; an exception removes the staging folder and leaves ``folder`` as it was. Between
    the two renames of the swap (microseconds) only the renamed-aside ``.<name>.old`` exists.

    Raises:
        ValueError: ``folder`` is the working directory or holds it (it cannot be renamed).
    """
    folder = Path(folder).resolve()
    if Path.cwd().resolve().is_relative_to(folder):
        raise ValueError(f"{folder} is the working directory or holds it; write the output to another folder")
    folder.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".writing", dir=folder.parent))
    try:
        yield stage
        if folder.exists():
            old = folder.parent / f".{folder.name}.old"
            shutil.rmtree(old, ignore_errors=True)
            folder.rename(old)
            stage.rename(folder)
            shutil.rmtree(old, ignore_errors=True)
        else:
            stage.rename(folder)
    finally:
        shutil.rmtree(stage, ignore_errors=True)  # gone already after a successful swap

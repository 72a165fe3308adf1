"""Saved attributions: the `Attributions` of `biolm.interpret.attributions.attribute` and the folder of ``biolm interpret``.

In: `Attributions` (ragged per-base scores of N sequences). Out: a folder, written beside ``output`` and
swapped in (`biolm.atomic.atomic_folder`)::

    attributions.npz    ids, sequences and targets as UTF-8 bytes + offsets; scores (and ISM's hypothetical
                        scores) flattened, cut by ``offsets`` ``(N + 1,)``; output ``(N,)``
    attributions.json   method, baseline, letters, the run and the method's settings
    summary.csv         one row per sequence: its top window (0-based, half-open) and scores
    logos/, report.md   the top sequences' tracks and logos (`biolm.interpret.logos`)
"""

from __future__ import annotations

import json
import logging
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from biolm.atomic import atomic_folder, atomic_path
from biolm.errors import BiolmError

log = logging.getLogger(__name__)


def _pack(strings: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Strings -> their UTF-8 bytes joined ``(total,)`` uint8 and ``(N + 1,)`` int64 byte offsets."""
    encoded = [s.encode() for s in strings]
    offsets = np.concatenate([[0], np.cumsum([len(e) for e in encoded])]).astype(np.int64)
    return np.frombuffer(b"".join(encoded), dtype=np.uint8), offsets


def _unpack(flat: np.ndarray, offsets: np.ndarray) -> list[str]:
    """The inverse of `_pack`."""
    raw = flat.tobytes()
    return [raw[a:b].decode() for a, b in zip(offsets[:-1], offsets[1:])]


def _split(flat: np.ndarray, offsets: np.ndarray) -> list[np.ndarray]:
    """A flat array cut at ``offsets`` ``(N + 1,)`` into N pieces."""
    return [flat[a:b] for a, b in zip(offsets[:-1], offsets[1:])]


@dataclass
class Attributions:
    """Per-base attributions of N sequences (see the module docstring).

    Attributes:
        ids: sequence ids (N).
        sequences: the normalised sequences (upper case), as the model read them (N).
        scores: ``(L_i,)`` float32 per-base scores, in units of the explained output.
        output: ``(N,)`` the explained output (logit, or value on the label scale) of each sequence.
        target: ``(N,)`` the class explained (``value`` for regression).
        method: one of `METHODS`.
        baseline: one of `BASELINES` (None for ``ism`` and ``saliency``).
        letters: the alphabet letters of ``hypothetical``'s columns.
        hypothetical: ``ism`` only: ``(L_i, len(letters))`` float32 mean-centred mutation effects.
        settings: the method's parameters (run, steps, n_baselines, seed, convergence delta, ...).
    """

    ids: list[str]
    sequences: list[str]
    scores: list[np.ndarray]
    output: np.ndarray
    target: list[str]
    method: str
    baseline: str | None
    letters: str = "ACGT"
    hypothetical: list[np.ndarray] | None = None
    settings: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ids)

    def top_windows(self, window_bp: int) -> np.ndarray:
        """``(N, 2)`` int64 ``[start, end)`` of each sequence's ``window_bp`` window of largest summed score."""
        out = np.zeros((len(self), 2), dtype=np.int64)
        for i, scores in enumerate(self.scores):
            width = min(window_bp, len(scores))
            sums = np.convolve(scores, np.ones(width), mode="valid")  # (L - width + 1,)
            start = int(np.argmax(sums))
            out[i] = (start, start + width)
        return out

    def summary(self, window_bp: int = 10) -> pd.DataFrame:
        """One row per sequence: id, length, target, output, total score and the top window (0-based, half-open)."""
        top = self.top_windows(window_bp)
        return pd.DataFrame({
            "id": self.ids,
            "length_bp": [len(s) for s in self.sequences],
            "target": self.target,
            "output": self.output.astype(float),
            "total_score": [float(s.sum()) for s in self.scores],
            "top_start": top[:, 0],
            "top_end": top[:, 1],
            "top_score": [float(s[a:b].sum()) for s, (a, b) in zip(self.scores, top)],
            "top_sequence": [seq[a:b] for seq, (a, b) in zip(self.sequences, top)],
        })

    def save(self, folder: str | Path, window_bp: int = 10) -> Path:
        """Write ``attributions.npz``, ``attributions.json`` and ``summary.csv`` into ``folder``.

        The npz holds the ragged arrays flattened: ``scores`` (and ``hypothetical``) cut at ``offsets``
        (one per base), the sequences, ids and targets as UTF-8 bytes cut at their ``*_offsets``.
        """
        check_write_settings(window_bp, 0)
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        lengths = np.array([len(s) for s in self.scores], dtype=np.int64)
        arrays = {
            "offsets": np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),  # (N + 1,)
            "scores": np.concatenate(self.scores).astype(np.float32) if len(self) else np.zeros(0, np.float32),
            "output": np.asarray(self.output, dtype=np.float32),
        }
        for name, strings in (("sequences", self.sequences), ("ids", self.ids), ("target", self.target)):
            arrays[name], arrays[f"{name}_offsets"] = _pack(list(strings))
        if self.hypothetical is not None:
            arrays["hypothetical"] = np.concatenate(self.hypothetical).astype(np.float32)  # (sum L, A)
        with atomic_path(folder / "attributions.npz") as tmp, open(tmp, "wb") as handle:
            np.savez_compressed(handle, **arrays)
        meta = {"method": self.method, "baseline": self.baseline, "letters": self.letters, "n_sequences": len(self), "settings": self.settings}
        with atomic_path(folder / "attributions.json") as tmp:
            tmp.write_text(json.dumps(meta, indent=2) + "\n")
        with atomic_path(folder / "summary.csv") as tmp:
            self.summary(window_bp).to_csv(tmp, index=False)
        return folder


def load_attributions(folder: str | Path) -> Attributions:
    """Read a folder written by `Attributions.save` (``biolm interpret``).

    Raises:
        BiolmError: the folder has no readable ``attributions.npz`` / ``attributions.json``.
    """
    folder = Path(folder)
    try:
        meta = json.loads((folder / "attributions.json").read_text())
        with np.load(folder / "attributions.npz") as data:
            offsets = data["offsets"]
            return Attributions(
                ids=_unpack(data["ids"], data["ids_offsets"]),
                sequences=_unpack(data["sequences"], data["sequences_offsets"]),
                scores=_split(data["scores"], offsets),
                output=data["output"],
                target=_unpack(data["target"], data["target_offsets"]),
                method=meta["method"],
                baseline=meta["baseline"],
                letters=meta["letters"],
                hypothetical=_split(data["hypothetical"], offsets) if "hypothetical" in data.files else None,
                settings=dict(meta.get("settings") or {}),
            )
    except (OSError, KeyError, ValueError, TypeError, UnicodeDecodeError, zipfile.BadZipFile) as err:
        raise BiolmError(f"attributions={folder}: not a folder written by biolm interpret ({err})") from None


def check_write_settings(window_bp: int, top_k: int) -> None:
    """Refuse a top-window width under 1 or a negative logo count (before any work is done)."""
    if window_bp < 1:
        raise BiolmError(f"window_bp={window_bp}: the top window is at least 1 bp wide")
    if top_k < 0:
        raise BiolmError(f"top_k={top_k}: the number of logos is 0 or more")


def check_output(folder: str | Path, marker: str, command: str) -> None:
    """Refuse an ``output`` that exists and holds files, but not those of ``biolm <command>`` (``marker``): it would be replaced."""
    folder = Path(folder)
    if folder.exists() and (not folder.is_dir() or (any(folder.iterdir()) and not (folder / marker).is_file())):
        raise BiolmError(f"output={folder}: exists and is not a folder written by biolm {command}; choose a new folder (the output folder is replaced)")
    if Path.cwd().resolve().is_relative_to(folder.resolve()):
        raise BiolmError(f"output={folder}: the working directory is inside it, and the output folder is replaced; run from elsewhere or pick another folder")


def write_attributions(attributions: Attributions, folder: str | Path, window_bp: int = 10, top_k: int = 8, title: str = "") -> Path:
    """Save ``attributions`` (see `Attributions.save`), logos of the ``top_k`` highest-output sequences and ``report.md``.

    The folder is written beside it and swapped into place (an earlier run's files are replaced).

    Returns:
        The folder, holding attributions.npz/.json, summary.csv, logos/<rank>_<id>.png and report.md.

    Raises:
        BiolmError: ``window_bp < 1``, ``top_k < 0``, or ``folder`` holds files not written by biolm interpret.
    """
    from biolm.interpret.logos import plot_attribution

    check_write_settings(window_bp, top_k)
    folder = Path(folder)
    check_output(folder, "attributions.json", "interpret")
    with atomic_folder(folder) as stage:
        attributions.save(stage, window_bp)
        summary = attributions.summary(window_bp)
        ranked = np.argsort(-attributions.output, kind="stable")[:top_k]
        lines = [f"# Attributions: {attributions.method}{f' — {title}' if title else ''}", ""]
        baseline = attributions.baseline or "none"
        lines += [f"- {len(attributions)} sequences; baseline: {baseline}; explained output: the logit (value) of each sequence's target",
                  f"- settings: {json.dumps({k: v for k, v in attributions.settings.items() if v is not None})}",
                  f"- top window: the {window_bp} bp window with the largest summed score (summary.csv: top_start, top_end, 0-based, half-open)", ""]
        lines += ["| rank | id | target | output | top window | top sequence |", "|---:|---|---|---:|---|---|"]
        for rank, i in enumerate(ranked, start=1):
            row = summary.iloc[i]
            safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in str(row.id))[:60]
            png = plot_attribution(attributions.sequences[i], attributions.scores[i], stage / "logos" / f"{rank:02d}_{safe}.png",
                                   f"{row.id} | {attributions.method} | {row.target} output {row.output:.3f}", (int(row.top_start), int(row.top_end)))
            lines.append(f"| {rank} | {row.id} | {row.target} | {row.output:.3f} | {row.top_start}-{row.top_end} | `{row.top_sequence}` |")
            lines.append(f"|  | ![{row.id}](logos/{png.name}) |  |  |  |  |")
        with atomic_path(stage / "report.md") as tmp:
            tmp.write_text("\n".join(lines) + "\n")
    return folder

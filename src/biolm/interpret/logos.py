"""Sequence-logo plots (logomaker) of attributions and motifs; PNG files written atomically.

- `plot_attribution`: one sequence, two panels: the per-base score track over the whole sequence
  (bars coloured by base, the top window shaded) and a logo of the top window with flanks, each
  letter as tall as its base's score (negative scores drawn below the axis).
- `one_hot` / `letter_matrix`: a sequence as a one-hot matrix, or its per-base scores spread into it.
- `plot_motif`: a motif's ``(W, 4)`` matrix as a logo: a position frequency matrix in bits
  (information content, Schneider & Stephens 1990) or a contribution-weight matrix as is.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from biolm.atomic import atomic_path
from biolm.errors import require_extra

BASE_COLOURS = {"A": "#2ca02c", "C": "#1f77b4", "G": "#ff7f0e", "T": "#d62728"}


def _figure_module():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def one_hot(sequence: str, letters: str = "ACGT") -> np.ndarray:
    """``(L, len(letters))`` float64 one-hot of ``sequence`` (N and other letters: an all-zero row)."""
    lookup = np.full(256, -1, dtype=np.int64)
    lookup[np.frombuffer(letters.encode(), dtype=np.uint8)] = np.arange(len(letters))
    columns = lookup[np.frombuffer(sequence.encode(), dtype=np.uint8)]  # (L,) column or -1
    out = np.zeros((len(sequence), len(letters)))
    known = columns >= 0
    out[np.flatnonzero(known), columns[known]] = 1.0
    return out


def letter_matrix(sequence: str, scores: np.ndarray, letters: str = "ACGT") -> pd.DataFrame:
    """``(L, len(letters))`` frame: each base's score in its letter's column, 0 elsewhere (N and others: all 0)."""
    return pd.DataFrame(one_hot(sequence, letters) * np.asarray(scores, dtype=np.float64)[:, None], columns=list(letters))


def plot_attribution(sequence: str, scores: np.ndarray, path: str | Path, title: str, window: tuple[int, int], flank_bp: int = 15) -> Path:
    """Track of per-base ``scores`` over ``sequence`` and a logo of ``window`` +- ``flank_bp`` (0-based, half-open)."""
    require_extra("analysis", "logomaker")
    import logomaker

    plt = _figure_module()
    start, end = max(0, window[0] - flank_bp), min(len(sequence), window[1] + flank_bp)
    fig, (track, logo_ax) = plt.subplots(2, 1, figsize=(12, 4.2), gridspec_kw={"height_ratios": [1, 1.3]})
    positions = np.arange(len(sequence))
    track.bar(positions, scores, width=1.0, color=[BASE_COLOURS.get(b, "#7f7f7f") for b in sequence])
    track.axvspan(window[0] - 0.5, window[1] - 0.5, color="#bbbbbb", alpha=0.4, lw=0)
    track.axhline(0, color="black", lw=0.5)
    track.set_xlim(-0.5, len(sequence) - 0.5)
    track.set_ylabel("score")
    track.set_title(title, fontsize=10)
    frame = letter_matrix(sequence[start:end], scores[start:end])
    frame.index = np.arange(start, end)
    logomaker.Logo(frame, ax=logo_ax, color_scheme="classic", flip_below=False)
    logo_ax.axhline(0, color="black", lw=0.5)
    logo_ax.set_xlabel(f"position (0-based); window {window[0]}-{window[1]}")
    logo_ax.set_ylabel("score")
    fig.tight_layout()
    return _save(fig, plt, path)


def information_content(pfm: np.ndarray, background: float = 0.25) -> np.ndarray:
    """``(W, 4)`` position frequency matrix (rows sum to 1) -> ``(W, 4)`` letter heights in bits."""
    p = np.clip(pfm, 1e-9, 1.0)
    bits = (p * np.log2(p / background)).sum(axis=1, keepdims=True).clip(min=0)  # (W, 1) relative entropy
    return pfm * bits


def plot_motif(matrix: np.ndarray, path: str | Path, title: str, kind: str = "pfm", letters: str = "ACGT") -> Path:
    """A motif logo: ``kind="pfm"`` draws ``(W, 4)`` frequencies in bits, ``"cwm"`` contribution weights as is."""
    require_extra("analysis", "logomaker")
    import logomaker

    plt = _figure_module()
    heights = information_content(matrix) if kind == "pfm" else matrix
    fig, ax = plt.subplots(figsize=(max(3.0, 0.45 * len(matrix) + 1), 2.2))
    logomaker.Logo(pd.DataFrame(heights, columns=list(letters)), ax=ax, color_scheme="classic", flip_below=False)
    ax.set_ylabel("bits" if kind == "pfm" else "contribution")
    ax.set_title(title, fontsize=9)
    if kind == "pfm":
        ax.set_ylim(0, 2)
    fig.tight_layout()
    return _save(fig, plt, path)


def _save(fig, plt, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path

"""In-silico saturation mutagenesis: every position of a region x every other base.

In: a run (see `score_variants`), a `Reference` and a region ``CONTIG:START-END`` (1-based
inclusive). Out: a long table ``chrom, pos, ref, alt, score`` (3 rows per position; positions
whose reference base is N are skipped) and a ``(4, n_positions)`` heatmap (rows A, C, G, T;
the reference base's cell is 0) written as PNG beside ``ism.tsv``. On a contig shorter than the
window, the window is the whole contig (as in `score_variants`; ``window_bp`` column and title).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from biolm.data.io import atomic_path, write_table
from biolm.errors import BiolmError
from biolm.variants.reference import Reference, parse_region
from biolm.variants.scoring import score_variants

if TYPE_CHECKING:
    from biolm.runs import LanguageModelRun, Run

log = logging.getLogger(__name__)

BASES = "ACGT"
MAX_ISM_BP = 10_000


def mutagenesis_variants(reference: Reference, region: str) -> pd.DataFrame:
    """All single-base substitutions of a region: ``chrom, pos, ref, alt`` (3 per ACGT position)."""
    contig, start, end = parse_region(region)
    if end - start > MAX_ISM_BP:
        raise BiolmError(f"region: {end - start:,} bp; saturation mutagenesis is limited to {MAX_ISM_BP:,} bp per call")
    seq = reference.fetch(contig, start, end)
    rows = [(contig, start + i + 1, base, alt) for i, base in enumerate(seq) if base in BASES for alt in BASES if alt != base]
    return pd.DataFrame(rows, columns=["chrom", "pos", "ref", "alt"])


def ism_matrix(scores: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, str]:
    """``(4, n_positions)`` score matrix (rows A, C, G, T), the positions and the reference bases."""
    positions = np.sort(scores["pos"].unique())
    column = {p: j for j, p in enumerate(positions)}
    matrix = np.zeros((4, len(positions)))
    ref_bases = ["N"] * len(positions)
    for pos, ref, alt, value in zip(scores["pos"], scores["ref"], scores["alt"], scores["score"]):
        matrix[BASES.index(alt), column[pos]] = value
        ref_bases[column[pos]] = ref
    return matrix, positions, "".join(ref_bases)


def plot_ism(scores: pd.DataFrame, path: str | Path, title: str) -> None:
    """Heatmap PNG of an ISM table (diverging colours centred on 0), written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    matrix, positions, ref_bases = ism_matrix(scores)
    limit = float(np.nanmax(np.abs(matrix))) or 1.0
    width = min(max(6.0, len(positions) / 12), 40.0)
    fig, ax = plt.subplots(figsize=(width, 2.6))
    image = ax.imshow(matrix, aspect="auto", cmap="RdBu_r", vmin=-limit, vmax=limit, interpolation="nearest")
    ax.set_yticks(range(4), list(BASES))
    step = max(1, len(positions) // 10)
    ax.set_xticks(range(0, len(positions), step), [f"{p:,}" for p in positions[::step]], fontsize=7)
    dotted = len(positions) <= 120  # beyond that the dots would blur the cells
    if dotted:
        for j, base in enumerate(ref_bases):
            ax.text(j, BASES.index(base) if base in BASES else 0, "·", ha="center", va="center", fontsize=8)
    ax.set_xlabel(f"{scores['chrom'].iloc[0]} position" + (" (dots: reference base)" if dotted else " (reference base cells: 0)"))
    ax.set_title(title, fontsize=9)
    fig.colorbar(image, ax=ax, label="score (alt - ref)")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


def in_silico_mutagenesis(
    run: Run | LanguageModelRun | str | Path,
    reference: Reference | str | Path,
    region: str,
    output: str | Path | None = None,
    window_bp: int = 512,
    batch_size: int = 32,
    rc_average: bool = False,
    aliases: dict[str, str] | None = None,
) -> pd.DataFrame:
    """Score every substitution of a region; optionally write ``ism.tsv`` and ``ism.png`` to ``output``.

    Args:
        run: run folder or loaded run (zero-shot or supervised, as in `score_variants`).
        reference: `Reference` or FASTA path.
        region: ``CONTIG:START-END`` (1-based inclusive).
        output: folder for ``ism.tsv`` and ``ism.png`` (None: write nothing).

    Returns:
        ``chrom, pos, ref, alt, score, method, model, window_bp, ...`` (3 rows per position).
    """
    reference = reference if isinstance(reference, Reference) else Reference(reference, aliases)
    variants = mutagenesis_variants(reference, region)
    scores = score_variants(run, variants, reference, window_bp=window_bp, batch_size=batch_size, rc_average=rc_average)
    if output is not None:
        folder = Path(output)
        folder.mkdir(parents=True, exist_ok=True)
        write_table(scores, str(folder / "ism.tsv"))
        used = sorted(set(scores["window_bp"].astype(int)))
        window = f"window {used[0]} bp" if len(used) == 1 else f"window {used[0]}-{used[-1]} bp"
        if used[0] < window_bp:
            window += f" (contig shorter than {window_bp} bp)"
        title = f"{region} | {scores['method'].iloc[0]} | {Path(str(scores['model'].iloc[0])).name} | {window}"
        plot_ism(scores, folder / "ism.png", title)
        log.info("%d substitutions scored; %s and %s written", len(scores), folder / "ism.tsv", folder / "ism.png")
    return scores

"""Plot and table helpers shared by every report: matplotlib figures without pyplot, PNGs written atomically, markdown tables.

`figure` builds a `matplotlib.figure.Figure` with no global state (no pyplot backend, safe in servers and
threads); `save_png` lays it out and writes it at 110 dpi through a temporary file; `markdown_table`
renders rows as GitHub markdown.
"""

from __future__ import annotations

from pathlib import Path

from biolm.atomic import atomic_path


def figure(width: float, height: float, ncols: int = 1):
    """A ``width`` x ``height`` inch figure and its ``(ncols,)`` array of axes, in one row."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    return fig, fig.subplots(1, ncols, squeeze=False)[0]


def save_png(fig, path: str | Path) -> Path:
    """Lay out ``fig`` and write it to ``path`` as a 110 dpi PNG (atomically: a temporary file, then a rename)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)  # Agg: no display needed, independent of pyplot's global backend
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    return Path(path)


def markdown_table(rows: list[tuple[str, ...]], header: tuple[str, ...], numeric: bool = True) -> list[str]:
    """Markdown table lines; the first column left-aligned, the others right-aligned when ``numeric``."""
    rule = ["---"] + ["---:" if numeric else "---"] * (len(header) - 1)
    return ["| " + " | ".join(row) + " |" for row in (header, rule, *rows)]

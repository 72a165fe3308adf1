"""Motifs from attributions: seqlets -> clusters -> motifs, matched against a MEME/JASPAR file.

In: `Attributions` (``biolm interpret``'s folder). Out: `Motifs` (``biolm motifs``'s folder):
``motifs.csv`` (one row per motif, its best known match), ``seqlets.csv``, ``motifs.meme`` (the
motifs' letter-probability matrices, for MEME-suite tools), ``logos/`` and ``report.md``.

A documented simpler method in the spirit of TF-MoDISco (Shrikumar et al. 2018, arXiv:1811.00416);
modisco-lite installs, but it needs ISM-style hypothetical scores for every method and thousands
of seqlets to form patterns, while this works from the per-base scores of any method and from tens
of sequences:

Sequences explained for different targets (a multiclass run attributed with ``target=None``) are
split by target and each group goes through steps 1-4 on its own: a motif holds seqlets of one
explained class only, and is named ``motif_<class>_<k>`` (``motif_<k>`` when there is one target).

1. Seqlets: in each sequence, windows of ``seqlet_bp`` bases whose summed score exceeds a null
   threshold: the ``null_quantile`` quantile of the window sums over the same scores randomly
   permuted within each sequence (seeded; locality destroyed, score distribution kept). This is a
   per-window quantile of a null, not a false-discovery rate: with 0.99, about 1 % of the null's
   windows pass it. The highest windows are taken greedily without overlap, at most
   ``max_per_sequence`` per sequence, and widened by ``flank_bp`` on each side (windows whose flanks
   would cross an end are skipped, and block nothing). Positive scores only: motifs that push the
   explained output up.
2. Similarity: each seqlet as its contribution-weighted one-hot ``(W, 4)`` (with ISM, the full
   hypothetical matrix, as TF-MoDISco aligns), compared by Pearson correlation at every shift up to
   ``max_shift_bp`` and both strands; a pair's similarity is the best of those.
3. Clusters: average-linkage agglomerative clustering (scikit-learn) of ``1 - similarity`` cut at
   ``1 - min_similarity``; clusters of at least ``min_seqlets`` seqlets are motifs.
4. Motif: members aligned to the cluster's medoid at their best shift and strand; the position
   frequency matrix (PFM, with a pseudocount) and TF-MoDISco's contribution-weight matrix (CWM), the
   mean of ``one_hot * contribution`` (the observed letters' scores; with ISM ``one_hot *
   hypothetical``), trimmed to the span whose CWM column magnitude reaches ``trim`` of the maximum.
5. Known motifs: Tomtom p-values of each PFM against every motif of ``motif_db`` (memelite's
   implementation of Gupta et al. 2007, Genome Biology 8:R24; both strands), with Benjamini-Hochberg
   q-values over all pairs (`scipy.stats.false_discovery_control`). memelite warns that p-values are
   unstable with fewer than 25 targets.
"""

from __future__ import annotations

import json
import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import false_discovery_control

from biolm.atomic import atomic_folder, atomic_path
from biolm.errors import BiolmError, require_extra
from biolm.interpret.logos import one_hot
from biolm.interpret.outputs import Attributions, check_output

log = logging.getLogger(__name__)

LETTERS = "ACGT"


@dataclass
class Seqlet:
    """A high-scoring window: sequence ``index`` bases ``[start, end)`` (0-based), summed core score ``score``."""

    index: int
    start: int
    end: int
    score: float


@dataclass
class Motif:
    """A cluster of aligned seqlets.

    Attributes:
        name: ``motif_<k>`` (``motif_<target>_<k>`` with several targets), ranked by seqlet count.
        target: the explained class of its seqlets' sequences.
        pfm: ``(W, 4)`` letter frequencies (A, C, G, T), rows summing to 1.
        cwm: ``(W, 4)`` mean contribution per letter (units of the explained output).
        seqlets: the member seqlets, with the strand (+1 / -1) each was aligned on.
        matches: known motifs by Tomtom p-value (name, p_value, q_value), best first.
    """

    name: str
    target: str
    pfm: np.ndarray
    cwm: np.ndarray
    seqlets: list[tuple[Seqlet, int]]
    matches: list[dict] = field(default_factory=list)

    @property
    def consensus(self) -> str:
        """The most frequent letter per position, lower case where its frequency is under 0.5."""
        return "".join(LETTERS[j] if row[j] >= 0.5 else LETTERS[j].lower() for row, j in zip(self.pfm, self.pfm.argmax(axis=1)))


@dataclass
class Motifs:
    """The motifs of one attribution set, the null threshold of each target's seqlets, and the settings that found them."""

    motifs: list[Motif]
    seqlets: list[Seqlet]
    n_sequences: int
    thresholds: dict[str, float]
    settings: dict


def _window_sums(scores: np.ndarray, width: int) -> np.ndarray:
    return np.convolve(scores, np.ones(width), mode="valid") if len(scores) >= width else np.zeros(0)


def call_seqlets(attributions: Attributions, seqlet_bp: int = 8, flank_bp: int = 3, null_quantile: float = 0.99, max_per_sequence: int = 2,
                 seed: int = 0, indices: list[int] | None = None) -> tuple[list[Seqlet], float]:
    """Seqlets of the sequences ``indices`` (default: all) and their null threshold on window sums (see the module docstring, step 1)."""
    rng = np.random.default_rng(seed)
    indices = list(range(len(attributions))) if indices is None else list(indices)
    null = [_window_sums(rng.permutation(attributions.scores[i].astype(np.float64)), seqlet_bp) for i in indices]
    null = np.concatenate(null or [np.zeros(0)])
    if not len(null):
        raise BiolmError(f"motifs: every sequence is shorter than seqlet_bp={seqlet_bp}")
    threshold = float(max(np.quantile(null, null_quantile), 0.0))
    seqlets = []
    for index in indices:
        scores = attributions.scores[index]
        sums = _window_sums(scores.astype(np.float64), seqlet_bp)
        taken, found = np.zeros(len(scores), dtype=bool), 0
        for start in np.argsort(-sums, kind="stable"):
            if sums[start] <= threshold or found >= max_per_sequence:
                break
            lo, hi = start - flank_bp, start + seqlet_bp + flank_bp
            if lo < 0 or hi > len(scores):
                continue  # a seqlet cut by the sequence's end would not align with the others; it blocks nothing
            if taken[start : start + seqlet_bp].any():
                continue
            taken[start : start + seqlet_bp] = True
            found += 1
            seqlets.append(Seqlet(index, int(lo), int(hi), float(sums[start])))
    return seqlets, threshold


def _seqlet_matrix(attributions: Attributions, seqlet: Seqlet, strand: int = 1, hypothetical: bool = True) -> np.ndarray:
    """``(W, 4)`` matrix of a seqlet, reverse-complemented for strand -1: the hypothetical scores (ISM, when
    ``hypothetical``, for alignment), else the contribution-weighted one-hot (``one_hot * scores``, for the CWM)."""
    one = one_hot(attributions.sequences[seqlet.index][seqlet.start : seqlet.end], LETTERS)
    if attributions.hypothetical is not None:
        matrix = attributions.hypothetical[seqlet.index][seqlet.start : seqlet.end].astype(np.float64)
        matrix = matrix if hypothetical else one * matrix
    else:
        matrix = one * attributions.scores[seqlet.index][seqlet.start : seqlet.end].astype(np.float64)[:, None]
    return matrix if strand == 1 else matrix[::-1, ::-1]  # reversing A,C,G,T columns complements them


def _alignments(matrices: np.ndarray, max_shift: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Best Pearson correlation, shift and strand of every pair of ``(n, W, 4)`` matrices."""
    n, width, _ = matrices.shape
    best = np.full((n, n), -1.0)
    best_shift = np.zeros((n, n), dtype=int)
    best_strand = np.ones((n, n), dtype=int)
    for strand in (1, -1):
        other = matrices if strand == 1 else matrices[:, ::-1, ::-1]
        for shift in range(-max_shift, max_shift + 1):
            a = matrices[:, max(0, shift) : width + min(0, shift)].reshape(n, -1)  # (n, overlap * 4)
            b = other[:, max(0, -shift) : width + min(0, -shift)].reshape(n, -1)
            a = a - a.mean(axis=1, keepdims=True)
            b = b - b.mean(axis=1, keepdims=True)
            norm = np.linalg.norm(a, axis=1)[:, None] * np.linalg.norm(b, axis=1)[None, :]
            corr = np.divide(a @ b.T, norm, out=np.zeros((n, n)), where=norm > 0)
            better = corr > best
            best[better], best_shift[better], best_strand[better] = corr[better], shift, strand
    return best, best_shift, best_strand


def _build_motif(name: str, target: str, attributions: Attributions, members: list[int], seqlets: list[Seqlet], similarity, shifts, strands,
                 trim: float) -> Motif:
    """Align ``members`` on their medoid and build the PFM and CWM (see the module docstring, step 4)."""
    block = similarity[np.ix_(members, members)]
    medoid = members[int(block.mean(axis=1).argmax())]
    width = seqlets[medoid].end - seqlets[medoid].start
    counts, contributions, aligned = np.full((width, 4), 0.1), np.zeros((width, 4)), []  # pseudocount 0.1 per letter
    cover = np.zeros(width)
    for m in members:
        shift, strand = (0, 1) if m == medoid else (int(shifts[medoid, m]), int(strands[medoid, m]))
        seqlet = seqlets[m]
        sequence = attributions.sequences[seqlet.index][seqlet.start : seqlet.end]
        letters = one_hot(sequence, LETTERS) if strand == 1 else one_hot(sequence, LETTERS)[::-1, ::-1]
        weights = _seqlet_matrix(attributions, seqlet, strand, hypothetical=False)
        # medoid position p lines up with member position p - shift
        for p in range(max(0, shift), width + min(0, shift)):
            counts[p] += letters[p - shift]
            contributions[p] += weights[p - shift]
            cover[p] += 1
        aligned.append((seqlet, strand))
    pfm = counts / counts.sum(axis=1, keepdims=True)
    cwm = contributions / np.maximum(cover, 1)[:, None]
    magnitude = np.abs(cwm).sum(axis=1)
    keep = np.flatnonzero(magnitude >= trim * magnitude.max()) if magnitude.max() > 0 else np.arange(width)
    lo, hi = int(keep.min()), int(keep.max()) + 1
    return Motif(name, target, pfm[lo:hi], cwm[lo:hi], aligned)


def _check_settings(seqlet_bp, flank_bp, null_quantile, max_per_sequence, max_shift_bp, min_similarity, min_seqlets, max_seqlets, trim) -> None:
    """One line naming every out-of-range setting (before any work)."""
    rules = [
        (0 < null_quantile < 1, f"null_quantile={null_quantile} (0 < null_quantile < 1)"),
        (0 <= min_similarity <= 1, f"min_similarity={min_similarity} (0 <= min_similarity <= 1)"),
        (seqlet_bp >= 2, f"seqlet_bp={seqlet_bp} (at least 2)"),
        (flank_bp >= 0, f"flank_bp={flank_bp} (0 or more)"),
        (max_per_sequence >= 1, f"max_per_sequence={max_per_sequence} (at least 1)"),
        (min_seqlets >= 2, f"min_seqlets={min_seqlets} (at least 2)"),
        (max_seqlets >= min_seqlets, f"max_seqlets={max_seqlets} (at least min_seqlets={min_seqlets})"),
        (0 <= max_shift_bp < seqlet_bp, f"max_shift_bp={max_shift_bp} (0 <= max_shift_bp < seqlet_bp)"),
        (0 <= trim <= 1, f"trim={trim} (0 <= trim <= 1)"),
    ]
    bad = [text for ok, text in rules if not ok]
    if bad:
        raise BiolmError(f"motifs: out of range: {'; '.join(bad)}")


def find_motifs(
    attributions: Attributions,
    seqlet_bp: int = 8,
    flank_bp: int = 3,
    null_quantile: float = 0.99,
    max_per_sequence: int = 2,
    max_shift_bp: int = 3,
    min_similarity: float = 0.5,
    min_seqlets: int = 5,
    max_seqlets: int = 2000,
    trim: float = 0.25,
    seed: int = 0,
) -> Motifs:
    """Seqlets -> clusters -> motifs, separately for each explained target (see the module docstring).

    Args:
        attributions: per-base scores of DNA sequences (``biolm interpret``).
        seqlet_bp: core width of a seqlet in bases.
        flank_bp: bases added on each side of the core.
        null_quantile: the seqlet threshold is this quantile of the permuted window sums (per window; not an FDR).
        max_per_sequence: seqlets taken per sequence at most.
        max_shift_bp: largest shift tried when aligning two seqlets.
        min_similarity: clusters are cut where the average correlation falls under this.
        min_seqlets: smallest cluster reported as a motif.
        max_seqlets: keep this many highest-scoring seqlets per target (the pairwise step is quadratic).
        trim: motif edges whose CWM magnitude is under this share of the maximum are cut (0 to 1).
        seed: seeds the null permutation.

    Returns:
        `Motifs`, ranked by target, then seqlet count.

    Raises:
        BiolmError: the attributions are not of DNA (A, C, G, T), or a parameter is out of range.
    """
    if attributions.letters != LETTERS:
        raise BiolmError(f"motifs: attributions over {attributions.letters!r}; motifs are found in DNA (A, C, G, T) attributions")
    _check_settings(seqlet_bp, flank_bp, null_quantile, max_per_sequence, max_shift_bp, min_similarity, min_seqlets, max_seqlets, trim)
    settings = {"seqlet_bp": seqlet_bp, "flank_bp": flank_bp, "null_quantile": null_quantile, "max_per_sequence": max_per_sequence,
                "max_shift_bp": max_shift_bp, "min_similarity": min_similarity, "min_seqlets": min_seqlets, "trim": trim, "seed": seed,
                "method": attributions.method}
    targets = list(dict.fromkeys(attributions.target))
    motifs, seqlets, thresholds = [], [], {}
    for target in targets:
        indices = [i for i, t in enumerate(attributions.target) if t == target]
        found, threshold = call_seqlets(attributions, seqlet_bp, flank_bp, null_quantile, max_per_sequence, seed, indices)
        found = sorted(found, key=lambda s: -s.score)[:max_seqlets]
        thresholds[target], seqlets = threshold, seqlets + found
        safe = "".join(c if c.isalnum() or c in "-." else "_" for c in target)  # the name is also a file name
        prefix = "motif_" if len(targets) == 1 else f"motif_{safe}_"
        motifs += _cluster(attributions, found, target, prefix, max_shift_bp, min_similarity, min_seqlets, trim, threshold)
    return Motifs(motifs, seqlets, len(attributions), thresholds, settings)


def _cluster(attributions: Attributions, seqlets: list[Seqlet], target: str, prefix: str, max_shift_bp: int, min_similarity: float,
             min_seqlets: int, trim: float, threshold: float) -> list[Motif]:
    """Steps 2-4 of the module docstring on the seqlets of one target."""
    if len(seqlets) < min_seqlets:
        log.warning("motifs (%s): %d seqlets above the threshold %.4g, fewer than min_seqlets=%d; no motifs", target, len(seqlets), threshold, min_seqlets)
        return []
    from sklearn.cluster import AgglomerativeClustering

    matrices = np.stack([_seqlet_matrix(attributions, s) for s in seqlets])  # (n, W, 4)
    similarity, shifts, strands = _alignments(matrices, max_shift_bp)
    np.fill_diagonal(similarity, 1.0)
    distance = 1.0 - np.maximum(similarity, similarity.T)
    clusters = AgglomerativeClustering(n_clusters=None, metric="precomputed", linkage="average",
                                       distance_threshold=1.0 - min_similarity).fit_predict(distance)
    groups = sorted((np.flatnonzero(clusters == c).tolist() for c in np.unique(clusters)), key=len, reverse=True)
    return [
        _build_motif(f"{prefix}{k + 1}", target, attributions, members, seqlets, similarity, shifts, strands, trim)
        for k, members in enumerate(g for g in groups if len(g) >= min_seqlets)
    ]


def match_known(motifs: Motifs, motif_db: str | Path, top: int = 3) -> None:
    """Fill each motif's ``matches`` with its ``top`` Tomtom matches in the MEME file ``motif_db`` (both strands).

    Raises:
        BiolmError: the file is missing or holds no motifs in MEME format.
    """
    require_extra("analysis", "memelite")
    from memelite import tomtom
    from memelite.io import read_meme

    path = Path(motif_db)
    try:
        known = read_meme(str(path))
    except (OSError, ValueError, IndexError, AttributeError, KeyError) as err:  # a malformed line surfaces as any of these
        raise BiolmError(f"motif_db={path}: not a readable MEME motif file ({type(err).__name__}: {err})") from None
    if not known:
        raise BiolmError(f"motif_db={path}: no MOTIF entries (accepted: MEME format, e.g. JASPAR's 'MEME' download)")
    if not motifs.motifs:
        return
    names = list(known)
    targets = [np.asarray(known[n], dtype=np.float64) for n in names]  # each (4, W)
    queries = [m.pfm.T.astype(np.float64) for m in motifs.motifs]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the few-targets warning is stated in the report instead
        p_values = np.asarray(tomtom(queries, targets)[0], dtype=np.float64)  # (n_motifs, n_known)
    q_values = false_discovery_control(p_values.ravel(), method="bh").reshape(p_values.shape)
    for motif, p_row, q_row in zip(motifs.motifs, p_values, q_values):
        order = np.argsort(p_row, kind="stable")[:top]
        motif.matches = [{"name": names[j], "p_value": float(p_row[j]), "q_value": float(q_row[j])} for j in order]
    motifs.settings.update({"motif_db": str(path), "n_known": len(names)})


def motif_table(motifs: Motifs) -> pd.DataFrame:
    """One row per motif: seqlets, sequences holding it, width, consensus, mean seqlet score and the best known match."""
    rows = []
    for m in motifs.motifs:
        best = m.matches[0] if m.matches else {}
        rows.append({
            "motif": m.name,
            "target": m.target,
            "n_seqlets": len(m.seqlets),
            "n_sequences": len({s.index for s, _ in m.seqlets}),
            "share_of_sequences": len({s.index for s, _ in m.seqlets}) / max(motifs.n_sequences, 1),
            "width": len(m.pfm),
            "consensus": m.consensus,
            "mean_seqlet_score": float(np.mean([s.score for s, _ in m.seqlets])),
            "best_match": best.get("name", ""),
            "match_p_value": best.get("p_value", np.nan),
            "match_q_value": best.get("q_value", np.nan),
        })
    columns = ["motif", "target", "n_seqlets", "n_sequences", "share_of_sequences", "width", "consensus", "mean_seqlet_score", "best_match",
               "match_p_value", "match_q_value"]
    return pd.DataFrame(rows, columns=columns)


def write_motifs(motifs: Motifs, attributions: Attributions, folder: str | Path) -> Path:
    """Write motifs.csv, seqlets.csv, motifs.meme, logos/ and report.md into ``folder`` (see the module docstring).

    The folder is written beside it and swapped into place (an earlier run's files, logos too, are replaced).

    Raises:
        BiolmError: ``folder`` holds files not written by biolm motifs.
    """
    folder = Path(folder)
    check_output(folder, "motifs.csv", "motifs")
    with atomic_folder(folder) as stage:
        _write_motifs(motifs, attributions, stage)
    return folder


def _write_motifs(motifs: Motifs, attributions: Attributions, folder: Path) -> None:
    """The files of `write_motifs`, into the staging ``folder``."""
    from biolm.interpret.logos import plot_motif

    table = motif_table(motifs)
    with atomic_path(folder / "motifs.csv") as tmp:
        table.to_csv(tmp, index=False)
    member = {(s.index, s.start): (m.name, strand) for m in motifs.motifs for s, strand in m.seqlets}
    seqlet_rows = [{"id": attributions.ids[s.index], "start": s.start, "end": s.end, "score": s.score,
                    "sequence": attributions.sequences[s.index][s.start : s.end], "motif": member.get((s.index, s.start), ("", 0))[0],
                    "strand": "+" if member.get((s.index, s.start), ("", 1))[1] == 1 else "-"} for s in motifs.seqlets]
    with atomic_path(folder / "seqlets.csv") as tmp:
        pd.DataFrame(seqlet_rows, columns=["id", "start", "end", "score", "sequence", "motif", "strand"]).to_csv(tmp, index=False)
    meme = ["MEME version 4", "", "ALPHABET= ACGT", "", "strands: + -", "", "Background letter frequencies", "A 0.25 C 0.25 G 0.25 T 0.25", ""]
    for m in motifs.motifs:
        meme += [f"MOTIF {m.name} {m.consensus}", f"letter-probability matrix: alength= 4 w= {len(m.pfm)} nsites= {len(m.seqlets)} E= 0"]
        meme += [" ".join(f"{v:.6f}" for v in row) for row in m.pfm] + [""]
    with atomic_path(folder / "motifs.meme") as tmp:
        tmp.write_text("\n".join(meme) + "\n")
    lines = [f"# Motifs from {attributions.method} attributions", "",
             f"- {motifs.n_sequences} sequences, {len(motifs.seqlets)} seqlets above the null threshold"
             f" ({', '.join(f'{t}: {v:.4g}' for t, v in motifs.thresholds.items())}; summed score of a {motifs.settings['seqlet_bp']} bp window,"
             f" the {motifs.settings['null_quantile']} quantile of window sums over permuted scores: a per-window null quantile, not an FDR)",
             f"- {len(motifs.motifs)} motifs of at least {motifs.settings['min_seqlets']} seqlets; settings: {json.dumps(motifs.settings)}"]
    if motifs.settings.get("motif_db"):
        few = motifs.settings["n_known"] < 25
        lines.append(f"- known motifs: Tomtom against {motifs.settings['n_known']} motifs of {motifs.settings['motif_db']}"
                     + (" (fewer than 25 targets: p-values are unstable)" if few else ""))
    lines += ["", "| motif | target | seqlets | sequences | consensus | best match | p | q | PFM (bits) | CWM |", "|---|---|---:|---:|---|---|---:|---:|---|---|"]
    for m, row in zip(motifs.motifs, table.itertuples(index=False)):
        pfm_png = plot_motif(m.pfm, folder / "logos" / f"{m.name}.pfm.png", f"{m.name} ({row.n_seqlets} seqlets) {m.consensus}")
        cwm_png = plot_motif(m.cwm, folder / "logos" / f"{m.name}.cwm.png", f"{m.name} contribution", kind="cwm")
        p = "" if np.isnan(row.match_p_value) else f"{row.match_p_value:.2g}"
        q = "" if np.isnan(row.match_q_value) else f"{row.match_q_value:.2g}"
        lines.append(f"| {m.name} | {m.target} | {row.n_seqlets} | {row.n_sequences} | `{m.consensus}` | {row.best_match} | {p} | {q} "
                     f"| ![pfm](logos/{pfm_png.name}) | ![cwm](logos/{cwm_png.name}) |")
    with atomic_path(folder / "report.md") as tmp:
        tmp.write_text("\n".join(lines) + "\n")

"""Marker filters, imputation and encodings, fitted on a training fold only.

`MarkerPreprocessor.fit(train_dosages)` chooses the markers (minor-allele frequency, missing rate,
constant within the fold) and learns the imputation values and optional standardisation from the
training lines alone; `transform` applies those to any lines, so held-out lines never leak into
the statistics.

In: float32 `(n_lines, n_markers)` dosages 0..`dosage_max` with NaN for missing.
Out: float32 `(n_lines, kept_markers, channels)`: channels 1 (``additive``: the dosage, missing ->
training mean) or `dosage_max + 1` (``onehot``: genotype classes, missing -> the training class
frequencies).
"""

from __future__ import annotations

import numpy as np

from biolm.errors import BiolmError

ENCODINGS = ("additive", "onehot")


class MarkerPreprocessor:
    """Filters + imputation + encoding (+ standardisation), with statistics from the training fold.

    Args:
        encoding: ``additive`` or ``onehot``.
        standardize: scale every encoded column to mean 0, sd 1 on the training fold.
        maf_min: drop markers whose minor-allele frequency (training fold) is below this.
        missing_max: drop markers missing in more than this share of the training lines.
        dosage_max: 2 for diploid dosages, 1 for presence/absence (DArT) markers.
    """

    def __init__(self, encoding: str = "additive", standardize: bool = False, maf_min: float = 0.0, missing_max: float = 1.0, dosage_max: int = 2):
        if encoding not in ENCODINGS:
            raise BiolmError(f"encoding: {encoding!r} is not known (accepted: {', '.join(ENCODINGS)})")
        self.encoding = encoding
        self.standardize = bool(standardize)
        self.maf_min = float(maf_min)
        self.missing_max = float(missing_max)
        self.dosage_max = int(dosage_max)

    @property
    def channels(self) -> int:
        """Values per marker after encoding."""
        return 1 if self.encoding == "additive" else self.dosage_max + 1

    def fit(self, dosages: np.ndarray) -> MarkerPreprocessor:
        """Learn the kept markers, imputation values and scaling from training-fold dosages."""
        observed = ~np.isnan(dosages)
        missing_rate = 1.0 - observed.mean(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            means = np.nanmean(np.where(observed, dosages, np.nan), axis=0)
            spread = np.nanmax(dosages, axis=0) - np.nanmin(dosages, axis=0)
        freq = means / self.dosage_max
        maf = np.minimum(freq, 1.0 - freq)
        keep = (missing_rate <= self.missing_max) & (maf >= self.maf_min) & (spread > 0)
        if not keep.any():
            raise BiolmError(
                f"data.filters: no marker passes maf_min={self.maf_min}, missing_max={self.missing_max} "
                "and variation on the training lines; relax the filters"
            )
        self.keep = np.flatnonzero(keep)
        self.means = means[self.keep].astype(np.float32)
        if self.encoding == "onehot":
            kept = dosages[:, self.keep]
            counts = np.stack([(kept == k).sum(axis=0) for k in range(self.dosage_max + 1)], axis=1)
            self.class_freqs = (counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)).astype(np.float32)
        else:
            self.class_freqs = np.zeros((len(self.keep), 0), dtype=np.float32)
        self.center = np.zeros((len(self.keep), self.channels), dtype=np.float32)
        self.scale = np.ones((len(self.keep), self.channels), dtype=np.float32)
        if self.standardize:
            encoded = self._encode(dosages)
            self.center = encoded.mean(axis=0)
            sd = encoded.std(axis=0)
            self.scale = np.where(sd > 0, sd, 1.0).astype(np.float32)
        return self

    def _encode(self, dosages: np.ndarray) -> np.ndarray:
        kept = dosages[:, self.keep]  # (n, K)
        missing = np.isnan(kept)
        if self.encoding == "additive":
            return np.where(missing, self.means, kept)[..., None].astype(np.float32)  # (n, K, 1)
        classes = np.arange(self.dosage_max + 1, dtype=np.float32)
        onehot = (kept[..., None] == classes).astype(np.float32)  # (n, K, C)
        return np.where(missing[..., None], self.class_freqs[None], onehot)

    def transform(self, dosages: np.ndarray) -> np.ndarray:
        """(n, M) dosages -> (n, K, channels) encoded, imputed (and standardised) markers."""
        if not hasattr(self, "keep"):
            raise RuntimeError("MarkerPreprocessor.transform before fit")
        return ((self._encode(dosages) - self.center) / self.scale).astype(np.float32)

    def state(self) -> dict[str, np.ndarray]:
        """Arrays to save with a fitted model (safetensors-friendly)."""
        return {
            "keep": self.keep.astype(np.int64),
            "means": self.means,
            "class_freqs": self.class_freqs,
            "center": self.center,
            "scale": self.scale,
        }

    def load_state(self, state: dict[str, np.ndarray]) -> MarkerPreprocessor:
        """Restore `state()` output."""
        self.keep = np.asarray(state["keep"], dtype=np.int64)
        for name in ("means", "class_freqs", "center", "scale"):
            setattr(self, name, np.asarray(state[name], dtype=np.float32))
        return self


def allele_frequencies(dosages: np.ndarray, dosage_max: int) -> np.ndarray:
    """Per-marker frequency of the counted allele, (n, M) -> (M,)."""
    return np.nanmean(dosages, axis=0) / dosage_max


def vanraden_kernel(dosages_a: np.ndarray, dosages_b: np.ndarray, freq: np.ndarray, dosage_max: int = 2) -> np.ndarray:
    """VanRaden (2008) genomic relationship G = Z_a Z_bᵀ / (m Σ p(1-p)), Z = X - m p (no missing values)."""
    za = dosages_a - dosage_max * freq
    zb = dosages_b - dosage_max * freq
    denominator = dosage_max * float(np.sum(freq * (1.0 - freq)))
    return za @ zb.T / denominator

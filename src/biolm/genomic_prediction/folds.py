"""Repeated k-fold cross-validation splits, shared by every model and trait of a run.

In: the line ids of the data set, `folds` (k), `repeats` and `seed`. Repeat r shuffles with
``KFold(k, shuffle=True, random_state=seed + r)``. Out: a table with one row per line and
repeat (`id`, `repeat`, `fold`, `random_state`) — written to ``folds.csv`` so that a run can be
reproduced or compared fold by fold — and the `(repeat, fold, train_rows, test_rows)` splits.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.model_selection import KFold

from biolm.errors import BiolmError


@dataclass(frozen=True)
class Split:
    """One outer fold: positional row indices of the training and held-out lines."""

    repeat: int
    fold: int
    train: np.ndarray
    test: np.ndarray

    @property
    def inner_seed(self) -> int:
        """Seed of everything chosen inside this training fold (inner CV, validation split, init)."""
        return 1000 * self.repeat + self.fold


def make_folds(ids: list[str], folds: int, repeats: int, seed: int) -> pd.DataFrame:
    """Fold assignment of every line in every repeat (`id`, `repeat`, `fold`, `random_state`)."""
    if folds < 2 or repeats < 1:
        raise BiolmError(f"cv.folds={folds}, cv.repeats={repeats}: accepted folds >= 2 and repeats >= 1")
    if len(ids) < 2 * folds:
        raise BiolmError(f"cv.folds={folds}: only {len(ids)} phenotyped lines; need at least {2 * folds}")
    frames = []
    for repeat in range(repeats):
        assignment = np.empty(len(ids), dtype=int)
        state = seed + repeat
        for fold, (_, test) in enumerate(KFold(folds, shuffle=True, random_state=state).split(ids)):
            assignment[test] = fold
        frames.append(pd.DataFrame({"id": ids, "repeat": repeat, "fold": assignment, "random_state": state}))
    return pd.concat(frames, ignore_index=True)


def iter_splits(table: pd.DataFrame, ids: list[str], repeats: int | None = None) -> Iterator[Split]:
    """Splits of a fold table for lines ``ids`` (rows in that order), the first ``repeats`` repeats."""
    position = {line: i for i, line in enumerate(ids)}
    for repeat, block in table.groupby("repeat", sort=True):
        if repeats is not None and repeat >= repeats:
            break
        rows = block["id"].map(position).to_numpy()
        for fold in sorted(block["fold"].unique()):
            test = np.sort(rows[block["fold"].to_numpy() == fold])
            train = np.sort(rows[block["fold"].to_numpy() != fold])
            yield Split(int(repeat), int(fold), train, test)

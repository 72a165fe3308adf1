"""Pearson r of a fold with constant phenotypes or constant predictions is undefined: NaN with a
warning naming the fold, left out of the mean over folds, and "n/a" in the report table."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from biolm.genomic_prediction.cv import pearson
from biolm.genomic_prediction.report import summarize, wide_table


@pytest.mark.parametrize(
    "prediction, observed, why",
    [
        ([1.0, 2.0, 3.0], [5.0, 5.0, 5.0], "the observed phenotypes are constant"),
        ([2.0, 2.0, 2.0], [1.0, 3.0, 2.0], "the predictions are constant"),
        ([2.0], [1.0], "1 held-out line(s)"),
    ],
)
def test_undefined_r_is_nan_with_a_named_warning(prediction, observed, why, caplog):
    caplog.set_level(logging.WARNING)
    assert np.isnan(pearson(np.array(prediction), np.array(observed), "height rrblup repeat 0 fold 2"))
    assert f"height rrblup repeat 0 fold 2: Pearson r undefined, {why}" in caplog.text


def test_defined_r_matches_scipy():
    rng = np.random.default_rng(0)
    observed = rng.normal(size=20)
    prediction = observed + rng.normal(size=20)
    assert pearson(prediction, observed) == pytest.approx(stats.pearsonr(prediction, observed)[0])


def test_summary_leaves_undefined_folds_out():
    results = pd.DataFrame(
        {"trait": ["t"] * 4 + ["flat"] * 2, "model": ["m"] * 6, "repeat": [0, 0, 1, 1, 0, 0], "fold": [0, 1, 0, 1, 0, 1],
         "pearson_r": [0.5, np.nan, 0.7, 0.6, np.nan, np.nan], "mse": [1.0] * 6, "fit_s": [0.1] * 6}
    )
    summary = summarize(results).set_index("trait")
    assert summary.at["t", "r_mean"] == pytest.approx(0.6) and summary.at["t", "folds_r_undefined"] == 1
    assert np.isnan(summary.at["flat", "r_mean"]) and summary.at["flat", "folds_r_undefined"] == 2
    table = wide_table(summary.reset_index())
    assert "0.600 ± 0.100" in table and "n/a ± n/a" in table

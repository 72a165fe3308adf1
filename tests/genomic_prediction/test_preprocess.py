"""Filters, imputation and encodings use training-fold statistics only."""

from __future__ import annotations

import numpy as np
import pytest

from biolm.errors import BiolmError
from biolm.genomic_prediction.preprocess import MarkerPreprocessor

NAN = np.nan


def test_imputation_uses_training_statistics_only():
    train = np.array([[0, 2], [2, NAN], [2, 0], [NAN, 1]], dtype=np.float32)
    test = np.array([[NAN, NAN], [0, 2]], dtype=np.float32)
    pre = MarkerPreprocessor("additive").fit(train)
    encoded = pre.transform(test)[:, :, 0]
    np.testing.assert_allclose(encoded[0], [4 / 3, 1.0])  # training means, not the test lines'
    np.testing.assert_allclose(encoded[1], [0, 2])
    # Changing held-out lines changes nothing that was learned.
    other = MarkerPreprocessor("additive").fit(train)
    other.transform(np.full((5, 2), 2, dtype=np.float32))
    np.testing.assert_allclose(pre.means, other.means)


def test_standardisation_is_fitted_on_the_training_fold():
    train = np.array([[0], [1], [2], [1]], dtype=np.float32)
    pre = MarkerPreprocessor("additive", standardize=True).fit(train)
    out = pre.transform(np.array([[2], [0]], dtype=np.float32))[:, 0, 0]
    np.testing.assert_allclose(out, (np.array([2, 0]) - 1.0) / np.std([0, 1, 2, 1]), rtol=1e-6)


def test_onehot_imputes_training_class_frequencies():
    train = np.array([[0], [0], [1], [2]], dtype=np.float32)
    pre = MarkerPreprocessor("onehot").fit(train)
    out = pre.transform(np.array([[1], [NAN]], dtype=np.float32))
    assert out.shape == (2, 1, 3)
    np.testing.assert_allclose(out[0, 0], [0, 1, 0])
    np.testing.assert_allclose(out[1, 0], [0.5, 0.25, 0.25])


def test_filters_maf_missingness_and_in_fold_constant_markers():
    train = np.array(
        [[0, 0, 1, 0], [0, 1, NAN, 1], [0, 1, NAN, 2], [0, 2, NAN, 1], [0, 1, 1, 0], [0, 1, 0, 1], [0, 1, 1, 1], [0, 1, 1, 2], [0, 1, 1, 1], [0, 1, 1, 0]],
        dtype=np.float32,
    )
    # marker 0 constant in the fold, marker 1 MAF 0.5, marker 2 30% missing, marker 3 common
    pre = MarkerPreprocessor(maf_min=0.05, missing_max=0.2).fit(train)
    np.testing.assert_array_equal(pre.keep, [1, 3])
    with pytest.raises(BiolmError, match="no marker passes"):
        MarkerPreprocessor(maf_min=0.6).fit(train)


def test_presence_absence_frequency_uses_dosage_max_one():
    train = np.array([[0], [0], [0], [1]], dtype=np.float32)  # frequency 0.25 of the 1 state
    assert len(MarkerPreprocessor(maf_min=0.2, dosage_max=1).fit(train).keep) == 1
    with pytest.raises(BiolmError):  # read as frequency 0.125 if diploid
        MarkerPreprocessor(maf_min=0.2, dosage_max=2).fit(train)

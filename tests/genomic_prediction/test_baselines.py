"""Classic baselines against scikit-learn and hand-computed answers."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.kernel_ridge import KernelRidge
from sklearn.linear_model import Ridge

from biolm.genomic_prediction.baselines import (
    GBLUP,
    RKHS,
    RRBLUP,
    inner_cv_mse,
    reml_delta,
)
from biolm.genomic_prediction.preprocess import vanraden_kernel


@pytest.fixture
def toy():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 3, size=(60, 40)).astype(np.float64)
    y = x[:, :5] @ rng.normal(size=5) + rng.normal(scale=0.5, size=60)
    return x[:, :, None], y  # (n, markers, 1) additive encoding


def test_rrblup_equals_sklearn_ridge_at_a_fixed_penalty(toy):
    x, y = toy
    ours = RRBLUP(fixed_lambda=3.7).fit(x[:45], y[:45])
    ref = Ridge(alpha=3.7, fit_intercept=True).fit(x[:45, :, 0], y[:45])
    np.testing.assert_allclose(ours.coef, ref.coef_, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(ours.predict(x[45:]), ref.predict(x[45:, :, 0]), rtol=1e-8)


def test_rrblup_kernel_form_cv_equals_marker_ridge_per_penalty(toy):
    # The inner CV scores penalties in kernel form; each must equal an explicit marker ridge.
    x, y = toy
    z = x[:, :, 0]
    centred = z - z.mean(0)
    lambdas = np.array([0.5, 5.0, 50.0])
    ours = inner_cv_mse(centred @ centred.T, y, lambdas, folds=3, seed=1)
    from sklearn.model_selection import KFold

    ref = np.zeros(3)
    for train, val in KFold(3, shuffle=True, random_state=1).split(y):
        for k, lam in enumerate(lambdas):
            # markers centred once on the whole training fold, intercept = inner-training mean
            mean = y[train].mean()
            pred = Ridge(alpha=lam, fit_intercept=False).fit(centred[train], y[train] - mean).predict(centred[val]) + mean
            ref[k] += ((pred - y[val]) ** 2).sum()
    np.testing.assert_allclose(ours, ref / len(y), rtol=1e-7)


def test_vanraden_kernel_matches_a_hand_computed_g():
    x = np.array([[0, 1, 2], [2, 1, 0], [1, 1, 1]], dtype=float)
    p = x.mean(0) / 2  # [0.5, 0.5, 0.5]
    # Z = X - 2p = [[-1,0,1],[1,0,-1],[0,0,0]]; 2 sum p(1-p) = 1.5
    expected = np.array([[2, -2, 0], [-2, 2, 0], [0, 0, 0]]) / 1.5
    np.testing.assert_allclose(vanraden_kernel(x, x, p), expected)
    np.testing.assert_allclose(GBLUP(fixed_lambda=1.0).fit(x[:, :, None], np.array([1.0, 0.0, 2.0])).kernel(x, x), expected)


def test_gblup_equals_kernel_ridge_on_g(toy):
    x, y = toy
    model = GBLUP(penalty="cv", fixed_lambda=0.8).fit(x[:45], y[:45])
    p = x[:45, :, 0].mean(0) / 2
    g_train = vanraden_kernel(x[:45, :, 0], x[:45, :, 0], p)
    g_test = vanraden_kernel(x[45:, :, 0], x[:45, :, 0], p)
    ref = KernelRidge(alpha=0.8, kernel="precomputed").fit(g_train, y[:45] - y[:45].mean())
    np.testing.assert_allclose(model.predict(x[45:]), ref.predict(g_test) + y[:45].mean(), rtol=1e-8)


def test_reml_maximises_the_restricted_likelihood(toy):
    x, y = toy
    p = x[:, :, 0].mean(0) / 2
    g = vanraden_kernel(x[:, :, 0], x[:, :, 0], p)
    delta = reml_delta(g, y)
    n = len(y)

    def restricted_loglik(d):
        h = g + d * np.eye(n)
        hinv = np.linalg.inv(h)
        ones = np.ones(n)
        mu = ones @ hinv @ y / (ones @ hinv @ ones)
        r = y - mu
        sigma2 = r @ hinv @ r / (n - 1)
        return -0.5 * ((n - 1) * np.log(sigma2) + np.linalg.slogdet(h)[1] + np.log(ones @ hinv @ ones))

    grid = np.exp(np.linspace(np.log(delta) - 1, np.log(delta) + 1, 21))
    assert restricted_loglik(delta) >= max(restricted_loglik(d) for d in grid) - 1e-6


def test_rkhs_equals_sklearn_rbf_kernel_ridge(toy):
    x, y = toy
    model = RKHS(bandwidths=(0.7,), fixed_lambda=0.3).fit(x[:45], y[:45])
    z = x[:45, :, 0]
    d2 = ((z[:, None] - z[None]) ** 2).sum(-1)
    gamma = 0.7 / np.median(d2[np.triu_indices(45, 1)])
    ref = KernelRidge(alpha=0.3, kernel="rbf", gamma=gamma).fit(z, y[:45] - y[:45].mean())
    np.testing.assert_allclose(model.predict(x[45:]), ref.predict(x[45:, :, 0]) + y[:45].mean(), rtol=1e-7)


def test_state_round_trip_gives_the_same_predictions(toy):
    x, y = toy
    for model, fresh in ((RRBLUP(), RRBLUP()), (GBLUP(), GBLUP()), (RKHS(bandwidths=(1.0,)), RKHS())):
        model.fit(x[:45], y[:45], seed=3)
        np.testing.assert_allclose(fresh.load_state(model.state()).predict(x[45:]), model.predict(x[45:]))

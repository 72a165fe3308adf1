"""Classic genomic-prediction baselines: RR-BLUP, GBLUP, RKHS (Gaussian kernel) and pedigree BLUP.

Every estimator takes encoded markers `(n_lines, K, C)` (flattened to `(n_lines, K*C)`) and a
phenotype `(n_lines,)`, fits an unpenalised intercept (the training mean) plus a penalised
kernel/marker part, and predicts `(n_lines,)`. Penalties (and the RKHS bandwidth) are chosen on
the training fold only: by inner k-fold CV over a log grid (lambda = 10^a * mean diag K), or by
REML (GBLUP, the classical variance-component route).

- `RRBLUP`: marker ridge, y = mu + Z b + e, Z = markers centred with training means (scikit-learn
  `Ridge` for the final fit). - `GBLUP`: VanRaden G kernel ridge (`KernelRidge`, precomputed).
- `RKHS`: K = exp(-h d² / median d²) on training-scaled markers. - `PedigreeBLUP`: kernel = A.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import null_space
from scipy.optimize import minimize_scalar
from sklearn.kernel_ridge import KernelRidge
from sklearn.linear_model import Ridge
from sklearn.model_selection import KFold

from biolm.errors import BiolmError


def _flat(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=np.float64).reshape(len(x), -1)  # (n, K*C)


def lambda_grid(kernel: np.ndarray, log10_range: tuple[float, float, int]) -> np.ndarray:
    """Penalties 10^a * tr(K)/n for a in linspace(low, high, num)."""
    low, high, num = log10_range
    return np.logspace(float(low), float(high), int(num)) * float(np.trace(kernel)) / len(kernel)


def inner_cv_mse(kernel: np.ndarray, y: np.ndarray, lambdas: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """Pooled inner-CV MSE of kernel ridge for every penalty, `(L,)`, via one eigendecomposition per fold."""
    errors = np.zeros(len(lambdas))
    for train, val in KFold(folds, shuffle=True, random_state=seed).split(y):
        mean = y[train].mean()
        eigvals, eigvecs = np.linalg.eigh(kernel[np.ix_(train, train)])
        projected = eigvecs.T @ (y[train] - mean)  # (n_train,)
        alphas = eigvecs @ (projected[:, None] / (np.maximum(eigvals, 0)[:, None] + lambdas[None, :]))  # (n_train, L)
        predictions = kernel[np.ix_(val, train)] @ alphas + mean  # (n_val, L)
        errors += ((predictions - y[val, None]) ** 2).sum(axis=0)
    return errors / len(y)


class _KernelModel:
    """Kernel ridge with an unpenalised intercept; subclasses define the kernel."""

    def __init__(self, inner_folds: int = 5, log10_lambda: tuple = (-4.0, 4.0, 81), fixed_lambda: float | None = None):
        self.inner_folds = int(inner_folds)
        self.log10_lambda = tuple(log10_lambda)
        self.fixed_lambda = fixed_lambda

    def _choose_lambda(self, kernel: np.ndarray, y: np.ndarray, seed: int) -> float:
        if self.fixed_lambda is not None:
            return float(self.fixed_lambda)
        lambdas = lambda_grid(kernel, self.log10_lambda)
        return float(lambdas[np.argmin(inner_cv_mse(kernel, y, lambdas, self.inner_folds, seed))])

    def _fit_dual(self, kernel: np.ndarray, y: np.ndarray) -> None:
        self.intercept = float(y.mean())
        self.dual = KernelRidge(alpha=self.penalty, kernel="precomputed").fit(kernel, y - self.intercept).dual_coef_


class RRBLUP(_KernelModel):
    """Marker ridge regression (RR-BLUP), penalty by inner CV on the training fold."""

    def fit(self, x: np.ndarray, y: np.ndarray, seed: int = 0, lines=None) -> RRBLUP:
        """Fit on encoded markers `(n, K, C)` and phenotypes `(n,)`."""
        z = _flat(x)
        centred = z - z.mean(axis=0)
        self.penalty = self._choose_lambda(centred @ centred.T, np.asarray(y, float), seed)
        ridge = Ridge(alpha=self.penalty, fit_intercept=True).fit(z, y)
        self.coef, self.intercept = ridge.coef_, float(ridge.intercept_)
        return self

    def predict(self, x: np.ndarray, lines=None) -> np.ndarray:
        """Predicted phenotypes `(n,)`."""
        return _flat(x) @ self.coef + self.intercept

    def state(self) -> dict[str, np.ndarray]:
        """Arrays needed by `predict`."""
        return {"coef": self.coef, "intercept": np.array([self.intercept]), "penalty": np.array([self.penalty])}

    def load_state(self, state: dict[str, np.ndarray]) -> RRBLUP:
        """Restore `state()`."""
        self.coef, self.intercept, self.penalty = state["coef"], float(state["intercept"][0]), float(state["penalty"][0])
        return self


def reml_delta(kernel: np.ndarray, y: np.ndarray) -> float:
    """REML estimate of delta = sigma_e² / sigma_g² for y = mu + g + e, g ~ N(0, sigma_g² K) (EMMA, Kang et al. 2008)."""
    basis = null_space(np.ones((1, len(y))))  # (n, n-1): contrasts free of the intercept
    eigvals, eigvecs = np.linalg.eigh(basis.T @ kernel @ basis)
    eta_sq = (eigvecs.T @ (basis.T @ y)) ** 2
    eigvals = np.maximum(eigvals, 0)
    dof = len(eta_sq)

    def negative_log_likelihood(log_delta: float) -> float:
        shifted = eigvals + np.exp(log_delta)
        return dof * np.log(np.sum(eta_sq / shifted)) + np.sum(np.log(shifted))

    best = minimize_scalar(negative_log_likelihood, bounds=(-10.0, 10.0), method="bounded")
    return float(np.exp(best.x))


class GBLUP(_KernelModel):
    """Genomic BLUP with the VanRaden G; penalty by REML (``penalty: reml``) or inner CV (``cv``).

    Args:
        penalty: ``reml`` or ``cv``.
        dosage_max: 2 for 0/1/2 dosages, 1 for presence/absence markers (VanRaden's scaling).
    """

    def __init__(self, penalty: str = "reml", dosage_max: int = 2, **kwargs):
        super().__init__(**kwargs)
        if penalty not in ("reml", "cv"):
            raise BiolmError(f"models.gblup.estimator.penalty: {penalty!r} (accepted: reml, cv)")
        self.penalty_method = penalty
        self.dosage_max = int(dosage_max)

    def kernel(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """G between lines of `a` and `b` with the training allele frequencies."""
        from biolm.genomic_prediction.preprocess import vanraden_kernel

        return vanraden_kernel(_flat(a), _flat(b), self.freq, self.dosage_max)

    def fit(self, x: np.ndarray, y: np.ndarray, seed: int = 0, lines=None) -> GBLUP:
        """Fit on additive dosages `(n, K, 1)` (imputed) and phenotypes `(n,)`."""
        z = _flat(x)
        self.freq = z.mean(axis=0) / self.dosage_max
        kernel = self.kernel(z, z)
        y = np.asarray(y, float)
        if self.fixed_lambda is None and self.penalty_method == "reml":
            self.penalty = reml_delta(kernel, y)
        else:
            self.penalty = self._choose_lambda(kernel, y, seed)
        self._fit_dual(kernel, y)
        # G(new, train) @ dual = (x_new - m p) @ effects: keep marker effects, not the training lines.
        denominator = self.dosage_max * float(np.sum(self.freq * (1 - self.freq)))
        self.effects = (z - self.dosage_max * self.freq).T @ self.dual / denominator
        return self

    def predict(self, x: np.ndarray, lines=None) -> np.ndarray:
        """Predicted phenotypes `(n,)`."""
        return (_flat(x) - self.dosage_max * self.freq) @ self.effects + self.intercept

    def state(self) -> dict[str, np.ndarray]:
        """Arrays needed by `predict`."""
        return {"freq": self.freq, "effects": self.effects, "intercept": np.array([self.intercept]), "penalty": np.array([self.penalty])}

    def load_state(self, state: dict[str, np.ndarray]) -> GBLUP:
        """Restore `state()`."""
        self.freq, self.effects = state["freq"], state["effects"]
        self.intercept, self.penalty = float(state["intercept"][0]), float(state["penalty"][0])
        return self


def squared_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances between rows, `(n_a, n_b)`."""
    d = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return np.maximum(d, 0.0)


class RKHS(_KernelModel):
    """Gaussian-kernel RKHS regression; bandwidth h and penalty chosen jointly by inner CV.

    Args:
        bandwidths: candidate h in K = exp(-h d² / median d²) (d² over training lines).
    """

    def __init__(self, bandwidths: tuple = (0.25, 0.5, 1.0, 2.0, 4.0), **kwargs):
        super().__init__(**kwargs)
        self.bandwidths = tuple(float(h) for h in bandwidths)

    def fit(self, x: np.ndarray, y: np.ndarray, seed: int = 0, lines=None) -> RKHS:
        """Fit on encoded markers `(n, K, C)` and phenotypes `(n,)`."""
        self.train_x = _flat(x)
        y = np.asarray(y, float)
        distances = squared_distances(self.train_x, self.train_x)
        self.median_d2 = float(np.median(distances[np.triu_indices(len(y), 1)]))
        best = (np.inf, None, None)
        for h in self.bandwidths:
            kernel = np.exp(-h * distances / self.median_d2)
            lambdas = lambda_grid(kernel, self.log10_lambda) if self.fixed_lambda is None else np.array([self.fixed_lambda])
            errors = inner_cv_mse(kernel, y, lambdas, self.inner_folds, seed)
            if errors.min() < best[0]:
                best = (errors.min(), h, float(lambdas[np.argmin(errors)]))
        _, self.bandwidth, self.penalty = best
        self._fit_dual(np.exp(-self.bandwidth * distances / self.median_d2), y)
        return self

    def predict(self, x: np.ndarray, lines=None) -> np.ndarray:
        """Predicted phenotypes `(n,)`."""
        kernel = np.exp(-self.bandwidth * squared_distances(_flat(x), self.train_x) / self.median_d2)
        return kernel @ self.dual + self.intercept

    def state(self) -> dict[str, np.ndarray]:
        """Arrays needed by `predict` (the training lines' markers are part of the model)."""
        scalars = np.array([self.intercept, self.bandwidth, self.median_d2, self.penalty])
        return {"train_x": self.train_x, "dual": self.dual, "scalars": scalars}

    def load_state(self, state: dict[str, np.ndarray]) -> RKHS:
        """Restore `state()`."""
        self.train_x, self.dual = state["train_x"], state["dual"]
        self.intercept, self.bandwidth, self.median_d2, self.penalty = map(float, state["scalars"])
        return self


class PedigreeBLUP(_KernelModel):
    """Pedigree BLUP: kernel ridge on the pedigree relationship A (rows picked by line index).

    Args:
        relationship: the `(n_lines, n_lines)` A matrix of the whole data set (set by the runner).
    """

    needs_pedigree = True

    def __init__(self, relationship: np.ndarray | None = None, **kwargs):
        super().__init__(**kwargs)
        self.relationship = relationship

    def fit(self, x: np.ndarray, y: np.ndarray, seed: int = 0, lines=None) -> PedigreeBLUP:
        """Fit on the lines at positional indices ``lines`` (markers unused)."""
        if self.relationship is None or lines is None:
            raise BiolmError("models.pblup: needs data.pedigree (a square relationship CSV of the same line ids)")
        self.train_lines = np.asarray(lines)
        kernel = self.relationship[np.ix_(self.train_lines, self.train_lines)]
        self.penalty = self._choose_lambda(kernel, np.asarray(y, float), seed)
        self._fit_dual(kernel, np.asarray(y, float))
        return self

    def predict(self, x: np.ndarray, lines=None) -> np.ndarray:
        """Predicted phenotypes `(n,)` of the lines at positional indices ``lines``."""
        return self.relationship[np.ix_(np.asarray(lines), self.train_lines)] @ self.dual + self.intercept

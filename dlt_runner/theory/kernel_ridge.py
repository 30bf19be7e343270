"""Kernel ridge regression with the (K + n lambda I)^{-1} scale convention of Wei et al. 2022.

`kernel_ridge_predict` solves one ridge directly; `SpectralKernelRidge` solves a whole ridge
grid from one `eigh`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def kernel_ridge_predict(K_train: Tensor, Y: Tensor, K_test_train: Tensor, ridge: float) -> Tensor:
    """f(X_test) = K_test,train (K_train + n ridge I)^{-1} Y, n = len(K_train) (Wei et al. 2022).

    A direct solve in float64; Y is (n,) or (n, C), the result (m,) or (m, C).
    """
    n = K_train.shape[0]
    system = K_train.double() + n * ridge * torch.eye(n, dtype=torch.float64, device=K_train.device)
    return K_test_train.double() @ torch.linalg.solve(system, Y.double())


class SpectralKernelRidge:
    """Kernel ridge regression for a whole grid of ridges from ONE eigendecomposition.

    With K_train = U diag(e) U^T and the convention (K + n lambda I)^{-1} of Wei et al. 2022:
        dual coefficients  alpha(lambda) = U diag(1 / (e + n lambda)) U^T Y,
        smoother           S(lambda) = K (K + n lambda I)^{-1}, eigenvalues e / (e + n lambda),
        train residuals    (I - S) Y = U diag(n lambda / (e + n lambda)) U^T Y,
        test predictions   K_test,train alpha(lambda).
    Every method takes a float ridge (result shaped like the single-ridge answer) or a 1-D
    grid (results stacked along a new leading axis). Y is (n,) or (n, C) and keeps its
    shape. float64 throughout. Eigenvalues below 0 are round-off of a PSD kernel and are set
    to 0, so ridge must be > 0 unless K_train is positive definite.
    """

    def __init__(self, K_train: Tensor, Y: Tensor) -> None:
        K = K_train.double()
        eigenvalues, eigenvectors = torch.linalg.eigh((K + K.T) / 2)
        self.n = K.shape[0]
        self.eigenvalues = eigenvalues.clamp_min(0.0)
        self.eigenvectors = eigenvectors
        self.targets = Y.double()
        self._projected_targets = eigenvectors.T @ self.targets.reshape(self.n, -1)

    def smoother_eigenvalues(self, ridge: float | Sequence[float] | Tensor) -> Tensor:
        """e / (e + n lambda): (n,) or (G, n); their sum is tr S(lambda)."""
        ridges, single = self._as_grid(ridge)
        values = self.eigenvalues / self._shifted_eigenvalues(ridges)
        return values[0] if single else values

    def dual_coefficients(self, ridge: float | Sequence[float] | Tensor) -> Tensor:
        """alpha(lambda) = (K + n lambda I)^{-1} Y."""
        ridges, single = self._as_grid(ridge)
        weights = 1.0 / self._shifted_eigenvalues(ridges)
        return self._from_spectrum(self.eigenvectors, weights, single)

    def train_residuals(self, ridge: float | Sequence[float] | Tensor) -> Tensor:
        """(I - S(lambda)) Y = Y - K alpha(lambda), the training residuals used by GCV."""
        ridges, single = self._as_grid(ridge)
        shifted = self._shifted_eigenvalues(ridges)
        weights = (self.n * ridges[:, None]) / shifted
        return self._from_spectrum(self.eigenvectors, weights, single)

    def predict(self, K_test_train: Tensor, ridge: float | Sequence[float] | Tensor) -> Tensor:
        """K_test,train alpha(lambda): (m,)/(m, C), or (G, m)/(G, m, C) for a grid."""
        ridges, single = self._as_grid(ridge)
        weights = 1.0 / self._shifted_eigenvalues(ridges)
        return self._from_spectrum(K_test_train.double() @ self.eigenvectors, weights, single)

    def _as_grid(self, ridge: float | Sequence[float] | Tensor) -> tuple[Tensor, bool]:
        ridges = torch.as_tensor(ridge, dtype=torch.float64, device=self.eigenvalues.device)
        return ridges.reshape(-1), ridges.ndim == 0

    def _shifted_eigenvalues(self, ridges: Tensor) -> Tensor:
        return self.eigenvalues[None, :] + self.n * ridges[:, None]

    def _from_spectrum(self, basis: Tensor, weights: Tensor, single: bool) -> Tensor:
        """basis @ diag(weights_g) @ U^T Y for every grid row g, shaped like Y."""
        result = basis @ (weights[:, :, None] * self._projected_targets)
        result = result.reshape(len(weights), basis.shape[0], *self.targets.shape[1:])
        return result[0] if single else result

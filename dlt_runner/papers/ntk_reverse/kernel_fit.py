"""Non-negative polynomial fit of a dot-product kernel on rho in [-1, 1].

A dot-product kernel K(rho) is realisable by a one-hidden-layer net exactly when its power
series has non-negative coefficients (`hermite.py`); a deep net's kernel has such a series but
not a finite one, so the paper truncates it by fitting sum_{k<=D} b_k rho^k, b_k >= 0, on a
grid of rho. The official notebooks solve this as a cvxopt QP, min |V b - K|^2 s.t. b >= 0
(V the Vandermonde matrix of the grid, the 1e3 scaling only conditions the solver); that QP is
non-negative least squares, solved here exactly by `scipy.optimize.nnls`. They weight the
endpoints (fig_1/fig_2 `phi_from_kernel_fn`: 10% of the samples repeated at each of rho = +-1;
`hermite_kernel_demos` `psd_poly_fit`: at rho = 1 only), because K(1) is the kernel's diagonal,
and they zero coefficients below 1e-3 after the fit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import nnls
from torch import Tensor

from dlt_runner.core.errors import ConfigError, choose

ENDPOINTS: dict[str, tuple[float, ...]] = {"both": (-1.0, 1.0), "upper": (1.0,)}


def power_series(coefficients: Tensor, rho: Tensor | float) -> Tensor:
    """sum_k coefficients[k] rho^k by Horner's rule, in float64 on rho's device."""
    rho = torch.as_tensor(rho, dtype=torch.float64)
    coefficients = torch.as_tensor(coefficients, dtype=torch.float64, device=rho.device)
    value = torch.zeros_like(rho)
    for coefficient in coefficients.flip(0):
        value = value * rho + coefficient
    return value


@dataclass(frozen=True)
class FitResult:
    """b_0..b_D (float64, all >= 0), and the fit's residual target - fit on the grid."""

    coefficients: Tensor
    rho: Tensor
    residual: Tensor

    @property
    def max_error(self) -> float:
        """max over the grid of |K(rho) - sum_k b_k rho^k| (worst near rho = 1 for ReLU)."""
        return float(self.residual.abs().max())

    def __call__(self, rho: Tensor | float) -> Tensor:
        return power_series(self.coefficients, rho)


class PolynomialFit:
    """Weighted non-negative least-squares fit of K(rho) by a polynomial of degree `degree`.

    Args:
        degree: D, the highest power kept (the paper's Fig. 1 uses <= 7, Fig. 2 up to 20).
        grid_points: equally spaced rho in [-1, 1], both ends included.
        endpoint_weight: the fraction of the total weight carried by EACH weighted endpoint
            (official: 0.1); 0 weights every grid point equally.
        endpoints: 'both' (rho = -1 and 1; fig_1/fig_2 notebooks) or 'upper' (rho = 1 only;
            hermite_kernel_demos).
        drop_below: coefficients below this are set to 0 after the fit (official: 1e-3).
    """

    def __init__(
        self,
        degree: int = 8,
        grid_points: int = 1000,
        endpoint_weight: float = 0.1,
        endpoints: str = "both",
        drop_below: float = 1e-3,
    ) -> None:
        ends = choose("endpoints", endpoints, ENDPOINTS)
        if int(degree) < 0 or int(grid_points) < int(degree) + 1:
            raise ConfigError(
                f"need degree >= 0 and grid_points > degree; got {degree}, {grid_points}"
            )
        if not 0.0 <= float(endpoint_weight) * len(ends) < 1.0:
            raise ConfigError(
                f"endpoint_weight must be in [0, {1 / len(ends):g}) for "
                f"endpoints={endpoints!r}; got {endpoint_weight}"
            )
        self.degree = int(degree)
        self.grid_points = int(grid_points)
        self.endpoint_weight = float(endpoint_weight)
        self.endpoints = endpoints
        self.drop_below = float(drop_below)

    def grid(self) -> tuple[Tensor, Tensor]:
        """(rho, weights): weights 1, except that each weighted endpoint gets the weight W with
        W / (sum of all weights) = endpoint_weight."""
        rho = torch.linspace(-1.0, 1.0, self.grid_points, dtype=torch.float64)
        weights = torch.ones_like(rho)
        ends = ENDPOINTS[self.endpoints]
        w = self.endpoint_weight
        if w > 0:
            end_weight = w * (self.grid_points - len(ends)) / (1.0 - len(ends) * w)
            for end in ends:
                weights[0 if end < 0 else -1] = end_weight
        return rho, weights

    def __call__(self, kernel: Callable[[Tensor], Tensor]) -> FitResult:
        rho, weights = self.grid()
        target = torch.as_tensor(kernel(rho), dtype=torch.float64).reshape(-1).cpu()
        vandermonde = rho[:, None] ** torch.arange(self.degree + 1, dtype=torch.float64)
        root = weights.sqrt()[:, None]
        solution, _ = nnls((root * vandermonde).numpy(), (root[:, 0] * target).numpy())
        coefficients = torch.as_tensor(np.where(solution < self.drop_below, 0.0, solution))
        return FitResult(coefficients, rho, target - power_series(coefficients, rho))

    def __repr__(self) -> str:
        return (
            f"PolynomialFit(degree={self.degree}, grid_points={self.grid_points}, "
            f"endpoint_weight={self.endpoint_weight}, endpoints={self.endpoints!r}, "
            f"drop_below={self.drop_below})"
        )

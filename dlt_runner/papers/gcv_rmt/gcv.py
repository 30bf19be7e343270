"""GCV and the measured risks of kernel ridge regression over a ridge grid.

Every curve comes from ONE eigendecomposition of the training kernel
(:class:`dlt_runner.theory.kernel_ridge.SpectralKernelRidge`), with the paper's scale convention
f = K_test,train (K_train + n lambda I)^{-1} Y on a kernel normalised to tr(K_train)/n = 1,
so one ridge grid means the same for every representation. Targets are multi-output (one-hot
minus an offset); errors are summed over outputs and averaged over points.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from dlt_runner.theory.kernel_ridge import SpectralKernelRidge
from dlt_runner.theory.metrics import accuracy, relative_error


def log_ridge_grid(log10_min: float, log10_max: float, count: int) -> Tensor:
    """lambda = logspace(log10_min, log10_max, count) in float64 (default grid: -6, 0, 13)."""
    if count < 1 or not log10_min <= log10_max:
        raise ValueError(
            f"need count >= 1 and log10_min <= log10_max; got {count}, {log10_min}, {log10_max}"
        )
    return torch.logspace(log10_min, log10_max, count, dtype=torch.float64)


def normalize_trace(K_train: Tensor, K_test_train: Tensor) -> tuple[Tensor, Tensor]:
    """Both kernels divided by tr(K_train)/n, so that the training kernel has unit mean eigenvalue.

    KRR predictions depend on K and lambda only through K / lambda; dividing by the mean
    eigenvalue makes the grid of lambda comparable across representations.
    """
    scale = torch.diagonal(K_train).mean()
    if not scale > 0:
        raise ValueError(f"the training kernel has non-positive trace ({float(scale)})")
    return K_train / scale, K_test_train / scale


def residual_fractions(krr: SpectralKernelRidge, ridges: Tensor) -> Tensor:
    """1 - e_i / (e_i + n lambda) = n lambda / (e_i + n lambda), shape (G, n).

    The eigenvalues of I - S(lambda), written without the subtraction so that their mean
    1 - tr S / n keeps full precision when S is close to the identity (small lambda).
    """
    shift = krr.n * ridges.to(krr.eigenvalues)[:, None]
    return shift / (krr.eigenvalues[None, :] + shift)


def train_risk(krr: SpectralKernelRidge, ridges: Tensor) -> Tensor:
    """(1/n) ||(I - S(lambda)) Y||_F^2 for every ridge: the training error, shape (G,)."""
    residuals = krr.train_residuals(ridges).reshape(len(ridges), krr.n, -1)
    return residuals.pow(2).sum(dim=(1, 2)) / krr.n


def gcv(krr: SpectralKernelRidge, ridges: Tensor) -> Tensor:
    """GCV(lambda) = (1/n) ||(I - S) Y||_F^2 / (1 - tr(S)/n)^2 (Craven & Wahba 1978).

    S(lambda) = K (K + n lambda I)^{-1} is the smoother (the hat matrix) of KRR. GCV is the
    leave-one-out error r_i / (1 - S_ii) with every leverage S_ii replaced by its mean tr(S)/n,
    so it needs only the training data. Shape (G,).
    """
    return train_risk(krr, ridges) / residual_fractions(krr, ridges).mean(dim=1).pow(2)


def holdout_risk(predictions: Tensor, targets: Tensor) -> Tensor:
    """(1/m) sum_i ||f(x_i) - y_i||^2: squared error summed over outputs, averaged over points.

    predictions (G, m, C) or (G, m), targets (m, C) or (m,); returns (G,).
    """
    errors = (predictions - targets.to(predictions)).reshape(len(predictions), len(targets), -1)
    return errors.pow(2).sum(dim=2).mean(dim=1)


def eigen_decay_exponent(
    eigenvalues: Tensor, first_rank: int = 5, last_rank: int = 200, floor: float = 1e-10
) -> float:
    """alpha of a power law e_k ~ k^(-alpha), fitted by least squares on log e_k vs log k.

    Ranks k (1 = largest eigenvalue) from first_rank to last_rank, keeping only eigenvalues
    above floor * e_1, so that the null space of a low-rank kernel (raw pixels: rank <= d)
    does not enter the fit. NaN when fewer than two ranks remain.
    """
    ordered = eigenvalues.double().sort(descending=True).values
    ranks = torch.arange(1, len(ordered) + 1, dtype=torch.float64, device=ordered.device)
    keep = (ranks >= first_rank) & (ranks <= last_rank) & (ordered > floor * ordered[0])
    if int(keep.sum()) < 2:
        return math.nan
    log_rank, log_value = ranks[keep].log(), ordered[keep].log()
    centred_rank = log_rank - log_rank.mean()
    slope = (centred_rank * (log_value - log_value.mean())).sum() / centred_rank.pow(2).sum()
    return float(-slope)


@dataclass(frozen=True)
class RiskCurves:
    """GCV, training and test risk and test accuracy of one representation, per ridge."""

    ridges: Tensor
    gcv: Tensor
    test_risk: Tensor
    train_risk: Tensor
    test_accuracy: Tensor
    eigenvalues: Tensor

    @property
    def relative_error(self) -> Tensor:
        """|GCV - test risk| / test risk, per ridge."""
        return relative_error(self.gcv, self.test_risk, elementwise=True)

    def as_lists(self) -> dict[str, list[float]]:
        """The curves as plain lists (W&B line plots, metrics.json ``curves``)."""
        return {
            "gcv": self.gcv.tolist(),
            "test_risk": self.test_risk.tolist(),
            "train_risk": self.train_risk.tolist(),
            "test_acc": self.test_accuracy.tolist(),
            "rel_err": self.relative_error.tolist(),
        }

    def summary(self, decay_ranks: Sequence[int] = (5, 200)) -> dict[str, float]:
        """Per-representation scalars.

        - median_rel_err, max_rel_err: of |GCV - test| / test over the grid (the median of an
          even-sized grid is the mean of the middle two);
        - min_test_risk, best_log10_ridge, acc_at_best: the grid's best ridge for test risk;
        - gcv_log10_ridge, test_risk_at_gcv, gcv_choice_ratio: the ridge GCV would pick, its
          test risk, and that risk over the best one (1 = GCV picks the best ridge);
        - eigen_decay: alpha of e_k ~ k^-alpha (``eigen_decay_exponent``).
        """
        best = int(self.test_risk.argmin())
        chosen = int(self.gcv.argmin())
        relative = self.relative_error
        return {
            "median_rel_err": float(relative.quantile(0.5)),
            "max_rel_err": float(relative.max()),
            "min_test_risk": float(self.test_risk[best]),
            "best_log10_ridge": float(self.ridges[best].log10()),
            "acc_at_best": float(self.test_accuracy[best]),
            "gcv_log10_ridge": float(self.ridges[chosen].log10()),
            "test_risk_at_gcv": float(self.test_risk[chosen]),
            "gcv_choice_ratio": float(self.test_risk[chosen] / self.test_risk[best]),
            "eigen_decay": eigen_decay_exponent(self.eigenvalues, *decay_ranks),
        }


def risk_curves(
    K_train: Tensor, K_test_train: Tensor, Y_train: Tensor, Y_test: Tensor, ridges: Tensor
) -> RiskCurves:
    """Normalise the kernels, eigendecompose K_train once, and evaluate the whole ridge grid."""
    K_train, K_test_train = normalize_trace(K_train.double(), K_test_train.double())
    krr = SpectralKernelRidge(K_train, Y_train)
    ridges = ridges.to(krr.eigenvalues)
    predictions = krr.predict(K_test_train, ridges)
    return RiskCurves(
        ridges=ridges,
        gcv=gcv(krr, ridges),
        test_risk=holdout_risk(predictions, Y_test),
        train_risk=train_risk(krr, ridges),
        test_accuracy=accuracy(predictions, Y_test),
        eigenvalues=krr.eigenvalues,
    )

"""The wide network of the paper's NTK analysis, centred to start at f = 0, and its
infinite-width twin.

- ``CentredNet``: f(x) - f_0(x) with f_0 a frozen copy of the net at initialisation, so the
  initial function is 0 as the NTK analysis assumes.
- ``infinite_width_ntk``: the analytic NTK of an NTK-parameterised ReLU/erf ``MLP``.
- ``gradient_descent_predictions``: the network in the infinite-width (linearised) limit,
  trained by full-batch gradient descent on a weighted least-squares loss — in closed form.
  With ``knowledge.blended_targets`` that loss is the informed loss, so this is the paper's
  "same network trained as kernel regression with its NTK" baseline, for any lambda, at the
  same learning rate and step count as the finite net, or converged (``steps=None``).
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import Tensor, nn

from dlt_runner.nn.activations import Erf
from dlt_runner.nn.mlp import MLP
from dlt_runner.theory.closed_form_kernels import erf_nngp_ntk, input_covariance, relu_nngp_ntk


class CentredNet(nn.Module):
    """f(x) = base(x) - base_0(x): the base net minus its frozen initial copy.

    Gradients in the parameters are those of ``base``; the copy (``initial``) has
    ``requires_grad=False``, so optimisers and ``empirical_ntk`` skip it. f_0 does not change,
    and full-batch training passes the same input tensor every step, so f_0 on the last input
    is memoised (checked by identity and in-place version; inputs that require grad, as for
    input-gradient penalties, are never memoised).
    """

    def __init__(self, base: nn.Module) -> None:
        super().__init__()
        self.base = base
        self.initial = copy.deepcopy(base).requires_grad_(False)
        self._memo: tuple[Tensor, int, Tensor] | None = None

    def initial_output(self, x: Tensor) -> Tensor:
        """f_0(x), the frozen initial net's output (differentiable in x, not in parameters)."""
        memo = self._memo
        if memo is not None and memo[0] is x and memo[1] == x._version:
            return memo[2]
        value = self.initial(x)
        if not x.requires_grad:
            self._memo = (x, x._version, value)
        return value

    def forward(self, x: Tensor) -> Tensor:
        return self.base(x) - self.initial_output(x)

    def _apply(self, fn: Any, *args: Any, **kwargs: Any) -> CentredNet:
        self._memo = None  # a device or dtype move makes the memoised f_0 stale
        return super()._apply(fn, *args, **kwargs)

    def _load_from_state_dict(self, *args: Any, **kwargs: Any) -> None:
        self._memo = None  # loading a checkpoint may replace the initial weights
        super()._load_from_state_dict(*args, **kwargs)


_INFINITE_WIDTH_KERNELS = {nn.ReLU: relu_nngp_ntk, Erf: erf_nngp_ntk}


def check_infinite_width_ntk(mlp: nn.Module) -> None:
    """Raise ValueError unless ``infinite_width_ntk`` knows ``mlp``'s architecture."""
    if not isinstance(mlp, MLP):
        raise ValueError(f"the analytic NTK needs a dlt_runner.nn.MLP, got {type(mlp).__name__}")
    if mlp.parameterization != "ntk" or mlp.init != "normal":
        raise ValueError(
            "the analytic NTK needs parameterization 'ntk' with init 'normal', got "
            f"{mlp.parameterization!r} with {mlp.init!r}"
        )
    if type(mlp.activation) not in _INFINITE_WIDTH_KERNELS:
        raise ValueError(
            f"no analytic NTK for activation {type(mlp.activation).__name__}; "
            "choose one of: relu, erf (or use the empirical kernel)"
        )


def infinite_width_ntk(mlp: MLP, x1: Tensor, x2: Tensor | None = None) -> Tensor:
    """Theta(x1, x2) of ``mlp`` as its hidden widths go to infinity, float64 (n1, n2).

    Same architecture (depth, sigma_w, sigma_b per layer, ReLU or erf), via
    ``theory.closed_form_kernels.relu_nngp_ntk`` / ``erf_nngp_ntk``; layers without a bias
    count as sigma_b = 0.
    """
    check_infinite_width_ntk(mlp)
    kernel = _INFINITE_WIDTH_KERNELS[type(mlp.activation)]
    bias_stds = [
        std if layer.bias is not None else 0.0
        for std, layer in zip(mlp.bias_stds, mlp.layers, strict=True)
    ]
    _, ntk = kernel(
        *input_covariance(x1, x2),
        depth=len(mlp.layers) - 1,
        weight_std=mlp.weight_stds,
        bias_std=bias_stds,
    )
    return ntk


def gradient_descent_spectral_factor(
    eigenvalues: Tensor, learning_rate: float, steps: int | None
) -> Tensor:
    """phi_K(e) = (1 - (1 - 2 lr e)^K) / e, with phi_K(0) = 2 lr K; K = None: 1/e (0 at e = 0).

    Small 2 lr e uses expm1/log1p, so phi is accurate where 1 - (1 - 2 lr e)^K cancels.
    """
    if steps is None:
        cutoff = eigenvalues.max() * len(eigenvalues) * torch.finfo(eigenvalues.dtype).eps
        safe = torch.where(eigenvalues > cutoff, eigenvalues, 1.0)
        return torch.where(eigenvalues > cutoff, 1.0 / safe, 0.0)
    rate = 2.0 * learning_rate * eigenvalues
    small = rate < 0.5
    safe = torch.where(eigenvalues > 0, eigenvalues, 1.0)
    stable_log = torch.log1p(-torch.where(small, rate, 0.0))
    decayed_small = -torch.expm1(steps * stable_log)
    decayed_large = 1.0 - (1.0 - rate) ** steps
    factor = torch.where(small, decayed_small, decayed_large) / safe
    return torch.where(eigenvalues > 0, factor, 2.0 * learning_rate * steps)


def gradient_descent_predictions(
    kernel_train: Tensor,
    kernel_eval_train: Tensor,
    weights: Tensor,
    targets: Tensor,
    learning_rate: float,
    steps: int | None,
) -> Tensor:
    """f_K(x) of a linearised net with f_0 = 0 after K GD steps on sum_k w_k (f(z_k) - t_k)^2.

    The linearised (NTK-regime) dynamics of full-batch gradient descent at rate lr are
    f_{s+1}(x) = f_s(x) - 2 lr Theta(x, Z) W (f_s(Z) - t) (Jacot et al. 2018; Lee et al. 2019).
    With S = W^1/2 Theta(Z, Z) W^1/2 = Q diag(e) Q^T this sums to

        f_K(x) = Theta(x, Z) W^1/2 Q diag(phi_K(e)) Q^T W^1/2 t,

    phi_K from ``gradient_descent_spectral_factor``. ``steps=None`` is the converged limit: for
    positive weights and positive-definite Theta it is kernel regression on the blended targets,
    Theta(x, Z) Theta(Z, Z)^{-1} t; zero-weight points (e.g. unlabelled ones at lambda = 0) then
    drop out. Exact for a model linear in its parameters, e.g. a random-features readout.

    Args:
        kernel_train: Theta(Z, Z), (n, n). kernel_eval_train: Theta(X, Z), (m, n).
        weights, targets: (n,), e.g. from ``knowledge.blended_targets``; weights >= 0.
        learning_rate, steps: the optimiser's rate and step count (None: converged).
    Returns:
        f_K(X), (m,), float64.
    """
    root_weights = weights.double().sqrt()
    system = root_weights[:, None] * kernel_train.double() * root_weights[None, :]
    eigenvalues, eigenvectors = torch.linalg.eigh((system + system.T) / 2)
    eigenvalues = eigenvalues.clamp_min(0.0)  # round-off of a PSD matrix
    factor = gradient_descent_spectral_factor(eigenvalues, learning_rate, steps)
    projected = eigenvectors.T @ (root_weights * targets.double())
    coefficients = root_weights * (eigenvectors @ (factor * projected))
    return kernel_eval_train.double() @ coefficients

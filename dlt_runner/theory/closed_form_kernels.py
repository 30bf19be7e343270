"""Infinite-width NNGP and NTK of deep fully-connected nets, in closed form.

`relu_nngp_ntk`, `erf_nngp_ntk` (and the generic `deep_nngp_ntk`) follow the NTK
parameterisation with the conventions of neural-tangents' `stax.Dense(W_std, b_std)` +
`stax.Relu()` / `stax.Erf()` (Jacot et al. 2018; Lee et al. 2019). `empirical_nngp` is their
finite-width counterpart from a net's penultimate features. float64 throughout.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from dlt_runner.nn.mlp import per_layer

Dual = Callable[[Tensor, Tensor, Tensor], tuple[Tensor, Tensor]]


def input_covariance(x1: Tensor, x2: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """(x1 x2^T / d, |x1|^2 / d as a column, |x2|^2 / d as a row), in float64.

    The input kernel of neural-tangents; pass it on as `relu_nngp_ntk(*input_covariance(x))`.
    On the sphere |x|^2 = d (as in Simon et al. 2022) the first is the correlation rho and
    the others 1.
    """
    x1 = x1.double().flatten(1)
    x2 = x1 if x2 is None else x2.double().flatten(1)
    d = x1.shape[1]
    return x1 @ x2.T / d, (x1 * x1).sum(1, keepdim=True) / d, (x2 * x2).sum(1)[None, :] / d


def arccos_k1(rho: Tensor | float) -> Tensor:
    """k1(rho) = (sqrt(1 - rho^2) + (pi - arccos rho) rho) / pi (Cho & Saul 2009).

    Equals 2 E[relu(u) relu(v)] for unit-variance (u, v) with correlation rho.
    """
    rho = torch.as_tensor(rho).clamp(-1.0, 1.0)
    return (torch.sqrt(1.0 - rho * rho) + (math.pi - torch.arccos(rho)) * rho) / math.pi


def arccos_k0(rho: Tensor | float) -> Tensor:
    """k0(rho) = (pi - arccos rho) / pi = 2 E[relu'(u) relu'(v)] = dk1/drho (Cho & Saul 2009)."""
    return (math.pi - torch.arccos(torch.as_tensor(rho).clamp(-1.0, 1.0))) / math.pi


def relu_dual(cov: Tensor, var1: Tensor, var2: Tensor) -> tuple[Tensor, Tensor]:
    """(E[relu(u) relu(v)], E[relu'(u) relu'(v)]) for (u, v) ~ N(0, [[var1, cov], [cov, var2]]).

    Arc-cosine kernels of Cho & Saul 2009: sqrt(var1 var2) k1(rho) / 2 and k0(rho) / 2.
    """
    scale = torch.sqrt(var1 * var2)
    rho = cov / scale.clamp_min(torch.finfo(scale.dtype).tiny)
    return scale * arccos_k1(rho) / 2, arccos_k0(rho) / 2


def erf_dual(cov: Tensor, var1: Tensor, var2: Tensor) -> tuple[Tensor, Tensor]:
    """(E[erf(u) erf(v)], E[erf'(u) erf'(v)]) for (u, v) ~ N(0, [[var1, cov], [cov, var2]]).

    Williams 1997: (2/pi) arcsin(2 cov / sqrt((1 + 2 var1)(1 + 2 var2))), and
    (4/pi) / sqrt((1 + 2 var1)(1 + 2 var2) - 4 cov^2) (as in neural-tangents' stax.Erf).
    """
    denominator = (1 + 2 * var1) * (1 + 2 * var2)
    nngp = 2 / math.pi * torch.arcsin((2 * cov / torch.sqrt(denominator)).clamp(-1.0, 1.0))
    return nngp, 4 / math.pi / torch.sqrt(denominator - 4 * cov * cov)


# The activations whose dual has a closed form, by their `nn.activations` names.
DUALS: dict[str, Dual] = {"relu": relu_dual, "erf": erf_dual}


def deep_nngp_ntk(
    dual: Dual,
    cov: Tensor | float,
    var1: Tensor | float = 1.0,
    var2: Tensor | float = 1.0,
    *,
    depth: int,
    weight_std: float | Sequence[float] = 1.0,
    bias_std: float | Sequence[float] = 0.0,
) -> tuple[Tensor, Tensor]:
    """(NNGP, NTK) of one output of an NTK-parameterised MLP with `depth` hidden layers.

    The net is `MLP([d, m, ..., m, C], activation, 'ntk', weight_std, bias_std)` with
    m -> infinity; the input kernel is (cov, var1, var2) = `input_covariance(x1, x2)`, or
    (rho, 1, 1) on the sphere. With sigma_w, sigma_b of linear layer l (0..depth, scalar or
    list) the recursion of neural-tangents' Dense/activation layers is
        Sigma_0 = sigma_w0^2 cov + sigma_b0^2,  Theta_0 = Sigma_0,
        Sigma_l = sigma_wl^2 E[phi phi](Sigma_{l-1}) + sigma_bl^2,
        Theta_l = Sigma_l + sigma_wl^2 E[phi' phi'](Sigma_{l-1}) Theta_{l-1},
    with the variances propagated alongside; it returns (Sigma_depth, Theta_depth).
    `dual(cov, var1, var2)` returns (E[phi(u) phi(v)], E[phi'(u) phi'(v)]); var1, var2 must
    broadcast against cov. Computed in float64.
    """
    n_linear = depth + 1
    weight_vars = [w * w for w in per_layer(weight_std, n_linear, "weight_std")]
    bias_vars = [b * b for b in per_layer(bias_std, n_linear, "bias_std")]
    cov, var1, var2 = (torch.as_tensor(t, dtype=torch.float64) for t in (cov, var1, var2))

    nngp = weight_vars[0] * cov + bias_vars[0]
    var1 = weight_vars[0] * var1 + bias_vars[0]
    var2 = weight_vars[0] * var2 + bias_vars[0]
    ntk = nngp
    for weight_var, bias_var in zip(weight_vars[1:], bias_vars[1:], strict=True):
        activation_cov, derivative_cov = dual(nngp, var1, var2)
        nngp = weight_var * activation_cov + bias_var
        ntk = nngp + weight_var * derivative_cov * ntk
        var1 = weight_var * dual(var1, var1, var1)[0] + bias_var
        var2 = weight_var * dual(var2, var2, var2)[0] + bias_var
    return nngp, ntk


def relu_nngp_ntk(
    cov: Tensor | float,
    var1: Tensor | float = 1.0,
    var2: Tensor | float = 1.0,
    *,
    depth: int,
    weight_std: float | Sequence[float] = 1.0,
    bias_std: float | Sequence[float] = 0.0,
) -> tuple[Tensor, Tensor]:
    """(NNGP, NTK) of a deep ReLU net; see `deep_nngp_ntk`.

    The He-init bias-free form of Simon et al. 2022 (Sigma_l = k1(Sigma_{l-1}),
    Theta_l = Sigma_l + Theta_{l-1} k0(Sigma_{l-1}), Sigma_0 = Theta_0 = rho) is
    weight_std = [1] + [sqrt(2)] * depth, bias_std = 0 on the sphere: `relu_arccos_nngp_ntk`.
    """
    return deep_nngp_ntk(
        relu_dual, cov, var1, var2, depth=depth, weight_std=weight_std, bias_std=bias_std
    )


def erf_nngp_ntk(
    cov: Tensor | float,
    var1: Tensor | float = 1.0,
    var2: Tensor | float = 1.0,
    *,
    depth: int,
    weight_std: float | Sequence[float] = 1.0,
    bias_std: float | Sequence[float] = 0.0,
) -> tuple[Tensor, Tensor]:
    """(NNGP, NTK) of a deep erf net; see `deep_nngp_ntk`."""
    return deep_nngp_ntk(
        erf_dual, cov, var1, var2, depth=depth, weight_std=weight_std, bias_std=bias_std
    )


def relu_arccos_nngp_ntk(rho: Tensor | float, depth: int) -> tuple[Tensor, Tensor]:
    """The arc-cosine recursion as Simon et al. 2022 write it (He init, no biases).

    Sigma_0 = Theta_0 = rho, Sigma_l = k1(Sigma_{l-1}),
    Theta_l = Sigma_l + Theta_{l-1} k0(Sigma_{l-1}); returns (Sigma_depth, Theta_depth).
    """
    nngp = ntk = torch.as_tensor(rho, dtype=torch.float64)
    for _ in range(depth):
        nngp, ntk = arccos_k1(nngp), arccos_k1(nngp) + ntk * arccos_k0(nngp)
    return nngp, ntk


def empirical_nngp(
    features1: Tensor,
    features2: Tensor | None = None,
    *,
    weight_std: float = 1.0,
    bias_std: float = 0.0,
) -> Tensor:
    """E over the readout init of f(x) f(x') given the penultimate features (e.g. `MLP.features`).

    sigma_w^2 <phi(x), phi(x')> / m + sigma_b^2, with sigma_w, sigma_b the readout's scales
    and m the feature width: the finite-width estimate of the NNGP (either parameterisation).
    """
    features2 = features1 if features2 is None else features2
    width = features1.shape[-1]
    return weight_std**2 * (features1 @ features2.T) / width + bias_std**2

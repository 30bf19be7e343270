"""Infinite-width NNGP/NTK closed forms: known values, Price's theorem, Monte Carlo, wide nets."""

import math

import numpy as np
import pytest
import torch

from dlt_runner.nn import MLP
from dlt_runner.theory.closed_form_kernels import (
    arccos_k0,
    arccos_k1,
    empirical_nngp,
    erf_dual,
    erf_nngp_ntk,
    input_covariance,
    relu_arccos_nngp_ntk,
    relu_dual,
    relu_nngp_ntk,
)
from dlt_runner.theory.entk import empirical_ntk
from dlt_runner.theory.metrics import relative_error

F64 = torch.float64


def sphere(n, d, seed):
    x = torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=F64)
    return x / x.norm(dim=1, keepdim=True) * math.sqrt(d)


# --- infinite-width kernels ---------------------------------------------------------------


def test_arccos_closed_forms_at_known_points():
    rho = torch.tensor([-1.0, 0.0, 1.0], dtype=F64)
    torch.testing.assert_close(arccos_k1(rho), torch.tensor([0.0, 1 / math.pi, 1.0], dtype=F64))
    torch.testing.assert_close(arccos_k0(rho), torch.tensor([0.0, 0.5, 1.0], dtype=F64))


@pytest.mark.parametrize("dual", [relu_dual, erf_dual])
def test_dual_derivative_is_prices_theorem(dual):
    """d/dcov E[phi(u) phi(v)] = E[phi'(u) phi'(v)] (Price 1958): NNGP and NTK parts agree."""
    var1 = torch.tensor([0.7, 1.0, 2.5], dtype=F64)
    var2 = torch.tensor([1.3, 1.0, 0.4], dtype=F64)
    cov = (torch.tensor([0.3, -0.8, 0.9], dtype=F64) * (var1 * var2).sqrt()).requires_grad_()
    nngp, derivative = dual(cov, var1, var2)
    (gradient,) = torch.autograd.grad(nngp.sum(), cov)
    torch.testing.assert_close(gradient, derivative, rtol=1e-10, atol=0)
    # and k0 = dk1/drho, the one-layer ReLU pair (Cho & Saul 2009)
    rho = torch.linspace(-0.95, 0.95, 11, dtype=F64).requires_grad_()
    (dk1,) = torch.autograd.grad(arccos_k1(rho).sum(), rho)
    torch.testing.assert_close(dk1, arccos_k0(rho.detach()), rtol=1e-10, atol=0)


@pytest.mark.parametrize(
    ("dual", "phi", "dphi"),
    [
        (relu_dual, torch.relu, lambda z: (z > 0).double()),
        (erf_dual, torch.erf, lambda z: 2 / math.sqrt(math.pi) * torch.exp(-z * z)),
    ],
)
def test_dual_matches_monte_carlo(dual, phi, dphi):
    """Both expectations within 5 Monte Carlo standard errors (400k Gaussian pairs)."""
    generator = torch.Generator().manual_seed(0)
    for var1, var2, correlation in [(1.0, 1.0, 0.5), (0.6, 2.2, -0.3), (1.5, 0.8, 0.9)]:
        z1, z2 = torch.randn(2, 400_000, generator=generator, dtype=F64)
        u = math.sqrt(var1) * z1
        v = math.sqrt(var2) * (correlation * z1 + math.sqrt(1 - correlation**2) * z2)
        cov = torch.tensor(correlation * math.sqrt(var1 * var2), dtype=F64)
        exact = dual(cov, torch.tensor(var1, dtype=F64), torch.tensor(var2, dtype=F64))
        for samples, value in zip((phi(u) * phi(v), dphi(u) * dphi(v)), exact, strict=True):
            standard_error = samples.std() / math.sqrt(len(samples))
            assert abs(samples.mean() - value) < 5 * standard_error


@pytest.mark.parametrize("depth", [1, 2, 4])
def test_arccos_recursion_is_the_he_init_special_case(depth):
    """Sigma_l = k1(Sigma_{l-1}), Theta_l = Sigma_l + Theta_{l-1} k0 (Simon et al. 2022) equals the
    neural-tangents recursion with weight_std = [1, sqrt2, ..., sqrt2] and no biases."""
    rho = torch.linspace(-1, 1, 41, dtype=F64)
    paper = relu_arccos_nngp_ntk(rho, depth)
    general = relu_nngp_ntk(rho, depth=depth, weight_std=[1.0] + [math.sqrt(2)] * depth)
    for a, b in zip(paper, general, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)
    if depth == 1:  # the one-hidden-layer closed forms
        torch.testing.assert_close(paper[0], arccos_k1(rho))
        torch.testing.assert_close(paper[1], arccos_k1(rho) + rho * arccos_k0(rho))


@pytest.mark.parametrize(
    ("kernel_fn", "second_moment"),
    [
        (relu_nngp_ntk, lambda q: q / 2),
        (erf_nngp_ntk, lambda q: 2 / math.pi * torch.arcsin(2 * q / (1 + 2 * q))),
    ],
)
def test_nngp_diagonal_is_the_forward_variance_recursion(kernel_fn, second_moment):
    """K(x, x) = q_L with q_0 = sw0^2 |x|^2/d + sb0^2, q_l = swl^2 E[phi(z)^2 | q_{l-1}] + sbl^2."""
    x = torch.randn(6, 5, generator=torch.Generator().manual_seed(3), dtype=F64)
    weight_std, bias_std = [1.2, 1.6, 0.9, 1.3], [0.2, 0.5, 0.1, 0.4]
    nngp, _ = kernel_fn(*input_covariance(x), depth=3, weight_std=weight_std, bias_std=bias_std)
    q = weight_std[0] ** 2 * x.pow(2).mean(1) + bias_std[0] ** 2
    for w, b in zip(weight_std[1:], bias_std[1:], strict=True):
        q = w**2 * second_moment(q) + b**2
    torch.testing.assert_close(nngp.diagonal(), q, rtol=1e-12, atol=0)


def test_infinite_width_kernels_are_psd_and_reject_bad_scales():
    x = torch.randn(30, 6, dtype=F64)
    for kernel_fn in (relu_nngp_ntk, erf_nngp_ntk):
        for kernel in kernel_fn(*input_covariance(x), depth=3, weight_std=1.5, bias_std=0.1):
            torch.testing.assert_close(kernel, kernel.T)
            assert torch.linalg.eigvalsh(kernel).min() > -1e-10
    with pytest.raises(ValueError, match="weight_std has 2 entries but the net has 3 linear"):
        relu_nngp_ntk(0.5, depth=2, weight_std=[1.0, 2.0])


@pytest.mark.parametrize(
    ("activation", "kernel_fn"), [("relu", relu_nngp_ntk), ("erf", erf_nngp_ntk)]
)
def test_wide_one_hidden_layer_net_converges_to_the_analytic_kernels(activation, kernel_fn):
    """NTK parameterisation, sigma_w = 1.5, sigma_b = 0.1 (the ReLU scales of the official
    code of Simon et al. 2022).

    Finite-width fluctuations shrink like m^{-1/2}: measured relative Frobenius errors are
    ~0.10-0.17 at width 256 and ~0.02-0.05 at 4096 (3 seeds), hence the thresholds.
    """
    x = sphere(12, 8, seed=0)
    nngp, ntk = kernel_fn(*input_covariance(x), depth=1, weight_std=1.5, bias_std=0.1)
    errors = {}
    for width in (256, 4096):
        ntk_errors, nngp_errors = [], []
        for seed in range(2):
            torch.manual_seed(seed)
            net = MLP([8, width, 1], activation, "ntk", weight_std=1.5, bias_std=0.1).double()
            ntk_errors.append(float(relative_error(empirical_ntk(net, x), ntk)))
            with torch.no_grad():
                features = net.features(x)
            nngp_errors.append(
                float(relative_error(empirical_nngp(features, weight_std=1.5, bias_std=0.1), nngp))
            )
        errors[width] = (np.mean(ntk_errors), np.mean(nngp_errors))
    assert errors[4096][0] < 0.06 and errors[4096][1] < 0.06
    # 16x the width should cut the error ~4x; ask for 2x
    assert errors[4096][0] < errors[256][0] / 2 and errors[4096][1] < errors[256][1] / 2


@pytest.mark.parametrize(
    ("activation", "kernel_fn"), [("relu", relu_nngp_ntk), ("erf", erf_nngp_ntk)]
)
def test_wide_two_hidden_layer_net_converges_to_the_analytic_kernels(activation, kernel_fn):
    """Depth 2, per-layer scales, inputs off the sphere. Measured relative errors for these
    seeds: NTK at width 1024 0.092 (relu) / 0.103 (erf); NNGP at 4096 0.045 / 0.032; a
    missing sigma_w^2 in the NTK recursion gives > 0.3 (depth-1 test)."""
    x = torch.randn(10, 5, generator=torch.Generator().manual_seed(2), dtype=F64)
    weight_std, bias_std = [1.2, 1.6, 0.9], [0.2, 0.3, 0.1]
    nngp, ntk = kernel_fn(*input_covariance(x), depth=2, weight_std=weight_std, bias_std=bias_std)
    torch.manual_seed(0)
    net = MLP([5, 1024, 1024, 1], activation, "ntk", weight_std, bias_std).double()
    assert relative_error(empirical_ntk(net, x), ntk) < 0.12
    torch.manual_seed(1)
    net = MLP([5, 4096, 4096, 1], activation, "ntk", weight_std, bias_std).double()
    with torch.no_grad():
        features = net.features(x)
    assert relative_error(empirical_nngp(features, weight_std=0.9, bias_std=0.1), nngp) < 0.08

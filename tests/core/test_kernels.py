"""Neural kernels and kernel ridge regression against exact references and closed forms."""

import math

import numpy as np
import pytest
import torch

from dlt_runner.core.kernels import (
    SpectralKernelRidge,
    arccos_k0,
    arccos_k1,
    empirical_nngp,
    empirical_ntk,
    erf_dual,
    erf_nngp_ntk,
    input_covariance,
    kernel_alignment,
    kernel_ridge_predict,
    relu_arccos_nngp_ntk,
    relu_dual,
    relu_nngp_ntk,
)
from dlt_runner.nn import MLP

F64 = torch.float64


@pytest.fixture
def small_net():
    torch.manual_seed(0)
    return MLP([3, 7, 5, 4], "tanh", "ntk", weight_std=[1.2, 0.9, 1.1], bias_std=0.3).double()


@pytest.fixture
def points():
    generator = torch.Generator().manual_seed(1)
    return torch.randn(5, 3, generator=generator, dtype=F64), torch.randn(
        4, 3, generator=generator, dtype=F64
    )


def jacobian_by_loop(model, x, names=None):
    """{name: (n, C, P_name)} from one autograd.grad call per sample and per output."""
    params = dict(model.named_parameters())
    names = list(params) if names is None else names
    rows = []
    for sample in x:
        out = model(sample[None]).reshape(-1)
        per_output = []
        for c in range(len(out)):
            grads = torch.autograd.grad(out[c], [params[n] for n in names], retain_graph=True)
            per_output.append([g.reshape(-1) for g in grads])
        rows.append(per_output)
    return {
        name: torch.stack([torch.stack([row[c][k] for c in range(len(row))]) for row in rows])
        for k, name in enumerate(names)
    }


def kernel_from_jacobians(j1, j2, output):
    full = sum(torch.einsum("iap,jbp->ijab", j1[n], j2[n]) for n in j1)
    if output == "full":
        return full
    if output == "trace":
        return full.diagonal(0, 2, 3).sum(-1)
    if output == "sum":
        return full.sum((2, 3))
    return full[:, :, output, output]


def sphere(n, d, seed):
    x = torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=F64)
    return x / x.norm(dim=1, keepdim=True) * math.sqrt(d)


def relative_error(estimate, reference):
    return ((estimate - reference).norm() / reference.norm()).item()


# --- empirical NTK: exactness -------------------------------------------------------------


@pytest.mark.parametrize("output", ["sum", "trace", "full", 2, -1])
@pytest.mark.parametrize("cross", [False, True])
def test_empirical_ntk_equals_per_sample_gradient_loop(small_net, points, output, cross):
    x1, x2 = points
    j1 = jacobian_by_loop(small_net, x1)
    j2 = jacobian_by_loop(small_net, x2) if cross else j1
    expected = kernel_from_jacobians(j1, j2, output)
    kernel = empirical_ntk(small_net, x1, x2 if cross else None, output=output, chunk_size=2)
    torch.testing.assert_close(kernel, expected, rtol=1e-10, atol=1e-12)


def test_per_layer_kernels_match_loop_and_sum_to_the_whole(small_net, points):
    x1, x2 = points
    per_layer = empirical_ntk(small_net, x1, x2, output="trace", per_layer=True)
    assert list(per_layer) == ["layers.0", "layers.1", "layers.2"]
    j1, j2 = jacobian_by_loop(small_net, x1), jacobian_by_loop(small_net, x2)
    for name, kernel in per_layer.items():
        owned = [n for n in j1 if n.startswith(name + ".")]
        expected = kernel_from_jacobians(
            {n: j1[n] for n in owned}, {n: j2[n] for n in owned}, "trace"
        )
        torch.testing.assert_close(kernel, expected, rtol=1e-10, atol=1e-12)
    whole = empirical_ntk(small_net, x1, x2, output="trace")
    torch.testing.assert_close(sum(per_layer.values()), whole, rtol=1e-12, atol=1e-12)


def test_parameter_subset_is_the_kernel_of_those_parameters(small_net, points):
    """Paper 07's J_l = df/dW_l: weights only."""
    x1, _ = points
    weights = ["layers.0.weight", "layers.1.weight", "layers.2.weight"]
    kernel = empirical_ntk(small_net, x1, output="trace", parameters=weights, per_layer=True)
    j = jacobian_by_loop(small_net, x1, weights)
    for name in weights:
        expected = kernel_from_jacobians({name: j[name]}, {name: j[name]}, "trace")
        torch.testing.assert_close(kernel[name.rpartition(".")[0]], expected, rtol=1e-10, atol=0)


def test_symmetric_and_positive_semidefinite(small_net):
    x = torch.randn(9, 3, dtype=F64)
    kernel = empirical_ntk(small_net, x, output="trace", chunk_size=4)
    assert torch.equal(kernel, kernel.T)
    eigenvalues = torch.linalg.eigvalsh(kernel)
    assert eigenvalues.min() > -1e-12 * eigenvalues.max()
    full = empirical_ntk(small_net, x, output="full", chunk_size=4)
    assert torch.equal(full, full.permute(1, 0, 3, 2))
    # the (n C) x (n C) matrix of all output pairs is a Gram matrix too
    flat = full.permute(0, 2, 1, 3).reshape(9 * 4, 9 * 4)
    assert torch.linalg.eigvalsh(flat).min() > -1e-12 * eigenvalues.max()


@pytest.mark.parametrize("cross", [False, True])
def test_chunking_does_not_change_the_kernel(small_net, points, cross):
    x1, x2 = torch.randn(7, 3, dtype=F64), (points[1] if cross else None)
    reference = empirical_ntk(small_net, x1, x2, output="full", chunk_size=100)
    for chunk_size in (1, 2, 3):
        kernel = empirical_ntk(small_net, x1, x2, output="full", chunk_size=chunk_size)
        torch.testing.assert_close(kernel, reference, rtol=1e-12, atol=1e-14)


class CountingNet(torch.nn.Module):
    """Counts forward passes: one per Jacobian block (vmap traces the forward once)."""

    def __init__(self, net):
        super().__init__()
        self.net, self.calls = net, 0

    def forward(self, x):
        self.calls += 1
        return self.net(x)


@pytest.mark.parametrize(("cross", "expected_calls"), [(False, 1 + 3 + 3), (True, 1 + 3 + 3 * 2)])
def test_automatic_block_size_follows_the_memory_budget(small_net, points, cross, expected_calls):
    """4 outputs x 92 parameters x 8 bytes per sample: a budget of 3 samples gives 3 row
    blocks of the 7 points; the symmetric kernel computes only the upper block triangle.
    One more forward pass reads the number of outputs."""
    x1, x2 = torch.randn(7, 3, dtype=F64), (points[1] if cross else None)
    counting = CountingNet(small_net)
    kernel = empirical_ntk(counting, x1, x2, output="full", block_bytes=3 * 4 * 92 * 8 + 7)
    assert counting.calls == expected_calls
    reference = empirical_ntk(small_net, x1, x2, output="full", chunk_size=100)
    torch.testing.assert_close(kernel, reference, rtol=1e-12, atol=1e-14)


def test_sum_trace_full_relations(small_net, points):
    x1, x2 = points
    full = empirical_ntk(small_net, x1, x2, output="full")
    assert full.shape == (5, 4, 4, 4)
    summed = empirical_ntk(small_net, x1, x2, output="sum")
    trace = empirical_ntk(small_net, x1, x2, output="trace")
    torch.testing.assert_close(summed, full.sum((2, 3)), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(trace, full.diagonal(0, 2, 3).sum(-1), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(empirical_ntk(small_net, x1, x2, output=1), full[:, :, 1, 1])
    # with one output all four coincide
    torch.manual_seed(0)
    scalar_net = MLP([3, 6, 1], "tanh").double()
    kernels = [empirical_ntk(scalar_net, x1, x2, output=o) for o in ("sum", "trace", 0)]
    for kernel in kernels[1:]:
        torch.testing.assert_close(kernel, kernels[0], rtol=1e-14, atol=0)


def test_dtype_argument_computes_in_float64_without_touching_the_model(small_net, points):
    x1, x2 = points
    single = MLP([3, 7, 5, 4], "tanh", "ntk", [1.2, 0.9, 1.1], 0.3)
    single.load_state_dict({k: v.float() for k, v in small_net.state_dict().items()})
    # the float64 reference must see the same (float32-rounded) weights
    small_net.load_state_dict({k: v.double() for k, v in single.state_dict().items()})
    kernel = empirical_ntk(single, x1.float(), x2.float(), output="trace", dtype=F64)
    assert kernel.dtype == F64
    assert single.layers[0].weight.dtype == torch.float32
    expected = empirical_ntk(small_net, x1, x2, output="trace")
    torch.testing.assert_close(kernel, expected, rtol=1e-6, atol=1e-7)  # inputs were rounded


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"output": "diag"}, "unknown output 'diag'; choose one of: sum, trace, full"),
        ({"parameters": ["layers.9.weight"]}, r"unknown parameter\(s\) \['layers.9.weight'\]"),
        ({"parameters": []}, "no parameters to differentiate"),
        ({"chunk_size": 0}, "chunk_size must be a positive int or None"),
    ],
)
def test_bad_arguments(small_net, points, kwargs, message):
    with pytest.raises(ValueError, match=message):
        empirical_ntk(small_net, points[0], **kwargs)


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
    # and k0 = dk1/drho, the one-layer ReLU pair of paper 02 §2
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
def test_paper02_arccos_recursion_is_the_he_init_special_case(depth):
    """Sigma_l = k1(Sigma_{l-1}), Theta_l = Sigma_l + Theta_{l-1} k0 (paper 02 §2) equals the
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
    with pytest.raises(ValueError, match="weight_std has 2 entries but depth 2 needs 3"):
        relu_nngp_ntk(0.5, depth=2, weight_std=[1.0, 2.0])


@pytest.mark.parametrize(
    ("activation", "kernel_fn"), [("relu", relu_nngp_ntk), ("erf", erf_nngp_ntk)]
)
def test_wide_one_hidden_layer_net_converges_to_the_analytic_kernels(activation, kernel_fn):
    """NTK parameterisation, sigma_w = 1.5, sigma_b = 0.1 (paper 02's official ReLU scales).

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
            ntk_errors.append(relative_error(empirical_ntk(net, x), ntk))
            with torch.no_grad():
                features = net.features(x)
            nngp_errors.append(
                relative_error(empirical_nngp(features, weight_std=1.5, bias_std=0.1), nngp)
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


# --- kernel-target alignment --------------------------------------------------------------


def test_alignment_of_the_label_kernel_is_one_and_scale_invariant():
    generator = torch.Generator().manual_seed(0)
    Y = torch.nn.functional.one_hot(torch.randint(0, 3, (20,), generator=generator), 3).double()
    assert kernel_alignment(Y @ Y.T, Y) == pytest.approx(1.0, abs=1e-12)
    features = torch.randn(20, 8, generator=generator, dtype=F64)
    K = features @ features.T
    reference = kernel_alignment(K, Y)
    for scale in (1e-30, 1e-3, 1e30):  # vanishing / exploding tangent kernels (paper 07 §6)
        assert kernel_alignment(scale * K, Y) == pytest.approx(reference, rel=1e-12)
    assert kernel_alignment(K.float(), Y.float()) == pytest.approx(reference, rel=1e-5)


def test_alignment_matches_its_definition_and_is_nan_safe():
    generator = torch.Generator().manual_seed(1)
    features = torch.randn(15, 4, generator=generator, dtype=F64)
    K, y = features @ features.T, torch.randn(15, generator=generator, dtype=F64)
    target = np.outer(y.numpy(), y.numpy())
    expected = (K.numpy() * target).sum() / (np.linalg.norm(K.numpy()) * np.linalg.norm(target))
    assert kernel_alignment(K, y) == pytest.approx(expected, rel=1e-12)
    H = np.eye(15) - 1 / 15
    Kc, Tc = H @ K.numpy() @ H, H @ target @ H
    expected = (Kc * Tc).sum() / (np.linalg.norm(Kc) * np.linalg.norm(Tc))
    assert kernel_alignment(K, y, centered=True) == pytest.approx(expected, rel=1e-12)
    assert kernel_alignment(torch.zeros(15, 15), y) == 0.0


# --- kernel ridge regression --------------------------------------------------------------


@pytest.fixture
def regression_problem():
    generator = torch.Generator().manual_seed(0)
    X = torch.randn(40, 6, generator=generator, dtype=F64)
    X_test = torch.randn(25, 6, generator=generator, dtype=F64)
    nngp_train, _ = relu_nngp_ntk(*input_covariance(X), depth=2, weight_std=1.4, bias_std=0.2)
    nngp_test, _ = relu_nngp_ntk(
        *input_covariance(X_test, X), depth=2, weight_std=1.4, bias_std=0.2
    )
    Y = torch.randn(40, 3, generator=generator, dtype=F64)
    return nngp_train, Y, nngp_test


def test_kernel_ridge_predict_equals_a_direct_solve(regression_problem):
    K, Y, K_test = regression_problem
    for ridge in (1e-6, 1e-2, 1.0):
        expected = K_test.numpy() @ np.linalg.solve(K.numpy() + 40 * ridge * np.eye(40), Y.numpy())
        prediction = kernel_ridge_predict(K, Y, K_test, ridge)
        np.testing.assert_allclose(prediction.numpy(), expected, rtol=1e-8, atol=1e-10)
    assert kernel_ridge_predict(K, Y[:, 0], K_test, 0.1).shape == (25,)


@pytest.mark.parametrize("one_output", [False, True])
def test_spectral_ridge_path_equals_per_ridge_direct_solves(regression_problem, one_output):
    K, Y, K_test = regression_problem
    Y = Y[:, 0] if one_output else Y
    ridges = torch.logspace(-6, 0, 7, dtype=F64)
    path = SpectralKernelRidge(K, Y)
    predictions, residuals = path.predict(K_test, ridges), path.train_residuals(ridges)
    coefficients, smoother = path.dual_coefficients(ridges), path.smoother_eigenvalues(ridges)
    assert predictions.shape == (7, 25, *Y.shape[1:]) and residuals.shape == (7, *Y.shape)
    for g, ridge in enumerate(ridges.tolist()):
        system = K + 40 * ridge * torch.eye(40, dtype=F64)
        alpha = torch.linalg.solve(system, Y)
        S = K @ torch.linalg.inv(system)
        torch.testing.assert_close(coefficients[g], alpha, rtol=1e-7, atol=1e-8)
        torch.testing.assert_close(predictions[g], K_test @ alpha, rtol=1e-8, atol=1e-10)
        torch.testing.assert_close(residuals[g], Y - S @ Y, rtol=1e-8, atol=1e-10)
        assert smoother[g].sum().item() == pytest.approx(torch.trace(S).item(), rel=1e-9)
        single = path.predict(K_test, ridge)
        torch.testing.assert_close(single, predictions[g], rtol=1e-12, atol=0)

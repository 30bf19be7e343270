"""Paper 02 (ntk_reverse): Hermite activations, kernel design rules and fit against closed forms."""

import math

import numpy as np
import pytest
import torch

from dlt_runner.core.errors import ConfigError
from dlt_runner.papers.ntk_reverse import claim
from dlt_runner.papers.ntk_reverse.hermite import (
    HermiteActivation,
    activation_coefficients,
    hermite_dual,
    hermite_kernel,
    hermite_polynomials,
    kernel_coefficients,
    mimic_activation,
    monomial_coefficients,
)
from dlt_runner.papers.ntk_reverse.kernel_fit import PolynomialFit, power_series
from dlt_runner.papers.ntk_reverse.module import KernelMimicModule, check_on_sphere
from dlt_runner.papers.ntk_reverse.nets import DeepKernel, DeepNet, ShallowNet
from dlt_runner.sweeps.runs import Run, select
from dlt_runner.theory.closed_form_kernels import (
    arccos_k0,
    arccos_k1,
    deep_nngp_ntk,
    input_covariance,
    relu_arccos_nngp_ntk,
)
from dlt_runner.theory.entk import empirical_ntk

from helpers import train_full_batch

F64 = torch.float64


def gauss_hermite(points: int = 120) -> tuple[torch.Tensor, torch.Tensor]:
    """Nodes and weights with sum_i w_i f(z_i) = E_{z~N(0,1)} f(z), exact for degree < 2*points."""
    nodes, weights = np.polynomial.hermite_e.hermegauss(points)
    return torch.tensor(nodes), torch.tensor(weights / math.sqrt(2 * math.pi))


def relu_hermite_coefficients(degree: int) -> torch.Tensor:
    """ReLU = sum_k a_k h_k: a_0 = 1/sqrt(2 pi), a_1 = 1/2, odd k >= 3 vanish, and for even
    k >= 2 a_k = (-1)^(k/2 - 1) (k-3)!! / sqrt(2 pi k!) (int_0^inf z He_k phi = He_{k-2}(0) phi(0)),
    i.e. a_2 = 1/sqrt(4 pi) and a_{k+2} = -a_k (k - 1) / sqrt((k + 1)(k + 2))."""
    a = torch.zeros(degree + 1, dtype=F64)
    a[0], a[1] = 1 / math.sqrt(2 * math.pi), 0.5
    if degree >= 2:
        a[2] = 1 / math.sqrt(4 * math.pi)
    for k in range(2, degree - 1, 2):
        a[k + 2] = -a[k] * (k - 1) / math.sqrt((k + 1) * (k + 2))
    return a


def sphere(n: int, d: int, seed: int) -> torch.Tensor:
    x = torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=F64)
    return x / x.norm(dim=1, keepdim=True) * math.sqrt(d)


# --- Hermite polynomials and the activation ---------------------------------------------------


def test_hermite_polynomials_are_orthonormal_and_equal_he_k_over_sqrt_k_factorial():
    z, w = gauss_hermite()
    basis = hermite_polynomials(z, 12)  # products have degree <= 24 < 240: quadrature is exact
    gram = basis.T @ (w[:, None] * basis)
    torch.testing.assert_close(gram, torch.eye(13, dtype=F64), rtol=0, atol=1e-11)
    for k in range(13):
        coefficients = np.zeros(k + 1)
        coefficients[k] = 1 / math.sqrt(math.factorial(k))
        reference = torch.tensor(np.polynomial.hermite_e.hermeval(z.numpy(), coefficients))
        torch.testing.assert_close(basis[:, k], reference, rtol=1e-10, atol=1e-8)


def test_monomial_coefficients_of_h2_and_h3():
    # h_2 = (z^2 - 1) / sqrt 2, h_3 = (z^3 - 3 z) / sqrt 6
    c2 = monomial_coefficients(torch.tensor([0.0, 0.0, 1.0]))
    torch.testing.assert_close(c2, torch.tensor([-1.0, 0.0, 1.0], dtype=F64) / math.sqrt(2))
    c3 = monomial_coefficients(torch.tensor([0.0, 0.0, 0.0, 1.0]))
    torch.testing.assert_close(c3, torch.tensor([0.0, -3.0, 0.0, 1.0], dtype=F64) / math.sqrt(6))


@pytest.mark.parametrize("degree", [0, 1, 4, 10, 13])  # 13 takes the recurrence path
def test_activation_equals_its_hermite_series_with_the_right_derivative(degree):
    a = torch.randn(degree + 1, generator=torch.Generator().manual_seed(degree), dtype=F64)
    activation = HermiteActivation(a)
    z = torch.linspace(-4, 4, 41, dtype=F64, requires_grad=True)
    torch.testing.assert_close(activation(z), hermite_polynomials(z, degree) @ a)
    (derivative,) = torch.autograd.grad(activation(z).sum(), z)
    # h_k' = sqrt(k) h_{k-1}
    expected = hermite_polynomials(z, degree) @ torch.cat(
        [a[1:] * torch.arange(1, degree + 1, dtype=F64).sqrt(), a.new_zeros(1)]
    )
    torch.testing.assert_close(derivative, expected)
    assert torch.autograd.gradgradcheck(activation, (z[:5].detach().requires_grad_(),))


def test_activation_survives_a_state_dict_round_trip():
    source, target = HermiteActivation([0.5, 1.0, 0.3]), HermiteActivation([1.0, 0.0, 0.0])
    target.load_state_dict(source.state_dict())
    z = torch.linspace(-2, 2, 5)
    torch.testing.assert_close(target(z), source(z))


# --- the kernel of a Hermite series ------------------------------------------------------------


def bivariate_expectation(f, g, rho: float) -> float:
    """E[f(u) g(v)] for unit Gaussians with correlation rho, by tensor-product quadrature."""
    z, w = gauss_hermite(60)
    u = z[:, None]
    v = rho * z[:, None] + math.sqrt(1 - rho**2) * z[None, :]
    return float((w[:, None] * w[None, :] * f(u) * g(v)).sum())


@pytest.mark.parametrize("rho", [-0.8, -0.3, 0.0, 0.45, 0.9])
def test_nngp_and_ntk_of_a_hermite_series_match_gaussian_expectations(rho):
    a = torch.tensor([0.4, -0.7, 0.5, 0.2, -0.3], dtype=F64)
    activation = HermiteActivation(a)

    def derivative(z):
        z = z.detach().requires_grad_()
        return torch.autograd.grad(activation(z).sum(), z)[0]

    nngp = bivariate_expectation(activation, activation, rho)
    ntk = nngp + rho * bivariate_expectation(derivative, derivative, rho)
    assert hermite_kernel(a, torch.tensor(rho, dtype=F64), "nngp").item() == pytest.approx(
        nngp, abs=1e-12
    )
    assert hermite_kernel(a, torch.tensor(rho, dtype=F64), "ntk").item() == pytest.approx(
        ntk, abs=1e-12
    )


def test_hermite_dual_through_the_core_recursion_is_the_shallow_kernel():
    a = torch.tensor([1.0, 0.5, 0.0, 0.3], dtype=F64)
    rho = torch.linspace(-1, 1, 9, dtype=F64)
    nngp, ntk = deep_nngp_ntk(hermite_dual(a), rho, depth=1)
    torch.testing.assert_close(nngp, hermite_kernel(a, rho, "nngp"))
    torch.testing.assert_close(ntk, hermite_kernel(a, rho, "ntk"))
    with pytest.raises(ValueError, match="unit variances"):
        hermite_dual(a)(rho, torch.tensor(2.0), torch.tensor(1.0))


def test_empirical_ntk_of_shallow_net_is_the_finite_width_formula_exactly():
    """Theta = [phi phi'^T + rho * (phi' diag(v^2) phi'^T)] / m for the logit of readout row v."""
    torch.manual_seed(0)
    x = sphere(6, 5, seed=1)
    net = ShallowNet(5, 300, 3, HermiteActivation([0.3, 1.0, -0.5, 0.4])).double()
    kernel = empirical_ntk(net, x, output=1)
    z = net.layers[0](x).detach().requires_grad_()
    phi = net.activation(z)
    (phi_prime,) = torch.autograd.grad(phi.sum(), z)
    v = net.layers[1].weight[1].detach()
    rho = input_covariance(x)[0]
    expected = (phi @ phi.T + rho * ((phi_prime * v**2) @ phi_prime.T)) / 300
    torch.testing.assert_close(kernel, expected.detach(), rtol=1e-10, atol=1e-12)


def test_wide_shallow_net_realises_its_designed_ntk():
    """Finite-width fluctuations are O(m^-1/2): at m = 2^15 the measured error is ~0.005 for this
    degree-2 activation; 0.03 leaves a wide margin."""
    torch.manual_seed(3)
    x = sphere(5, 16, seed=4)
    a = torch.tensor([0.6, 0.8, 0.4], dtype=F64)
    net = ShallowNet(16, 2**15, 1, HermiteActivation(a)).double()
    kernel = empirical_ntk(net, x, output=0)
    designed = hermite_kernel(a, input_covariance(x)[0], "ntk")
    assert ((kernel - designed).norm() / designed.norm()).item() < 0.03


# --- the design rule (main theorem) --------------------------------------------------------------


@pytest.mark.parametrize("kind", ["nngp", "ntk"])
def test_design_rule_inverts_the_kernel_map(kind):
    a = torch.tensor([0.9, -0.4, 0.0, 0.25, -0.1], dtype=F64)
    b = kernel_coefficients(a, kind)
    recovered = activation_coefficients(b, kind, signs=[1, -1, 1, 1, -1])
    torch.testing.assert_close(recovered, a)
    rho = torch.linspace(-1, 1, 7, dtype=F64)
    torch.testing.assert_close(hermite_kernel(recovered, rho, kind), power_series(b, rho))


def test_design_rule_rejects_unrealisable_kernels_and_unknown_kinds():
    with pytest.raises(ValueError, match="non-negative"):
        activation_coefficients([1.0, -0.5], "nngp")
    with pytest.raises(ConfigError, match="choose one of: nngp, ntk"):
        activation_coefficients([1.0], "cntk")
    with pytest.raises(ValueError, match="signs"):
        activation_coefficients([1.0, 1.0], "ntk", signs=[1, 2])


def test_polynomial_kernel_is_realised_by_its_closed_form_activation():
    """K(rho) = 1 + 2 rho^2 is the NNGP of phi(z) = z^2 = h_0 + sqrt(2) h_2; fitting K from samples
    and applying the rule must return phi exactly (up to the NNLS solve's round-off)."""

    def target(rho):
        return 1 + 2 * rho**2

    target.kind = "nngp"
    activation = mimic_activation(target, PolynomialFit(degree=5))
    torch.testing.assert_close(
        activation.coefficients, torch.tensor([1, 0, math.sqrt(2), 0, 0, 0], dtype=F64)
    )
    z = torch.linspace(-3, 3, 13, dtype=F64)
    torch.testing.assert_close(activation(z), z**2)


def test_arc_cosine_kernel_is_the_nngp_and_ntk_of_relus_hermite_series():
    """The construction for the arc-cosine kernel recovers ReLU: k1(rho)/2 = E[relu(u) relu(v)]
    has power series a_k^2 with a_k ReLU's Hermite coefficients, and the NTK rule gives
    (k1 + rho k0)/2. 400 terms: the tails at |rho| <= 0.9 are below 1e-12."""
    a = relu_hermite_coefficients(400)
    rho = torch.linspace(-0.9, 0.9, 19, dtype=F64)
    torch.testing.assert_close(hermite_kernel(a, rho, "nngp"), arccos_k1(rho) / 2)
    torch.testing.assert_close(
        hermite_kernel(a, rho, "ntk"), (arccos_k1(rho) + rho * arccos_k0(rho)) / 2
    )
    signs = torch.where(a < 0, -1.0, 1.0).tolist()
    torch.testing.assert_close(activation_coefficients(a**2, "nngp", signs), a)


def test_fitted_arc_cosine_kernel_gives_back_relu():
    """End to end from samples of k1/2: the leading coefficients b_0, b_1, b_2 = 1/(2 pi), 1/4,
    1/(4 pi) come back to 2e-3 (the fit trades the truncated tail for them), and the designed
    activation is ReLU up to E[(phi - relu)^2] < 0.02 E[relu^2] (measured 6e-3 / 0.5)."""

    def target(rho):
        return arccos_k1(rho) / 2

    target.kind = "nngp"
    fit = PolynomialFit(degree=8, drop_below=0.0)(target)
    exact = relu_hermite_coefficients(8) ** 2
    torch.testing.assert_close(fit.coefficients[:3], exact[:3], rtol=0, atol=2e-3)
    signs = torch.where(relu_hermite_coefficients(8) < 0, -1.0, 1.0).tolist()
    activation = HermiteActivation(activation_coefficients(fit.coefficients, "nngp", signs))
    z, w = gauss_hermite(200)
    assert float((w * (activation(z) - torch.relu(z)) ** 2).sum()) < 0.02 * 0.5


# --- the polynomial fit -------------------------------------------------------------------------


def test_fit_recovers_a_non_negative_polynomial_exactly():
    b = torch.tensor([0.5, 0.0, 1.0, 0.3, 0.0, 0.05], dtype=F64)
    fit = PolynomialFit(degree=5, grid_points=200)(lambda rho: power_series(b, rho))
    torch.testing.assert_close(fit.coefficients, b, rtol=0, atol=1e-9)
    assert fit.max_error < 1e-9


def test_fit_keeps_coefficients_non_negative_and_drops_tiny_ones():
    fit = PolynomialFit(degree=4, drop_below=1e-3)(lambda rho: 1 - rho + 1e-4 * rho**2)
    assert (fit.coefficients >= 0).all()
    assert fit.coefficients[2] == 0  # 1e-4 < drop_below
    assert fit.max_error > 0.5  # -rho cannot be represented


@pytest.mark.parametrize("endpoints, ends", [("both", 2), ("upper", 1)])
def test_each_weighted_endpoint_carries_its_weight_fraction(endpoints, ends):
    rho, weights = PolynomialFit(grid_points=101, endpoint_weight=0.1, endpoints=endpoints).grid()
    assert rho[0] == -1 and rho[-1] == 1
    assert weights[-1] / weights.sum() == pytest.approx(0.1)
    assert (weights[0] / weights.sum() == pytest.approx(0.1)) == (ends == 2)


def test_fit_rejects_bad_settings_with_the_valid_choices():
    with pytest.raises(ConfigError, match="choose one of: both, upper"):
        PolynomialFit(endpoints="lower")
    with pytest.raises(ConfigError, match="endpoint_weight"):
        PolynomialFit(endpoint_weight=0.6)


# --- deep baselines -----------------------------------------------------------------------------


def test_he_relu_kernel_is_the_papers_arc_cosine_recursion():
    rho = torch.linspace(-1, 1, 21, dtype=F64)
    kernel = DeepKernel("relu", depth=4, kind="ntk", init="he")
    nngp, ntk = relu_arccos_nngp_ntk(rho, 4)
    torch.testing.assert_close(kernel(rho), ntk)
    torch.testing.assert_close(kernel.nngp_ntk(rho)[0], nngp)
    assert kernel(torch.tensor(1.0)).item() == pytest.approx(5.0)  # Theta_L(1) = L + 1


def test_deep_net_layers_and_scales():
    net = DeepNet(64, 32, 10, depth=3, activation="erf", init="fig2")
    assert net.sizes == [64, 32, 32, 32, 10]
    assert net.weight_stds == [1.5, 1.5, 1.5, 1.0] and net.bias_stds == [0.3, 0.3, 0.3, 0.0]
    assert net(torch.randn(5, 64)).shape == (5, 10)
    with pytest.raises(ConfigError, match="choose one of: he, official, fig2"):
        DeepNet(64, 32, 10, init="xavier")
    with pytest.raises(ConfigError, match="choose one of: relu, erf"):
        DeepKernel(activation="tanh")


# --- the Lightning module -------------------------------------------------------------------------


class TinyDigits:
    """What the module's analysis reads from a datamodule: `tensors(split)` and `smoke`."""

    smoke = True

    def __init__(self) -> None:
        labels = torch.arange(60) % 3
        x = 0.3 * sphere(60, 8, seed=5) + torch.nn.functional.one_hot(labels, 8).double()
        x = x / x.norm(dim=1, keepdim=True) * math.sqrt(8)
        onehot = torch.nn.functional.one_hot(labels, 3).double() - 0.1
        self.splits = {
            "train": {"x": x[:40].float(), "y": labels[:40], "y_onehot": onehot[:40].float()},
            "test": {"x": x[40:].float(), "y": labels[40:], "y_onehot": onehot[40:].float()},
        }

    def tensors(self, split):
        return self.splits[split]


def make_module(width: int = 256) -> KernelMimicModule:
    torch.manual_seed(0)
    target, fit = DeepKernel(depth=2), PolynomialFit(degree=3)
    net = ShallowNet(8, width, 3, mimic_activation(target, fit))
    return KernelMimicModule(
        net, lambda params: torch.optim.SGD(params, lr=0.5), target, fit, kernel_width=64
    )


def test_module_trains_the_centred_output_and_reports_the_analysis():
    module, data = make_module(), TinyDigits()
    batch = data.tensors("train")
    assert module.predict(batch["x"]).abs().max() == 0  # f - f_0 vanishes at initialisation
    losses = train_full_batch(module, batch, 20)
    assert losses[-1] < 0.5 * losses[0]
    assert len(module.trainable_parameters()) == 2  # the frozen f_0 copy is not optimised
    module.eval()
    results = module.analysis(data)
    for name in ("kernel_rel_err", "kernel_rel_err_target", "acc_kernel_target", "acc_gap"):
        assert math.isfinite(results[name])
    assert results["acc_kernel_target"] > 0.9 and results["acc_net"] > 0.9
    assert len(results["acc_relu_ntk"]) == len(results["baseline_depths"]) == 1  # smoke: 1 depth
    torch.testing.assert_close(
        kernel_coefficients(torch.tensor(results["activation_coefficients"]), "ntk"),
        torch.tensor(results["fit_coefficients"], dtype=F64),
    )


def test_inputs_off_the_sphere_are_refused():
    check_on_sphere(sphere(4, 8, seed=0))
    with pytest.raises(ConfigError, match="normalization=sphere"):
        check_on_sphere(2 * sphere(4, 8, seed=0))


def test_module_rejects_bad_sizes():
    target, fit = DeepKernel(), PolynomialFit()
    with pytest.raises(ConfigError, match="kernel_points"):
        KernelMimicModule(ShallowNet(4, 8, 2, "relu"), None, target, fit, kernel_points=1)


# --- the claim ----------------------------------------------------------------------------------


def make_run(seed: int, kernel_error: float, gap: float) -> Run:
    metrics = {
        "analysis/kernel_rel_err": kernel_error,
        "analysis/kernel_rel_err_target": kernel_error + 0.02,
        "analysis/kernel_width": 8192.0,
        "analysis/acc_gap": gap,
        "analysis/acc_net": 0.97,
        "analysis/acc_kernel_target": 0.97 + gap,
        "analysis/acc_kernel_designed": 0.98,
        "analysis/fit_max_error": 0.37,
    }
    return Run("main", {"seed": str(seed)}, "ok", metrics, {}, None)


def test_verdict_holds_when_both_inequalities_hold():
    verdict = claim.verdict([make_run(0, 0.05, 0.01), make_run(1, 0.06, 0.02)])
    assert verdict.holds and len(verdict.checks) == 2
    assert len(select([make_run(0, 0.05, 0.01)], sweep="main", seed=0)) == 1


@pytest.mark.parametrize("kernel_error, gap", [(0.12, 0.01), (0.05, 0.04)])
def test_verdict_fails_when_either_inequality_fails(kernel_error, gap):
    verdict = claim.verdict([make_run(0, kernel_error, gap), make_run(1, kernel_error, gap)])
    assert not verdict.holds
    assert sum(not check.holds for check in verdict.checks) == 1

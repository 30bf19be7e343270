"""Paper 07 (signal_prop_tka): per-layer tangent kernels and alignment, signal propagation, the
module and the claim's verdict, against closed forms where the maths is exact."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from dlt_runner.core.errors import ConfigError
from dlt_runner.data.digits import DigitsData
from dlt_runner.nn.mlp import MLP
from dlt_runner.papers.signal_prop_tka.alignment import (
    alignment_peak,
    centered_labels,
    chi1,
    fixed_point_variance,
    forward_variances,
    gaussian_expectation,
    jacobian_layer_kernels,
    layer_alignments,
    layer_tangent_kernels,
    length_map,
    mean_field_variances,
    weight_gradient_norms,
)
from dlt_runner.papers.signal_prop_tka.claim import mean_curve, verdict
from dlt_runner.papers.signal_prop_tka.module import SignalPropModule
from dlt_runner.papers.signal_prop_tka.nets import DeepMLP
from dlt_runner.sweeps.runs import Run
from dlt_runner.theory.alignment import kernel_alignment

from helpers import train_full_batch

F64 = torch.float64
# float64 kernels of O(1) entries from sums of a few hundred products: round-off ~1e-15.
EXACT = 1e-12


def one_hot(labels: list[int], n_classes: int) -> torch.Tensor:
    return torch.nn.functional.one_hot(torch.tensor(labels), n_classes).to(F64)


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


# ------------------------------------------------------------------------------ alignment


def test_centred_labels_make_the_label_kernel_its_own_best_alignment():
    labels = centered_labels(one_hot([0, 1, 2, 1, 0, 2, 2], 3))
    assert torch.allclose(labels.sum(0), torch.zeros(3, dtype=F64), atol=1e-15)
    target = labels @ labels.T
    assert layer_alignments({"a": 3.7 * target}, labels) == pytest.approx([1.0], abs=EXACT)


def test_alignment_of_a_mixture_with_a_constant_kernel_is_its_closed_form():
    # Centred labels are orthogonal to 11^T, so K = a T/|T| + b 11^T/n (two orthonormal
    # directions) has A = a / sqrt(a^2 + b^2); a constant kernel alone has A = 0.
    labels = centered_labels(one_hot([0, 1, 2, 3, 1, 0, 2, 3, 3], 4))
    n = len(labels)
    target = labels @ labels.T
    unit_target = target / torch.linalg.norm(target)
    unit_constant = torch.ones(n, n, dtype=F64) / n
    a, b = 0.6, 1.7
    kernels = {"mixture": a * unit_target + b * unit_constant, "constant": unit_constant}
    expected = [a / math.hypot(a, b), 0.0]
    assert layer_alignments(kernels, labels) == pytest.approx(expected, abs=EXACT)


def test_alignment_peak_reports_one_based_layer_and_gaps_and_ignores_nan():
    peak = alignment_peak([0.1, 0.5, 0.3, 0.45])
    assert (peak.layer, peak.n_layers, peak.is_hidden) == (2, 4, True)
    assert (peak.minus_first, peak.minus_last) == pytest.approx((0.4, 0.05))
    assert not alignment_peak([0.5, 0.3, 0.1]).is_hidden
    assert not alignment_peak([0.1, 0.3, 0.5]).is_hidden
    assert alignment_peak([float("nan"), 0.2, 0.1]).layer == 2


# ------------------------------------------------------------------------------ kernels


@pytest.mark.parametrize("parameterization", ["standard", "ntk"])
@pytest.mark.parametrize("include_bias", [False, True])
def test_factored_layer_kernels_equal_per_sample_jacobian_kernels(parameterization, include_bias):
    torch.manual_seed(0)
    net = MLP(
        [5, 7, 6, 3],
        activation="tanh",
        parameterization=parameterization,
        weight_std=1.3,
        bias_std=0.4,
    )
    x = torch.randn(9, 5)
    factored = layer_tangent_kernels(net, x, include_bias=include_bias)
    reference = jacobian_layer_kernels(net, x, include_bias=include_bias)
    assert list(factored) == list(reference) == net.layer_names
    for name in reference:
        assert relative_error(factored[name], reference[name]) < EXACT


def test_linear_net_layer_kernels_by_hand():
    # f(x) = W3 W2 W1 x: df_c/dW_l = (e_c^T P_l)^T (Q_l x)^T with P_l = W3...W_{l+1},
    # Q_l = W_{l-1}...W1, so K_l = ||P_l||_F^2 (X Q_l^T)(X Q_l^T)^T.
    torch.manual_seed(1)
    net = MLP([4, 5, 3, 2], activation="identity", bias=False).double()
    w1, w2, w3 = (layer.weight.detach() for layer in net.layers)
    x = torch.randn(6, 4, dtype=F64)
    by_hand = {
        "layers.0": (w3 @ w2).pow(2).sum() * (x @ x.T),
        "layers.1": w3.pow(2).sum() * (x @ w1.T) @ (x @ w1.T).T,
        "layers.2": 2.0 * (x @ (w2 @ w1).T) @ (x @ (w2 @ w1).T).T,  # ||I_2||_F^2 = C = 2
    }
    for kernels in (layer_tangent_kernels(net, x), jacobian_layer_kernels(net, x)):
        for name, expected in by_hand.items():
            assert relative_error(kernels[name], expected) < EXACT


def test_layer_kernels_leave_the_net_untouched_and_are_float64():
    torch.manual_seed(2)
    net = MLP([3, 4, 2], activation="tanh")
    before = [p.clone() for p in net.parameters()]
    kernels = layer_tangent_kernels(net, torch.randn(5, 3))
    assert all(k.dtype == F64 and k.shape == (5, 5) for k in kernels.values())
    assert all(p.dtype == torch.float32 and p.grad is None for p in net.parameters())
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters(), strict=True))


# ------------------------------------------------------------------------------ signal propagation


def test_length_map_of_erf_matches_williams_closed_form():
    # E[erf(z)^2], z ~ N(0, q) = (2/pi) arcsin(2q / (1 + 2q)) (Williams 1997).
    q = torch.tensor([1e-3, 0.1, 1.0, 10.0, 300.0], dtype=F64)
    expected = 1.7**2 * (2 / math.pi) * torch.arcsin(2 * q / (1 + 2 * q)) + 0.3**2
    assert torch.allclose(length_map(q, 1.7, 0.3, "erf"), expected, rtol=1e-12, atol=0)


def test_chi1_of_erf_matches_closed_form_and_tanh_at_zero_variance_is_sigma_w_squared():
    # erf'(z) = 2/sqrt(pi) exp(-z^2): E[erf'(z)^2] = (4/pi) / sqrt(1 + 4q).
    for q in (0.01, 0.5, 3.0):
        expected = 1.2**2 * 4 / math.pi / math.sqrt(1 + 4 * q)
        assert chi1(q, 1.2, "erf") == pytest.approx(expected, rel=1e-12)
    assert chi1(0.0, 1.7, "tanh") == pytest.approx(1.7**2, rel=1e-12)  # tanh'(0) = 1


def test_identity_mean_field_variances_follow_the_linear_recursion():
    torch.manual_seed(3)
    x = torch.randn(10, 8, dtype=F64)
    weight_stds, bias_stds = [1.1, 0.9, 1.3, 0.7], [0.2, 0.1, 0.0, 0.4]
    q = weight_stds[0] ** 2 * x.pow(2).mean(1) + bias_stds[0] ** 2
    expected = [float(q.mean())]
    for w, b in zip(weight_stds[1:], bias_stds[1:], strict=True):
        q = w**2 * q + b**2
        expected.append(float(q.mean()))
    got = mean_field_variances(x, weight_stds, bias_stds, "identity")
    assert got == pytest.approx(expected, rel=1e-12)


def test_wide_tanh_net_forward_variances_match_mean_field():
    # Monte Carlo: width 1000, 40 inputs. Over 20 seeds the relative deviation per layer had a
    # std <= 0.017 and a mean ~0; 0.08 is ~5 std. The 10-unit readout is too noisy to compare.
    torch.manual_seed(4)
    x = torch.randn(40, 30)
    net = MLP([30, 1000, 1000, 1000, 1000, 10], activation="tanh", weight_std=1.5, bias_std=0.3)
    measured = forward_variances(net, x)[:-1]
    predicted = mean_field_variances(x, net.weight_stds, net.bias_stds, "tanh")[:-1]
    assert measured == pytest.approx(predicted, rel=0.08)
    assert predicted[-1] != pytest.approx(predicted[0], rel=0.1)  # the comparison is not trivial


def test_fixed_point_and_phases_of_tanh():
    for weight_std, bias_std, chaotic in [(0.8, 0.05, False), (2.0, 0.0, True)]:
        q_star = fixed_point_variance(weight_std, bias_std, "tanh")
        assert float(length_map(q_star, weight_std, bias_std, "tanh")) == pytest.approx(q_star)
        assert (chi1(q_star, weight_std, "tanh") > 1.0) == chaotic
    assert gaussian_expectation(lambda z: z**4, 2.0) == pytest.approx(3 * 2.0**2, rel=1e-12)


def test_weight_gradient_norms_of_a_linear_net_by_hand():
    # L = sum_i |W2 W1 x_i - y_i|^2 / (2n): dL/dW2 = R^T (X W1^T) / n, dL/dW1 = W2^T R^T X / n.
    torch.manual_seed(5)
    net = MLP([4, 3, 2], activation="identity", bias=False).double()
    w1, w2 = (layer.weight.detach() for layer in net.layers)
    x, y = torch.randn(7, 4, dtype=F64), torch.randn(7, 2, dtype=F64)
    loss = (net(x) - y).pow(2).sum() / (2 * len(x))
    residual = x @ w1.T @ w2.T - y
    expected = [
        float((w2.T @ residual.T @ x / 7).norm()),
        float((residual.T @ x @ w1.T / 7).norm()),
    ]
    assert weight_gradient_norms(net, loss) == pytest.approx(expected, rel=1e-12)
    assert all(p.grad is None for p in net.parameters())


# ------------------------------------------------------------------------------ net and module


def test_deep_mlp_builds_sizes_from_depth_and_rejects_zero_depth():
    net = DeepMLP(64, 16, depth=3, n_classes=10, weight_std=1.5, bias_std=0.05)
    assert net.sizes == [64, 16, 16, 16, 10] and len(net.layer_names) == 4
    assert net.weight_stds == [1.5] * 4
    with pytest.raises(ConfigError, match="depth"):
        DeepMLP(64, 16, depth=0, n_classes=10)


def small_module(**kwargs) -> SignalPropModule:
    torch.manual_seed(0)
    net = DeepMLP(64, 16, depth=3, n_classes=10, weight_std=1.0, bias_std=0.05)
    return SignalPropModule(net, lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9), **kwargs)


@pytest.fixture(scope="module")
def digits() -> DigitsData:
    data = DigitsData(splits={"train": 120, "val": 60}, seed=0)
    data.prepare()
    return data


def test_module_loss_decreases_over_a_few_steps(digits):
    module = small_module()
    losses = train_full_batch(module, digits.tensors("train"), 20)
    assert losses[-1] < 0.5 * losses[0]
    metrics = module.evaluate(digits.tensors("val"), "val")
    assert 0.0 <= float(metrics["acc"]) <= 1.0


def test_module_profile_and_analysis_cover_every_layer(digits):
    module = small_module(probe_points=40)
    probe, train = module._probe_batches(digits)
    assert len(probe["x"]) == len(train["x"]) == 40
    module.init_profile = module.profile(probe, train)
    lengths = {name: len(values) for name, values in module.init_profile.items()}
    assert lengths == {"align": 4, "q": 4, "grad_norm": 4}
    expected = [
        kernel_alignment(k, centered_labels(probe["y_onehot"]))
        for k in jacobian_layer_kernels(module.net, probe["x"]).values()
    ]
    assert module.init_profile["align"] == pytest.approx(expected, abs=1e-12)
    results = module.analysis(digits)
    assert len(results["align_final"]) == len(results["align_init"]) == 4
    assert results["n_layers"] == 4 and 1 <= results["peak_layer_init"] <= 4
    assert results["chi1"] < 1.0  # sigma_w = 1, sigma_b > 0: just on the ordered side

    checkpoint: dict = {}
    module.on_save_checkpoint(checkpoint)
    restored = small_module()
    restored.on_load_checkpoint(checkpoint)
    assert restored.init_profile == module.init_profile


@pytest.mark.parametrize(
    "bad",
    [{"loss": "hinge"}, {"kernel": "jacobi"}, {"probe_points": 1}, {"profile_every_n_epochs": -1}],
)
def test_module_rejects_bad_config_values(bad):
    with pytest.raises(ConfigError):
        small_module(**bad)


def test_unknown_probe_split_lists_the_splits(digits):
    with pytest.raises(ConfigError, match="choose one of: train, val"):
        small_module(probe_split="pretrain")._probe_batches(digits)


# ------------------------------------------------------------------------------ claim


ASCENT_DESCENT = [0.12, 0.30, 0.55, 0.70, 0.71, 0.64]
MONOTONE = [0.12, 0.30, 0.55, 0.70, 0.71, 0.72]


def claim_run(weight_std: str, seed: int, final: list[float], status: str = "ok") -> Run:
    init = [0.5 - 0.05 * i for i in range(len(final))]
    return Run(
        "main",
        {"model.net.weight_std": weight_std, "seed": str(seed)},
        status,
        {"analysis/chi1": 0.93, "val/acc": 0.9},
        {"analysis/align_final": final, "analysis/align_init": init},
        Path("."),
    )


def test_verdict_holds_on_an_ascent_descent_curve_at_sigma_w_one():
    runs = [
        claim_run("1.0", 0, ASCENT_DESCENT),
        claim_run("1.0", 1, ASCENT_DESCENT),
        claim_run("2.0", 0, MONOTONE),
        claim_run("1.0", 2, MONOTONE, status="diverged"),
    ]
    result = verdict(runs)
    assert result.holds and len(result.checks) == 3
    assert any(
        "sigma_w = 2" in note and "after training peak layer 6/6" in note for note in result.notes
    )


def test_verdict_fails_when_the_peak_is_the_readout_or_runs_are_missing():
    result = verdict([claim_run("1.0", 0, MONOTONE), claim_run("1", 1, MONOTONE)])
    assert not result.holds
    assert [check.holds for check in result.checks] == [False, True, False]
    assert not verdict([claim_run("2.0", 0, ASCENT_DESCENT)]).holds


def test_mean_curve_averages_elementwise():
    runs = [claim_run("1.0", 0, [0.0, 1.0]), claim_run("1.0", 1, [1.0, 2.0])]
    assert mean_curve(runs, "analysis/align_final") == pytest.approx([0.5, 1.5])
    assert mean_curve(runs, "analysis/missing") == []

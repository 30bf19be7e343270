"""The CFNNs and baselines: closed forms, equivalences, shapes and initialisation."""

from __future__ import annotations

import math

import pytest
import torch

from dlt_runner.core.errors import ConfigError
from dlt_runner.nn.resnet import ResNet
from dlt_runner.papers.coin_flipping.analysis import parameter_count
from dlt_runner.papers.coin_flipping.nets import (
    MEDIAN_ABS_NORMAL,
    AnalyticBallCFNN,
    GeneratedWeightsCFNN,
    HypernetCFNN,
    ReLUBaseline,
)
from dlt_runner.papers.coin_flipping.vote import pass_labels

SIGMAS = 5.0


def normal_cdf(t: float) -> float:
    return 0.5 * (1 + math.erf(t / math.sqrt(2)))


def test_analytic_cfnn_inside_probability_is_the_folded_normal_cdf():
    """P(pass says inside) = P(|N(0,1)| <= tau / ||x||) = 2 Phi(tau / ||x||) - 1."""
    net = AnalyticBallCFNN(input_dim=10)
    norms = torch.tensor([0.3, 0.8, 1.0, 1.2, 2.0], dtype=torch.float64)
    direction = torch.randn(5, 10, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    x = direction / direction.norm(dim=1, keepdim=True) * norms.unsqueeze(1)
    passes = 200_000
    logits = net(x, passes=passes, generator=torch.Generator().manual_seed(1))
    measured = pass_labels(logits).double().mean(0)
    expected = torch.tensor([2 * normal_cdf(MEDIAN_ABS_NORMAL / r) - 1 for r in norms.tolist()])
    assert torch.allclose(net.inside_probability(x), expected.double(), atol=1e-12)
    stderr = (expected * (1 - expected) / passes).sqrt()
    assert (measured - expected).abs().lt(SIGMAS * stderr).all(), (measured, expected)
    # On the sphere the pass is a fair coin, inside it says "inside" more often than not.
    assert expected[2] == pytest.approx(0.5, abs=1e-12)
    assert expected[1] > 0.5 > expected[3]


def test_analytic_cfnn_threshold_scales_with_the_radius_and_tau():
    net = AnalyticBallCFNN(input_dim=3, radius=2.0, tau=1.0)
    x = torch.tensor([[2.0, 0.0, 0.0]], dtype=torch.float64)
    assert float(net.inside_probability(x)) == pytest.approx(2 * normal_cdf(1.0) - 1, abs=1e-12)
    with pytest.raises(ConfigError, match="tau"):
        AnalyticBallCFNN(input_dim=3, tau=-1.0)


def test_analytic_cfnn_is_two_relu_neurons_and_a_threshold():
    net = AnalyticBallCFNN(input_dim=4, radius=1.5)
    x = torch.randn(6, 4, dtype=torch.float64)
    noise = torch.randn(7, 4, dtype=torch.float64)
    projection = noise @ x.T
    expected = net.tau * 1.5 - (torch.relu(projection) + torch.relu(-projection))
    assert torch.allclose(net.head(x, noise).squeeze(-1), expected, atol=1e-12)
    assert net.hidden_neurons == 2 and parameter_count(net) == 0


def test_generated_weights_cfnn_matches_explicit_per_pass_weights():
    torch.manual_seed(0)
    net = GeneratedWeightsCFNN(input_dim=5, hidden=3, noise_dim=4).double()
    with torch.no_grad():
        net.readout.normal_()
        net.hidden_bias.normal_()
        net.readout_bias.fill_(0.3)
    x, noise = torch.randn(8, 5, dtype=torch.float64), torch.randn(6, 4, dtype=torch.float64)
    weights = net.weights(noise)  # (passes, h, d) = m + A z
    hidden = torch.relu(torch.einsum("phd,bd->pbh", weights, x) + net.hidden_bias)
    expected = hidden @ net.readout + net.readout_bias
    assert net.head(x, noise).shape == (6, 8, 1)
    assert torch.allclose(net.head(x, noise).squeeze(-1), expected, atol=1e-12)


def test_generated_weights_cfnn_contains_the_analytic_cfnn():
    """m = 0, A = (I, -I), b = 0, v = (-1, -1), c = tau r: the same logits for the same noise."""
    d = 6
    analytic = AnalyticBallCFNN(input_dim=d).double()
    learned = GeneratedWeightsCFNN(input_dim=d, hidden=2).double()
    with torch.no_grad():
        learned.weight_mean.zero_()
        learned.weight_mixing.copy_(torch.stack([torch.eye(d), -torch.eye(d)]))
        learned.readout.fill_(-1.0)
        learned.readout_bias.fill_(analytic.tau * analytic.radius)
    x, noise = torch.randn(9, d, dtype=torch.float64), torch.randn(5, d, dtype=torch.float64)
    assert torch.allclose(learned.head(x, noise), analytic.head(x, noise), atol=1e-12)


def test_generated_weights_cfnn_initialisation():
    torch.manual_seed(1)
    net = GeneratedWeightsCFNN(input_dim=10, hidden=2)
    assert net.readout.eq(0).all() and net.hidden_bias.eq(0).all() and net.readout_bias == 0
    # v = 0: every pass starts at probability 1/2 for every input.
    assert net(torch.randn(4, 10), passes=3).eq(0).all()
    # A ~ N(0, 1/k): 200 entries, std within 4 standard errors of 1/sqrt(10).
    std = float(net.weight_mixing.detach().std())
    assert abs(std * math.sqrt(10) - 1) < 4 / math.sqrt(2 * 200)
    assert parameter_count(net) == 2 * 10 + 2 * 10 * 10 + 2 + 2 + 1
    assert net.pass_output == "sample"
    with pytest.raises(ConfigError, match="argmax, sample"):
        GeneratedWeightsCFNN(input_dim=10, pass_output="majority")


def small_resnet(n_classes: int = 5) -> ResNet:
    return ResNet(in_channels=3, n_classes=n_classes, width=4, blocks=1, stages=2)


@pytest.mark.parametrize("hypernet_hidden", [None, 32])
def test_hypernet_cfnn_shapes_and_generated_weight_scale(hypernet_hidden):
    torch.manual_seed(2)
    net = HypernetCFNN(small_resnet(), n_classes=5, noise_dim=16, hypernet_hidden=hypernet_hidden)
    assert isinstance(net.backbone.fc, torch.nn.Identity)
    x = torch.randn(3, 3, 8, 8)
    logits = net(x, passes=7)
    assert logits.shape == (7, 3, 5)
    assert net.features(x).shape == (3, net.n_features) and net.n_features == 8
    # The random part of the generated weights has std noise_scale / sqrt(F) at init.
    noise = torch.randn(4000, 16)
    deviation = net.hypernet(noise)
    assert abs(float(deviation.std()) * math.sqrt(net.n_features) - 1.0) < 0.1
    # Every pass classifies with a different last layer; the backbone is shared.
    assert not torch.allclose(logits[0], logits[1])


def test_relu_baseline_is_a_two_layer_mlp():
    net = ReLUBaseline(input_dim=10, width=8)
    assert net.sizes == [10, 8, 1] and net.hidden_neurons == 8
    assert parameter_count(net) == 10 * 8 + 8 + 8 + 1
    assert net(torch.randn(4, 10)).shape == (4, 1)
    with pytest.raises(ConfigError, match="width"):
        ReLUBaseline(input_dim=10, width=0)

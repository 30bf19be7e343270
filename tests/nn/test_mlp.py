"""MLP and activation registry: shapes, initialisation statistics, scalings, errors."""

import math

import pytest
import torch
from torch import nn

from dlt_runner.nn import ACTIVATIONS, MLP, get_activation


@pytest.fixture
def float64_default():
    """Build parameters in float64, so exact identities hold to 1e-10 and not 1e-7."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def within_sampling_error(sample: torch.Tensor, std: float) -> None:
    """Zero-mean Gaussian entries with this std: mean and std within 5 standard errors."""
    n = sample.numel()
    assert abs(sample.mean().item()) < 5 * std / math.sqrt(n)
    # the sample std of n Gaussians has relative standard error 1 / sqrt(2n)
    assert sample.std().item() == pytest.approx(std, rel=5 / math.sqrt(2 * n))


def test_shapes_features_and_preactivations():
    net = MLP([5, 16, 8, 3], activation="tanh")
    x = torch.randn(7, 5)
    pre = net.preactivations(x)
    assert net(x).shape == (7, 3)
    assert net.features(x).shape == (7, 8)
    assert [p.shape for p in pre] == [(7, 16), (7, 8), (7, 3)]
    torch.testing.assert_close(pre[-1], net(x))
    torch.testing.assert_close(net.features(x), torch.tanh(pre[-2]))
    assert net.layer_names == ["layers.0", "layers.1", "layers.2"]
    assert [name for name, _ in net.named_parameters()] == [
        f"layers.{i}.{kind}" for i in range(3) for kind in ("weight", "bias")
    ]


def test_no_hidden_layer_is_linear_and_features_are_inputs():
    net = MLP([4, 2], activation="relu", bias=False)
    x = torch.randn(3, 4)
    torch.testing.assert_close(net.features(x), x)
    torch.testing.assert_close(net(x), x @ net.layers[0].weight.T)
    assert [name for name, _ in net.named_parameters()] == ["layers.0.weight"]


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_standard_parameterisation_init_statistics(activation):
    torch.manual_seed(0)
    net = MLP([300, 400, 500], activation, "standard", weight_std=[1.3, 0.7], bias_std=[0.2, 0.5])
    for layer, w_std, b_std in zip(net.layers, [1.3, 0.7], [0.2, 0.5], strict=True):
        assert layer.weight_multiplier == 1.0 and layer.bias_multiplier == 1.0
        within_sampling_error(layer.weight, w_std / math.sqrt(layer.in_features))
        within_sampling_error(layer.bias, b_std)


def test_ntk_parameterisation_init_statistics_and_multipliers():
    torch.manual_seed(0)
    net = MLP([300, 400, 500], "relu", "ntk", weight_std=[1.3, 0.7], bias_std=0.1)
    for layer, w_std in zip(net.layers, [1.3, 0.7], strict=True):
        within_sampling_error(layer.weight, 1.0)
        within_sampling_error(layer.bias, 1.0)
        assert layer.weight_multiplier == pytest.approx(w_std / math.sqrt(layer.in_features))
        assert layer.bias_multiplier == pytest.approx(0.1)


def test_parameterisations_give_the_same_function_for_the_same_seed(float64_default):
    """They differ only in gradients, not in the function at initialisation."""
    x = torch.randn(6, 10, dtype=torch.float64)
    outputs = {}
    for parameterization in ("standard", "ntk"):
        torch.manual_seed(3)
        net = MLP([10, 32, 32, 4], "erf", parameterization, [1.5, 1.2, 0.8], [0.1, 0.2, 0.3])
        outputs[parameterization] = net(x)
    torch.testing.assert_close(outputs["standard"], outputs["ntk"], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("activation", ["relu", "erf"])
@pytest.mark.parametrize("parameterization", ["ntk", "standard"])
def test_wide_net_forward_variance(activation, parameterization):
    """E f_k(x)^2 = sigma_w^2 E[act(z)^2] + sigma_b^2 with z ~ N(0, sigma_w^2 |x|^2/d + sigma_b^2).

    Averaged over 4096 hidden units, 2048 outputs and 128 inputs, the relative error has a
    standard deviation over seeds of about 0.016 (relu) and 0.006 (erf), measured on 12
    seeds; the 5% tolerance is 3 (relu) to 8 (erf) of them.
    """
    d, width, n_out = 64, 4096, 2048
    w_std, b_std = [1.4, 1.1], [0.5, 0.6]
    torch.manual_seed(1)
    net = MLP([d, width, n_out], activation, parameterization, w_std, b_std)
    x = torch.randn(128, d)
    with torch.no_grad():
        measured = net(x).pow(2).mean()
    q = w_std[0] ** 2 * x.pow(2).sum(1) / d + b_std[0] ** 2
    if activation == "relu":
        second_moment = q / 2
    else:  # E[erf(z)^2] = (2/pi) arcsin(2q / (1 + 2q)) (Williams 1997)
        second_moment = 2 / math.pi * torch.arcsin(2 * q / (1 + 2 * q))
    expected = (w_std[1] ** 2 * second_moment + b_std[1] ** 2).mean()
    assert measured.item() == pytest.approx(expected.item(), rel=0.05)


@pytest.mark.parametrize(("fan_in", "fan_out"), [(64, 64), (32, 80), (80, 32)])
@pytest.mark.parametrize("parameterization", ["standard", "ntk"])
def test_orthogonal_init(fan_in, fan_out, parameterization, float64_default):
    """Effective weight = gain * semi-orthogonal matrix, zero biases (official IMDE FNN)."""
    gain = 1.7
    net = MLP(
        [fan_in, fan_out],
        "tanh",
        parameterization,
        weight_std=gain,
        bias_std=0.5,
        init="orthogonal",
    )
    layer = net.layers[0]
    effective = layer.weight * layer.weight_multiplier
    gram = effective @ effective.T if fan_out <= fan_in else effective.T @ effective
    eye = torch.eye(min(fan_in, fan_out), dtype=torch.float64)
    torch.testing.assert_close(gram, gain**2 * eye, rtol=0, atol=1e-10)
    assert torch.count_nonzero(layer.bias) == 0


def test_imde_configuration():
    """Paper 01: sizes [2, 64, 64, 2], tanh, orthogonal weights with gain 1, zero biases."""
    net = MLP([2, 64, 64, 2], activation="tanh", init="orthogonal")
    for layer in net.layers:
        w = layer.weight.double()
        gram = w @ w.T if w.shape[0] <= w.shape[1] else w.T @ w
        torch.testing.assert_close(
            gram, torch.eye(min(w.shape), dtype=torch.float64), rtol=0, atol=1e-5
        )
        assert torch.count_nonzero(layer.bias) == 0
    assert isinstance(net.activation, nn.Tanh)


def test_reset_parameters_redraws():
    net = MLP([3, 8, 2])
    before = net.layers[0].weight.clone()
    net.reset_parameters()
    assert not torch.equal(before, net.layers[0].weight)


def test_activation_registry():
    x = torch.linspace(-3, 3, 13)
    for name in ("relu", "tanh", "erf", "gelu", "silu", "softplus", "sigmoid", "identity"):
        assert isinstance(get_activation(name), nn.Module)
    torch.testing.assert_close(get_activation("erf")(x), torch.erf(x))
    torch.testing.assert_close(get_activation("identity")(x), x)
    custom = nn.Hardtanh()
    assert get_activation(custom) is custom
    assert MLP([2, 3, 1], activation=custom).activation is custom
    assert set(ACTIVATIONS) >= {"relu", "tanh", "erf", "gelu", "silu", "softplus", "sigmoid"}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"activation": "rleu"}, "unknown activation 'rleu'; choose one of: relu, tanh, erf"),
        (
            {"parameterization": "mup"},
            "unknown parameterization 'mup'; choose one of: standard, ntk",
        ),
        ({"init": "xavier"}, "unknown init 'xavier'; choose one of: normal, orthogonal"),
        ({"weight_std": [1.0, 2.0]}, "weight_std has 2 entries but the net has 3 linear layers"),
        ({"bias_std": [0.1] * 4}, "bias_std has 4 entries but the net has 3 linear layers"),
        ({"sizes": [5]}, "sizes must list at least an input and an output width"),
        ({"sizes": [5, 0, 2]}, "sizes must list at least an input and an output width"),
    ],
)
def test_bad_arguments_say_what_is_valid(kwargs, message):
    arguments = {"sizes": [4, 8, 8, 2], **kwargs}
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        MLP(**arguments)

"""L+1 and 2L tickets: per-layer error bound, architecture, sparsity, rescaling."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dlt_runner.core.errors import ConfigError
from dlt_runner.papers.lottery_conv.constructions import (
    ConvLayer,
    TicketNet,
    construct_ticket,
    per_parameter_ticket,
    rescale_for_subset_sum,
)


def random_target(seed: int = 0, width: int = 4, scale: float = 1.0) -> list[ConvLayer]:
    generator = torch.Generator().manual_seed(seed)

    def uniform(*shape):
        return (2 * torch.rand(*shape, generator=generator, dtype=torch.float64) - 1) * scale

    return [
        ConvLayer(uniform(width, 1, 3, 3), uniform(width) * 0.3),
        ConvLayer(uniform(width, width, 3, 3) * 0.5, uniform(width) * 0.3),
    ]


def target_forward(layers: list[ConvLayer], x: torch.Tensor) -> torch.Tensor:
    for layer in layers:
        x = torch.relu(F.conv2d(x, layer.weight, layer.bias, padding=1))
    return x


def patch_l1(x: torch.Tensor) -> torch.Tensor:
    """Sum of |x| over every 3x3 receptive field (zero padding), per pixel."""
    return F.conv2d(x.abs().sum(1, keepdim=True), torch.ones(1, 1, 3, 3, dtype=x.dtype), padding=1)


@pytest.mark.parametrize("eps", [0.02, 0.005])
def test_first_layer_copies_within_the_subset_sum_bound(eps):
    """Every parameter within eps => each copy of a first-layer unit within
    eps * (sum of |x| over its receptive field + 1) of the target (ReLU is 1-Lipschitz)."""
    layers = random_target()
    ticket = construct_ticket(layers, "l_plus_1", rho=15, eps=eps, seed=1)
    assert ticket.log.misses == 0
    x = torch.randn(8, 1, 6, 6, dtype=torch.float64)
    spread, first = ticket.layers[:2]
    hidden = torch.relu(F.conv2d(x, spread.weight, spread.bias))
    hidden = torch.relu(F.conv2d(hidden, first.weight, None, padding=1))
    target = target_forward(layers[:1], x)
    bound = eps * (patch_l1(x) + 1)
    for copy in range(15):
        copies = hidden[:, copy : 4 * 15 : 15]  # unit j * rho + copy
        assert ((copies - target).abs() <= bound + 1e-12).all()
    constants = hidden[:, 4 * 15 :]
    assert ((constants - 1).abs() <= eps + 1e-12).all()


@pytest.mark.parametrize("construction", ["l_plus_1", "two_l"])
def test_ticket_error_shrinks_with_eps(construction):
    layers = random_target(seed=2)
    x = torch.randn(8, 1, 6, 6, dtype=torch.float64)
    target = target_forward(layers, x)
    errors = []
    for eps in (0.04, 0.01, 0.0025):
        ticket = construct_ticket(layers, construction, eps=eps, seed=3)
        assert ticket.log.misses == 0
        out = x
        for layer in ticket.layers:
            padding = layer.weight.shape[-1] // 2
            out = torch.relu(F.conv2d(out, layer.weight, layer.bias, padding=padding))
        errors.append(float((out - target).abs().max()))
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < errors[0] / 4  # about linear in eps (16x smaller eps)


def test_architectures_and_parameter_counts():
    layers = random_target(width=4)
    plus = construct_ticket(layers, "l_plus_1", rho=15, eps=0.01, seed=0)
    shapes = [tuple(layer.weight.shape) for layer in plus.layers]
    # 1x1: 30 units per input channel + 30 constants; 3x3: 15 copies of 4 channels + 15
    # constants; last 3x3: the 4 target channels
    assert shapes == [(60, 1, 1, 1), (75, 60, 3, 3), (4, 75, 3, 3)]
    assert plus.source_params == 60 + 60 + 75 * 60 * 9 + 4 * 75 * 9
    assert 0 < plus.nonzero_params() < plus.source_params
    two = construct_ticket(layers, "two_l", rho=15, eps=0.01, seed=0)
    assert [tuple(layer.weight.shape) for layer in two.layers] == [
        (60, 1, 1, 1),
        (4, 60, 3, 3),
        (150, 4, 1, 1),
        (4, 150, 3, 3),
    ]
    with pytest.raises(ConfigError, match="two_l"):
        construct_ticket(layers, "three_l")


def test_rescaling_is_exact_for_relu():
    layers = random_target(seed=4, scale=3.0)
    rescaled, head_scale = rescale_for_subset_sum(layers)
    assert head_scale > 1
    assert all(layer.weight.abs().max() <= 1 and layer.bias.abs().max() <= 1 for layer in rescaled)
    x = torch.randn(4, 1, 5, 5, dtype=torch.float64)
    torch.testing.assert_close(target_forward(rescaled, x) * head_scale, target_forward(layers, x))


def test_ticket_net_matches_the_target_classifier():
    torch.manual_seed(5)
    layers = [ConvLayer(layer.weight.float(), layer.bias.float()) for layer in random_target(5)]
    head = nn.Linear(4 * 6 * 6, 3)
    ticket = TicketNet(construct_ticket(layers, "l_plus_1", eps=0.002, seed=6), head)
    x = torch.randn(32, 1, 6, 6)
    target = head(target_forward(layers, x).flatten(1))
    assert (ticket(x) - target).abs().max() < 0.05 * target.abs().max()
    assert not any(p.requires_grad for p in ticket.parameters())


def test_per_parameter_ticket_stays_within_eps():
    torch.manual_seed(7)
    net = nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(12, 2))
    ticket, stats = per_parameter_ticket(net, rho=15, eps=0.01, seed=0)
    assert stats["ssa_hit_rate"] > 0.9
    for original, approximation in zip(net.parameters(), ticket.parameters(), strict=True):
        hit = (original - approximation).abs() <= 0.01 + 1e-7
        assert hit.float().mean() >= 0.9
    assert stats["ticket_nonzero_params"] > stats["target_nonzero_params"]

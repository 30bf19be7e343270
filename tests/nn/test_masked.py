"""Edge-popup layers: straight-through gradient through |scores|, exact k, frozen weights."""

import math

import pytest
import torch
from torch import nn

from dlt_runner.core.errors import ConfigError
from dlt_runner.nn.masked import (
    MaskedConv2d,
    MaskedLinear,
    kept_count,
    supermask_layers,
    topk_mask,
)


def test_topk_mask_keeps_the_largest_magnitudes():
    scores = torch.tensor([0.3, -2.0, 0.1, 1.5, -0.2, 0.05])
    mask = topk_mask(scores, 0.5)
    assert mask.tolist() == [1.0, 1.0, 0.0, 1.0, 0.0, 0.0]


@pytest.mark.parametrize("keep", [0.25, 0.5, 0.75, 1.0])
def test_kept_fraction_is_exactly_keep(keep):
    torch.manual_seed(0)
    conv = MaskedConv2d(4, 8, kernel_size=3, padding=1, keep=keep)  # 288 weights
    linear = MaskedLinear(16, 12, keep=keep)  # 192 weights
    for layer in (conv, linear):
        assert layer.kept_fraction() == keep
        assert int(layer.masks()["weight"].sum()) == keep * layer.weight.numel()
    assert kept_count(10, 0.33) == 3
    assert kept_count(10, 0.01) == 1  # never an empty layer


def test_straight_through_gradient_is_dmask_times_sign_of_scores():
    torch.manual_seed(1)
    layer = MaskedLinear(3, 2, keep=0.5, scale=True)
    with torch.no_grad():
        layer.weight_scores.copy_(torch.tensor([[0.9, -0.1, -0.7], [0.2, -0.8, 0.05]]))
    x = torch.randn(5, 3)
    upstream = torch.randn(5, 2)
    (layer(x) * upstream).sum().backward()
    # y = x (W ⊙ m / sqrt(k))^T, so dL/dm_ij = sum_b upstream_bi x_bj W_ij / sqrt(k); the
    # straight-through estimator passes it through |s|: dL/ds_ij = dL/dm_ij · sign(s_ij).
    dmask = (upstream.T @ x) * layer.weight / math.sqrt(0.5)
    expected = dmask * layer.weight_scores.detach().sign()
    torch.testing.assert_close(layer.weight_scores.grad, expected)
    # the gradient reaches pruned entries too (that is how they can pop back in)
    pruned = layer.masks()["weight"] == 0
    assert (layer.weight_scores.grad[pruned] != 0).all()


def test_forward_uses_only_kept_weights_scaled():
    torch.manual_seed(2)
    conv = MaskedConv2d(2, 3, kernel_size=3, padding=1, keep=0.5, bias=True)
    x = torch.randn(4, 2, 6, 6)
    masks = conv.masks()
    expected = nn.functional.conv2d(
        x,
        conv.weight * masks["weight"] / math.sqrt(0.5),
        conv.bias * masks["bias"] / math.sqrt(0.5),
        padding=1,
    )
    torch.testing.assert_close(conv(x), expected)


def test_frozen_weights_get_no_gradient_and_do_not_change_in_training():
    torch.manual_seed(3)
    net = nn.Sequential(
        MaskedConv2d(1, 4, kernel_size=3, padding=1, bias=True),
        nn.ReLU(),
        nn.Flatten(),
        MaskedLinear(4 * 5 * 5, 3),
    )
    names = {name for name, _ in net.named_parameters()}
    assert names == {"0.weight_scores", "0.bias_scores", "3.weight_scores"}
    frozen = {
        name: tensor.clone() for name, tensor in net.state_dict().items() if "scores" not in name
    }
    assert set(frozen) == {"0.weight", "0.bias", "3.weight"}
    scores_before = [p.detach().clone() for p in net.parameters()]
    optimizer = torch.optim.Adam(net.parameters(), lr=0.1)
    x, y = torch.randn(16, 1, 5, 5), torch.randint(0, 3, (16,))
    for _ in range(5):
        optimizer.zero_grad()
        nn.functional.cross_entropy(net(x), y).backward()
        optimizer.step()
    for layer in supermask_layers(net):
        assert not layer.weight.requires_grad and layer.weight.grad is None
    for name, tensor in net.state_dict().items():
        if name in frozen:
            assert torch.equal(tensor, frozen[name])
    assert any(not torch.equal(a, b) for a, b in zip(scores_before, net.parameters(), strict=True))


def test_training_the_scores_moves_the_mask_off_chance():
    """Scores trained through |s| fit a task the random net cannot (the pitfall's symptom)."""
    torch.manual_seed(4)
    x = torch.randn(256, 20)
    y = (x[:, :10].sum(1) > 0).long()
    net = nn.Sequential(MaskedLinear(20, 256), nn.ReLU(), MaskedLinear(256, 2))
    optimizer = torch.optim.Adam(net.parameters(), lr=0.05)
    for _ in range(150):
        optimizer.zero_grad()
        nn.functional.cross_entropy(net(x), y).backward()
        optimizer.step()
    accuracy = (net(x).argmax(1) == y).float().mean().item()
    assert accuracy > 0.9


def test_weight_inits_and_bad_values():
    torch.manual_seed(5)
    layer = MaskedLinear(400, 300, weight_init="signed_constant")
    std = math.sqrt(2.0 / 400)
    torch.testing.assert_close(layer.weight.abs(), torch.full_like(layer.weight, std))
    normal = MaskedLinear(400, 300)
    assert normal.weight.std().item() == pytest.approx(std, rel=0.02)
    with pytest.raises(ConfigError, match="keep"):
        MaskedLinear(3, 2, keep=0.0)
    with pytest.raises(ConfigError, match="signed_constant"):
        MaskedLinear(3, 2, weight_init="xavier")


def test_state_dict_round_trip_and_device_move():
    torch.manual_seed(6)
    layer = MaskedConv2d(2, 2, kernel_size=1)
    copy = MaskedConv2d(2, 2, kernel_size=1)
    copy.load_state_dict(layer.state_dict())
    x = torch.randn(1, 2, 3, 3)
    torch.testing.assert_close(copy(x), layer(x))
    assert layer.double().weight.dtype == torch.float64

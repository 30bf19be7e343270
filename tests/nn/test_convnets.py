"""ConvNet: Conv-4 shapes and parameter count, pooling, global pool, factories, errors."""

import pytest
import torch
from torch import nn

from dlt_runner.core.errors import ConfigError
from dlt_runner.nn.convnets import ConvNet


def test_conv4_shapes_and_parameters():
    net = ConvNet(
        in_channels=3,
        n_classes=10,
        channels=[64, 64, 128, 128],
        pool_every=2,
        hidden=[256, 256],
        image_size=32,
        bias=False,
    )
    # Frankle & Carbin 2019, Fig. 2: Conv-4 has 2.4M weights (no biases here).
    convs = 3 * 64 * 9 + 64 * 64 * 9 + 64 * 128 * 9 + 128 * 128 * 9
    fcs = 128 * 8 * 8 * 256 + 256 * 256 + 256 * 10
    assert sum(p.numel() for p in net.parameters()) == convs + fcs
    assert net.n_pools == 2 and net.n_features == 8192
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_forward_matches_hand_written_stack():
    net = ConvNet(
        in_channels=1,
        n_classes=3,
        channels=[4, 5],
        pool_every=1,
        hidden=[7],
        activation="tanh",
        image_size=8,
        pool="avg",
    )
    x = torch.randn(2, 1, 8, 8)
    h = nn.functional.avg_pool2d(torch.tanh(net.convs[0](x)), 2)
    h = nn.functional.avg_pool2d(torch.tanh(net.convs[1](h)), 2)
    h = torch.tanh(net.fcs[0](h.flatten(1)))
    torch.testing.assert_close(net(x), net.classifier(h))


def test_global_pool_accepts_any_size_and_batch_norm():
    net = ConvNet(
        in_channels=3,
        channels=[8, 8, 8],
        pool_every=None,
        hidden=[],
        global_pool=True,
        norm="batch",
    )
    assert net(torch.randn(2, 3, 9, 9)).shape == (2, 10)
    assert net(torch.randn(2, 3, 16, 16)).shape == (2, 10)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in net.modules()) == 3


def test_layer_factories_are_used():
    class TaggedConv(nn.Conv2d):
        pass

    class TaggedLinear(nn.Linear):
        pass

    net = ConvNet(channels=[4, 4], image_size=8, conv_layer=TaggedConv, linear_layer=TaggedLinear)
    assert all(isinstance(c, TaggedConv) for c in net.convs)
    assert all(isinstance(f, TaggedLinear) for f in [*net.fcs, net.classifier])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "set image_size"),
        ({"image_size": 2, "channels": [4, 4, 4, 4]}, "too small"),
        ({"image_size": 8, "pool": "median"}, "unknown pool 'median'; choose one of: max, avg"),
        ({"image_size": 8, "norm": "group"}, "unknown norm 'group'"),
        ({"image_size": 8, "channels": []}, "at least one"),
    ],
)
def test_errors(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        ConvNet(**kwargs)

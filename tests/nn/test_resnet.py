"""ResNet / ConvResNet: shapes, parameter counts by hand, depth 6n + 2, skips, factories, errors."""

import pytest
import torch
from torch import nn

from dlt_runner.core.errors import ConfigError
from dlt_runner.nn.resnet import BasicBlock, ConvResNet, PreActBlock, ResNet


def n_params(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def conv_resnet_params(width: int, blocks: int, in_channels=1, side=8, pool=2, classes=10) -> int:
    """Stem conv + 2 convs per block (all with biases) + Linear on the pooled map."""
    conv = lambda c_in, c_out: c_in * c_out * 9 + c_out
    features = width * (side // pool) ** 2
    return conv(in_channels, width) + 2 * blocks * conv(width, width) + features * classes + classes


@pytest.mark.parametrize(("width", "blocks"), [(4, 2), (8, 2), (32, 2), (8, 1), (8, 4)])
def test_conv_resnet_parameter_count(width, blocks):
    net = ConvResNet(in_channels=1, n_classes=10, width=width, blocks=blocks, image_size=8)
    assert n_params(net) == conv_resnet_params(width, blocks)
    assert net(torch.rand(5, 1, 8, 8)).shape == (5, 10)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in net.modules())


def test_conv_resnet_known_counts():
    # 1 -> 4 channels, 2 blocks on 8x8 digits: 40 + 4 * 148 + 650 parameters.
    assert n_params(ConvResNet(width=4, blocks=2)) == 1282
    assert n_params(ConvResNet(width=32, blocks=2)) == 42442


def test_conv_resnet_block_is_identity_plus_residual():
    block = PreActBlock(6, 6, stride=1, norm="none", activation="relu", conv_layer=nn.Conv2d)
    x = torch.randn(3, 6, 5, 5)
    expected = x + block.conv2(torch.relu(block.conv1(torch.relu(x))))
    torch.testing.assert_close(block(x), expected)
    with torch.no_grad():
        block.conv2.weight.zero_()
        block.conv2.bias.zero_()
    torch.testing.assert_close(block(x), x)


def resnet20_params() -> int:
    """open_lth ResNet-20: bias-free convs + BN(2 per channel), 1x1 projections at stage changes."""
    bn = lambda c: 2 * c
    conv = lambda c_in, c_out, k=3: c_in * c_out * k * k
    total = conv(3, 16) + bn(16)
    channels = 16
    for stage in range(3):
        out = 16 * 2**stage
        for _ in range(3):
            total += conv(channels, out) + bn(out) + conv(out, out) + bn(out)
            if channels != out:
                total += conv(channels, out, 1) + bn(out)
            channels = out
    return total + 64 * 10 + 10


def test_resnet20_cifar():
    net = ResNet(in_channels=3, n_classes=10, width=16, blocks=3, norm="batch")
    assert net.depth == 20
    assert n_params(net) == resnet20_params()
    x = torch.randn(4, 3, 32, 32)
    assert net(x).shape == (4, 10)
    assert net.features(x).shape == (4, 64)
    # Downsampling: 32 -> 16 -> 8 spatial, 16 -> 32 -> 64 channels.
    shapes = []
    out = net.stem(x)
    for block in net.layers:
        out = block(out)
        shapes.append(tuple(out.shape[1:]))
    assert shapes[0] == (16, 32, 32) and shapes[3] == (32, 16, 16) and shapes[-1] == (64, 8, 8)
    # Global pooling: any input size works.
    assert net(torch.randn(2, 3, 20, 20)).shape == (2, 10)


def test_blocks_per_stage_and_preact_with_batch_norm():
    net = ResNet(in_channels=1, width=4, blocks=[1, 2], stages=2, block="preact", norm="batch")
    assert net.blocks == [1, 2] and net.depth == 8
    assert net(torch.randn(3, 1, 8, 8)).shape == (3, 10)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in net.modules()) == 2 * 3 + 1


def test_basic_block_identity_shortcut():
    block = BasicBlock(4, 4, stride=1, norm="none", activation="relu", conv_layer=nn.Conv2d)
    assert isinstance(block.shortcut, nn.Identity)
    x = torch.randn(2, 4, 6, 6)
    inner = block.conv2(torch.relu(block.conv1(x)))
    torch.testing.assert_close(block(x), torch.relu(inner + x))


def test_layer_factories_are_used():
    class TaggedConv(nn.Conv2d):
        pass

    class TaggedLinear(nn.Linear):
        pass

    net = ResNet(width=4, blocks=1, conv_layer=TaggedConv, linear_layer=TaggedLinear)
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
    assert convs and all(isinstance(m, TaggedConv) for m in convs)
    assert linears and all(isinstance(m, TaggedLinear) for m in linears)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"norm": "layer"}, "unknown norm 'layer'; choose one of: batch"),
        ({"block": "bottleneck"}, "unknown block 'bottleneck'"),
        ({"blocks": [1, 2]}, "blocks lists 2 stages but stages=3"),
        ({"width": 0}, "width must be a positive integer"),
        ({"head_pool": 2}, "set image_size"),
        ({"activation": "relux"}, "unknown activation 'relux'"),
    ],
)
def test_errors(kwargs, message):
    with pytest.raises((ConfigError, ValueError), match=message):
        ResNet(**kwargs)

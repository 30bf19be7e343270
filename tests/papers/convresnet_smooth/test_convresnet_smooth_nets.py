"""ConvResNet of Liu et al. (2022, §2) vs its no-skip baseline: layout, parameter counts, skips."""

import pytest
import torch
from torch import nn

from dlt_runner.nn.resnet import ConvResNet
from dlt_runner.papers.convresnet_smooth.nets import PlainConvNet


def n_params(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


@pytest.mark.parametrize(("width", "blocks"), [(4, 2), (8, 1), (8, 4), (32, 2)])
def test_plain_baseline_has_the_same_parameters(width, blocks):
    assert n_params(PlainConvNet(width=width, blocks=blocks)) == n_params(
        ConvResNet(width=width, blocks=blocks)
    )


def test_residual_net_is_the_plain_net_plus_identity_skips():
    """Copy the weights across: with every residual branch zeroed ConvResNet is
    stem -> relu -> pool -> fc; the plain net with the same weights differs by the skips."""
    torch.manual_seed(0)
    resnet, plain = ConvResNet(width=6, blocks=2), PlainConvNet(width=6, blocks=2)
    convs = [resnet.stem] + [conv for block in resnet.layers for conv in (block.conv1, block.conv2)]
    with torch.no_grad():
        for source, target in zip(convs, plain.convs, strict=True):
            target.weight.copy_(source.weight)
            target.bias.copy_(source.bias)
        plain.classifier.weight.copy_(resnet.fc.weight)
        plain.classifier.bias.copy_(resnet.fc.bias)
    x = torch.rand(4, 1, 8, 8)
    relu, pool = torch.relu, nn.AvgPool2d(2)
    h = resnet.stem(x)
    for block in resnet.layers:
        h = h + block.conv2(relu(block.conv1(relu(h))))
    torch.testing.assert_close(resnet(x), resnet.fc(pool(relu(h)).flatten(1)))
    p = relu(plain.convs[0](x))
    for conv in plain.convs[1:]:
        p = relu(conv(p))
    torch.testing.assert_close(plain(x), plain.classifier(pool(p).flatten(1)))
    with torch.no_grad():
        for block in resnet.layers:
            block.conv2.weight.zero_()
            block.conv2.bias.zero_()
    torch.testing.assert_close(resnet(x), resnet.fc(pool(relu(resnet.stem(x))).flatten(1)))

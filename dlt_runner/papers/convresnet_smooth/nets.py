"""The paper's ConvResNet and its no-skip baseline (nn.Modules only).

- ConvResNet (Liu et al. 2022, §2): ``dlt_runner.nn.resnet.ConvResNet`` — stem conv, B blocks
  ``x + conv(relu(conv(relu(x))))`` at width w, ``relu -> AvgPool2d(2) -> Linear``; at CIFAR
  scale the multi-stage ``dlt_runner.nn.resnet.ResNet`` with ``block=preact, norm=none``.
- :class:`PlainConvNet`: the same layers in the same order without the identity skips (equal
  parameter count), the comparison that isolates what the skips do to robustness
  (reconstruction: the paper compares ConvResNet sizes, not skip / no skip).
"""

from __future__ import annotations

from torch import nn

from dlt_runner.core.errors import positive_int
from dlt_runner.nn.convnets import ConvNet


class PlainConvNet(ConvNet):
    """``conv3x3(in -> w)``, then 2B ``conv3x3(w -> w)``, ReLU after each, ``AvgPool2d(2)``,
    flatten, ``Linear``: a ConvResNet(w, B) without its skips, with the same parameters."""

    def __init__(
        self,
        in_channels: int = 1,
        n_classes: int = 10,
        width: int = 8,
        blocks: int = 2,
        image_size: int = 8,
        activation: str | nn.Module = "relu",
    ) -> None:
        n_convs = 1 + 2 * positive_int("blocks", blocks)
        super().__init__(
            in_channels=in_channels,
            n_classes=n_classes,
            channels=[positive_int("width", width)] * n_convs,
            pool_every=n_convs,
            hidden=[],
            activation=activation,
            norm="none",
            pool="avg",
            image_size=image_size,
        )

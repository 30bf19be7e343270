"""The paper's target nets, their random (masked) sources, and a grid of such nets.

- :func:`conv_target` — the official repo's ``conv`` (RelationalML/LT-existence,
  ``Models/conv.py``): ``n_convs`` 3x3 convolutions (padding 1) with biases and an activation,
  flatten, one linear classifier (repo default: 2 convolutions of N = 32 channels, L = 3).
- :func:`residual_target` — the residual variant: a 3x3 stem and ``blocks`` identity-skip
  blocks ``h + conv(relu(conv(relu(h))))`` without normalisation, flatten, linear.
- :func:`resnet_target` — the CIFAR ResNet of the official ResNet experiment
  (``Models/lottery_resnet.py``, the open_lth plan): ResNet-20 at ``width=16, blocks=3``.
- :func:`conv_n` — the Conv-2/4/6 of edge-popup (Ramanujan et al. 2020, Table 1; allenai/
  hidden-networks ``models/frankle.py``) with a width multiplier.

Each takes ``masked``/``keep``/``weight_init``: with ``masked: true`` every convolution and
linear layer is a :class:`~dlt_runner.nn.masked.MaskedConv2d` / ``MaskedLinear`` over frozen
random weights, without biases (the edge-popup search route, Ramanujan et al. 2020, whose
layers have none), so the baseline (trained dense) and the random source differ only in their
layers. The architectures are the shared
``dlt_runner.nn`` nets.

:class:`NetGrid` holds independent copies of one architecture at several widths and seeds;
they see the same minibatches and are trained side by side (their losses add, and each
parameter's gradient is that of its own net's loss).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from dlt_runner.core.errors import ConfigError, positive_int
from dlt_runner.nn.convnets import ConvNet
from dlt_runner.nn.masked import MaskedConv2d, MaskedLinear
from dlt_runner.nn.resnet import ConvResNet, ResNet


def _bias_free(layer: Callable[..., nn.Module], *args, bias: bool = False, **kwargs) -> nn.Module:
    """A masked layer without bias, whatever the net asks for: hidden-networks' layers have none."""
    return layer(*args, **kwargs)


def layer_factories(
    masked: bool, keep: float, weight_init: str
) -> dict[str, Callable[..., nn.Module]]:
    """``conv_layer``/``linear_layer`` for the shared nets: plain, or edge-popup masked."""
    if not masked:
        return {"conv_layer": nn.Conv2d, "linear_layer": nn.Linear}
    options = {"keep": keep, "weight_init": weight_init}
    return {
        "conv_layer": functools.partial(_bias_free, MaskedConv2d, **options),
        "linear_layer": functools.partial(_bias_free, MaskedLinear, **options),
    }


def conv_target(
    width: int = 32,
    n_convs: int = 2,
    in_channels: int = 1,
    n_classes: int = 10,
    image_size: int = 28,
    activation: str = "relu",
    masked: bool = False,
    keep: float = 0.5,
    weight_init: str = "kaiming_normal",
) -> ConvNet:
    """The official ``conv`` target (3x3 convs with biases, flatten, linear); masked: edge-popup
    without biases, as hidden-networks' nets."""
    return ConvNet(
        in_channels=in_channels,
        n_classes=n_classes,
        channels=[positive_int("width", width)] * positive_int("n_convs", n_convs),
        pool_every=None,
        hidden=[],
        activation=activation,
        image_size=image_size,
        bias=not masked,
        **layer_factories(masked, keep, weight_init),
    )


def residual_target(
    width: int = 8,
    blocks: int = 1,
    in_channels: int = 1,
    n_classes: int = 10,
    image_size: int = 8,
    activation: str = "relu",
    masked: bool = False,
    keep: float = 0.5,
    weight_init: str = "kaiming_normal",
) -> ConvResNet:
    """Stem + identity-skip blocks without normalisation, flatten (no pooling), linear."""
    return ConvResNet(
        in_channels=in_channels,
        n_classes=n_classes,
        width=width,
        blocks=blocks,
        image_size=image_size,
        head_pool=1,
        activation=activation,
        **layer_factories(masked, keep, weight_init),
    )


def resnet_target(
    width: int = 16,
    blocks: int = 3,
    in_channels: int = 3,
    n_classes: int = 10,
    activation: str = "relu",
    norm: str = "batch",
    masked: bool = False,
    keep: float = 0.5,
    weight_init: str = "kaiming_normal",
) -> ResNet:
    """CIFAR ResNet (open_lth plan; ResNet-20 at width 16, 3 blocks per stage)."""
    return ResNet(
        in_channels=in_channels,
        n_classes=n_classes,
        width=width,
        blocks=blocks,
        stages=3,
        norm=norm,
        activation=activation,
        **layer_factories(masked, keep, weight_init),
    )


#: Conv-2/4/6 of Ramanujan et al. 2020 (Table 1): conv widths at multiplier 1, FC widths.
CONV_N_CHANNELS = {
    2: [64, 64],
    4: [64, 64, 128, 128],
    6: [64, 64, 128, 128, 256, 256],
}


def conv_n(
    width: int = 1,
    depth: int = 4,
    in_channels: int = 3,
    n_classes: int = 10,
    image_size: int = 32,
    masked: bool = True,
    keep: float = 0.5,
    weight_init: str = "signed_constant",
) -> ConvNet:
    """Conv-``depth`` with every layer ``width`` times wider (edge-popup width multiplier)."""
    if depth not in CONV_N_CHANNELS:
        raise ConfigError(f"conv_n depth must be one of {sorted(CONV_N_CHANNELS)}, got {depth}")
    multiplier = positive_int("width", width)
    return ConvNet(
        in_channels=in_channels,
        n_classes=n_classes,
        channels=[c * multiplier for c in CONV_N_CHANNELS[depth]],
        pool_every=2,
        hidden=[256 * multiplier, 256 * multiplier],
        image_size=image_size,
        bias=False,
        **layer_factories(masked, keep, weight_init),
    )


class NetGrid(nn.Module):
    """Independent nets ``build(width=w)`` for every width and seed offset, side by side.

    Member ``w{width}_s{offset}`` is initialised under ``torch.manual_seed(seed + offset)``
    (the run's seed plus the offset; the global RNG is left as it was), so shifting the run
    seed draws fresh random nets. ``forward`` returns the members' logits stacked, shape
    (members, batch, classes).

    Args:
        build: partial architecture (one of this module's functions) taking ``width``.
        widths: the widths (or width multipliers) of the grid.
        seed_offsets: one net per offset and width.
        seed: the run's seed (``${seed}``).
    """

    def __init__(
        self,
        build: Callable[..., nn.Module],
        widths: Sequence[int] = (8,),
        seed_offsets: Sequence[int] = (0,),
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.widths = [positive_int("widths", w) for w in widths]
        self.seed_offsets = [int(offset) for offset in seed_offsets]
        if not self.widths or not self.seed_offsets:
            raise ConfigError("NetGrid needs at least one width and one seed offset")
        self.members = nn.ModuleDict()
        for width in self.widths:
            for offset in self.seed_offsets:
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(int(seed) + offset)
                    self.members[self.key(width, offset)] = build(width=width)

    @staticmethod
    def key(width: int, offset: int) -> str:
        return f"w{width}_s{offset}"

    def forward(self, x: Tensor) -> Tensor:
        return torch.stack([member(x) for member in self.members.values()])

"""Plain convolutional stacks (no skips): Conv-2/4/6 style nets and small CNNs.

``ConvNet(channels=[64, 64, 128, 128], pool_every=2, hidden=[256, 256])`` is the Conv-4 of
Frankle & Carbin 2019 (ICLR, Fig. 2) and of Ramanujan et al. 2020 ("What's Hidden in a
Randomly Weighted Neural Network?", CVPR, Table 1; allenai/hidden-networks,
``models/frankle.py``): 3x3 convolutions, a 2x2 max-pool after every
second one, then fully-connected layers on the flattened map.

Layers are built through ``conv_layer`` / ``linear_layer`` factories (default
``nn.Conv2d`` / ``nn.Linear``, called as ``conv_layer(in, out, kernel_size=3, stride=1,
padding=1, bias=b)`` and ``linear_layer(in, out, bias=b)``), so a masked variant is the same
class with different layers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from torch import Tensor, nn

from dlt_runner.core.errors import ConfigError, choose, positive_int
from dlt_runner.nn.activations import get_activation
from dlt_runner.nn.resnet import NORMS

POOLS: dict[str, type[nn.Module]] = {"max": nn.MaxPool2d, "avg": nn.AvgPool2d}


class ConvNet(nn.Module):
    """conv3x3 (+ norm) + act per entry of ``channels``, a 2x2 pool every ``pool_every``,
    then flatten (or global average pool), ``hidden`` fully-connected layers and a linear
    classifier.

    Args:
        in_channels: image channels.
        n_classes: outputs.
        channels: output channels of each 3x3 convolution (padding 1, stride 1).
        pool_every: a 2x2 pool after every k-th convolution (``None``: no pooling).
        hidden: widths of the fully-connected layers between the features and the classifier.
        activation: a name from ``nn.activations.ACTIVATIONS`` or an ``nn.Module``.
        norm: ``none``, ``batch`` or ``batch_nonaffine`` after every convolution.
        pool: ``max`` or ``avg``.
        global_pool: average each channel over space before the fully-connected layers
            (any input size); otherwise flatten, which needs ``image_size``.
        image_size: input height = width, needed to size the first linear layer when
            flattening.
        bias: whether convolutions and linear layers have biases (hidden-networks uses none).
        conv_layer, linear_layer: layer factories (module docstring).
    """

    def __init__(
        self,
        in_channels: int = 3,
        n_classes: int = 10,
        channels: Sequence[int] = (64, 64, 128, 128),
        pool_every: int | None = 2,
        hidden: Sequence[int] = (256, 256),
        activation: str | nn.Module = "relu",
        norm: str = "none",
        pool: str = "max",
        global_pool: bool = False,
        image_size: int | None = None,
        bias: bool = True,
        conv_layer: Callable[..., nn.Module] = nn.Conv2d,
        linear_layer: Callable[..., nn.Module] = nn.Linear,
    ) -> None:
        super().__init__()
        self.channels = [positive_int("channels", c) for c in channels]
        if not self.channels:
            raise ConfigError("channels must list at least one convolution width")
        self.hidden = [positive_int("hidden", h) for h in hidden]
        self.pool_every = None if pool_every is None else positive_int("pool_every", pool_every)
        make_norm = choose("norm", norm, NORMS)
        pool_type = choose("pool", pool, POOLS)
        self.activation = get_activation(activation)
        self.global_pool = bool(global_pool)

        self.convs = nn.ModuleList()
        self.norms = nn.ModuleList()
        previous = in_channels
        for width in self.channels:
            self.convs.append(
                conv_layer(previous, width, kernel_size=3, stride=1, padding=1, bias=bias)
            )
            self.norms.append(make_norm(width))
            previous = width
        self.pool = pool_type(2)
        self.n_pools = 0 if self.pool_every is None else len(self.channels) // self.pool_every

        if self.global_pool:
            n_features = previous
        else:
            if image_size is None:
                raise ConfigError(
                    "ConvNet flattens its feature map: set image_size (or global_pool)"
                )
            side = positive_int("image_size", image_size) // 2**self.n_pools
            if side < 1:
                raise ConfigError(f"image_size {image_size} is too small for {self.n_pools} pools")
            n_features = previous * side * side
        self.n_features = n_features
        sizes = [n_features, *self.hidden]
        self.fcs = nn.ModuleList(
            linear_layer(fan_in, fan_out, bias=bias)
            for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=True)
        )
        self.classifier = linear_layer(sizes[-1], n_classes, bias=bias)

    def features(self, x: Tensor) -> Tensor:
        """The classifier's input: conv stack, flatten / global pool, hidden layers."""
        for index, (conv, norm) in enumerate(zip(self.convs, self.norms, strict=True), start=1):
            x = self.activation(norm(conv(x)))
            if self.pool_every is not None and index % self.pool_every == 0:
                x = self.pool(x)
        x = x.mean(dim=(2, 3)) if self.global_pool else x.flatten(1)
        for fc in self.fcs:
            x = self.activation(fc(x))
        return x

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x))

    def extra_repr(self) -> str:
        return (
            f"channels={self.channels}, pool_every={self.pool_every}, hidden={self.hidden}, "
            f"global_pool={self.global_pool}"
        )

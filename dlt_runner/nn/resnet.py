"""CIFAR-style residual networks with width, depth and normalisation knobs.

One class, :class:`ResNet`, covers the residual nets of several papers:

- the CIFAR ResNet of He et al. 2016 ("Deep Residual Learning for Image Recognition", CVPR,
  §4.2): a 3x3 stem, ``stages`` stages of ``blocks`` basic blocks whose widths double while
  the feature map halves (stride-2 first convolution, 1x1 projection shortcut), global
  average pooling and a linear classifier; depth 6n + 2 with 3 stages of n blocks. With
  ``width=16, blocks=3, norm="batch"`` it is ResNet-20 as in open_lth
  (facebookresearch/open_lth, ``models/cifar_resnet.py``), used for lottery tickets;
- the pre-activation block of He et al. 2016 ("Identity Mappings in Deep Residual
  Networks", ECCV, Fig. 4e): ``x + conv(act(norm(conv(act(norm(x))))))``;
- the ConvResNet of Liu, Chen, Er, Liao, Zhang and Zhao ("Benefits of Overparameterized
  Convolutional Residual Networks: Function Approximation under Smoothness Constraint",
  ICML 2022, §2): identity skips around two-convolution blocks and no batch normalisation,
  so that the network's input gradient is not shaped by batch statistics
  (:class:`ConvResNet`; its single-stage layout with a 2x2 average-pool head is our
  reconstruction of the networks of the paper's numerical section).

Layers are built through ``conv_layer`` / ``linear_layer`` factories (default
``nn.Conv2d`` / ``nn.Linear``, called as ``conv_layer(in, out, kernel_size=k, stride=s,
padding=p, bias=b)`` and ``linear_layer(in, out, bias=b)``), so a variant with masked or
otherwise re-parameterised layers is the same class with different layers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from torch import Tensor, nn

from dlt_runner.core.errors import ConfigError, choose, positive_int
from dlt_runner.nn.activations import get_activation

ConvFactory = Callable[..., nn.Module]
LinearFactory = Callable[..., nn.Module]

BLOCKS = ("basic", "preact")


def _batch_norm(channels: int) -> nn.Module:
    return nn.BatchNorm2d(channels)


def _batch_norm_nonaffine(channels: int) -> nn.Module:
    return nn.BatchNorm2d(channels, affine=False)


def _no_norm(channels: int) -> nn.Module:
    return nn.Identity()


#: ``norm`` name -> factory of a per-channel normalisation for a feature map.
#: ``batch_nonaffine`` is BatchNorm without learned scale/shift (used over frozen weights).
NORMS: dict[str, Callable[[int], nn.Module]] = {
    "batch": _batch_norm,
    "batch_nonaffine": _batch_norm_nonaffine,
    "none": _no_norm,
}


def per_stage(blocks: int | Sequence[int], stages: int) -> list[int]:
    """Blocks per stage: an int broadcast to every stage, or one entry per stage."""
    if isinstance(blocks, int):
        return [positive_int("blocks", blocks)] * stages
    counts = [positive_int("blocks", b) for b in blocks]
    if len(counts) != stages:
        raise ConfigError(
            f"blocks lists {len(counts)} stages but stages={stages}; give one int or {stages}"
        )
    return counts


def _conv(
    conv_layer: ConvFactory, in_channels: int, out_channels: int, size: int, stride: int, bias: bool
) -> nn.Module:
    """A ``size`` x ``size`` convolution that keeps the map size at stride 1 (padding size // 2)."""
    return conv_layer(
        in_channels, out_channels, kernel_size=size, stride=stride, padding=size // 2, bias=bias
    )


class BasicBlock(nn.Module):
    """Post-activation basic block (He et al. 2016, CVPR, Fig. 2 and §4.2).

    ``out = act(norm(conv(act(norm(conv(x))))) + shortcut(x))``; the shortcut is the
    identity, or a strided 1x1 projection (+ norm) when the shape changes (option B, as in
    open_lth's ``cifar_resnet.py``).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int,
        norm: str,
        activation: str | nn.Module,
        conv_layer: ConvFactory,
    ) -> None:
        super().__init__()
        make_norm = choose("norm", norm, NORMS)
        bias = norm == "none"
        self.conv1 = _conv(conv_layer, in_channels, out_channels, 3, stride, bias)
        self.norm1 = make_norm(out_channels)
        self.conv2 = _conv(conv_layer, out_channels, out_channels, 3, 1, bias)
        self.norm2 = make_norm(out_channels)
        self.activation = get_activation(activation)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                _conv(conv_layer, in_channels, out_channels, 1, stride, bias),
                make_norm(out_channels),
            )

    def forward(self, x: Tensor) -> Tensor:
        out = self.activation(self.norm1(self.conv1(x)))
        out = self.norm2(self.conv2(out))
        return self.activation(out + self.shortcut(x))


class PreActBlock(nn.Module):
    """Pre-activation block (He et al. 2016, ECCV, Fig. 4e): ``x + F(x)``, nothing after the add.

    ``F(x) = conv(act(norm(conv(act(norm(x))))))``. With ``norm="none"`` this is the residual
    block of the ConvResNet (Liu et al. 2022, §2): ``x + conv(relu(conv(relu(x))))``.
    The shortcut is the identity, or a strided 1x1 projection when the shape changes.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int,
        norm: str,
        activation: str | nn.Module,
        conv_layer: ConvFactory,
    ) -> None:
        super().__init__()
        make_norm = choose("norm", norm, NORMS)
        bias = norm == "none"
        self.norm1 = make_norm(in_channels)
        self.conv1 = _conv(conv_layer, in_channels, out_channels, 3, stride, bias)
        self.norm2 = make_norm(out_channels)
        self.conv2 = _conv(conv_layer, out_channels, out_channels, 3, 1, bias)
        self.activation = get_activation(activation)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = _conv(conv_layer, in_channels, out_channels, 1, stride, bias)

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv1(self.activation(self.norm1(x)))
        out = self.conv2(self.activation(self.norm2(out)))
        return self.shortcut(x) + out


BLOCK_TYPES: dict[str, type[nn.Module]] = {"basic": BasicBlock, "preact": PreActBlock}


class ResNet(nn.Module):
    """Residual net for small images: stem, ``stages`` stages of residual blocks, pooled head.

    Args:
        in_channels: image channels (3 for CIFAR, 1 for MNIST/digits).
        n_classes: outputs of the linear classifier.
        width: channels of the first stage; stage s has ``width * 2**s``.
        blocks: residual blocks per stage, an int or one int per stage (n in depth 6n + 2).
        stages: number of stages; every stage after the first halves the feature map
            (stride-2 first block with a projection shortcut).
        norm: ``batch``, ``batch_nonaffine`` or ``none`` (no normalisation; convolutions then
            have biases, as they do not when a BatchNorm follows).
        activation: a name from ``nn.activations.ACTIVATIONS`` or an ``nn.Module``.
        block: ``basic`` (post-activation, He et al. 2016 CVPR) or ``preact`` (pre-activation,
            He et al. 2016 ECCV). A ``basic`` net normalises and activates after the stem; a
            ``preact`` net does so after the last block, before pooling.
        head_pool: ``None`` pools globally (one value per channel, any input size); an int
            k average-pools k x k windows and flattens (needs ``image_size``).
        image_size: input height = width; only needed with ``head_pool``.
        conv_layer, linear_layer: layer factories (module docstring).

    ``features(x)`` is the flattened input of the classifier ``self.fc``.
    """

    def __init__(
        self,
        in_channels: int = 3,
        n_classes: int = 10,
        width: int = 16,
        blocks: int | Sequence[int] = 3,
        stages: int = 3,
        norm: str = "batch",
        activation: str | nn.Module = "relu",
        block: str = "basic",
        head_pool: int | None = None,
        image_size: int | None = None,
        conv_layer: ConvFactory = nn.Conv2d,
        linear_layer: LinearFactory = nn.Linear,
    ) -> None:
        super().__init__()
        self.width = positive_int("width", width)
        self.stages = positive_int("stages", stages)
        self.blocks = per_stage(blocks, self.stages)
        block_type = choose("block", block, BLOCK_TYPES)
        make_norm = choose("norm", norm, NORMS)
        self.norm, self.block = norm, block
        self.activation = get_activation(activation)
        bias = norm == "none"

        self.stem = conv_layer(
            in_channels, self.width, kernel_size=3, stride=1, padding=1, bias=bias
        )
        self.stem_norm = make_norm(self.width) if block == "basic" else nn.Identity()
        layers: list[nn.Module] = []
        channels = self.width
        for stage, count in enumerate(self.blocks):
            out_channels = self.width * 2**stage
            for index in range(count):
                stride = 2 if stage > 0 and index == 0 else 1
                layers.append(
                    block_type(channels, out_channels, stride, norm, activation, conv_layer)
                )
                channels = out_channels
        self.layers = nn.Sequential(*layers)
        self.head_norm = make_norm(channels) if block == "preact" else nn.Identity()
        self.out_channels = channels

        self.head_pool = head_pool
        if head_pool is None:
            self.pool: nn.Module = nn.AdaptiveAvgPool2d(1)
            n_features = channels
        else:
            if image_size is None:
                raise ConfigError(
                    "head_pool flattens the pooled feature map: set image_size (input height)"
                )
            side = positive_int("image_size", image_size) // 2 ** (self.stages - 1)
            side //= positive_int("head_pool", head_pool)
            if side < 1:
                raise ConfigError(
                    f"image_size {image_size} is too small for {self.stages} stages and "
                    f"head_pool {head_pool}"
                )
            self.pool = nn.AvgPool2d(head_pool)
            n_features = channels * side * side
        self.n_features = n_features
        self.fc = linear_layer(n_features, n_classes, bias=True)

    def features(self, x: Tensor) -> Tensor:
        out = self.stem(x)
        if self.block == "basic":
            out = self.activation(self.stem_norm(out))
        out = self.layers(out)
        if self.block == "preact":
            out = self.activation(self.head_norm(out))
        return self.pool(out).flatten(1)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.features(x))

    @property
    def depth(self) -> int:
        """Weight layers on the main path: stem + 2 per block + classifier (6n + 2)."""
        return 2 + 2 * sum(self.blocks)

    def extra_repr(self) -> str:
        return (
            f"width={self.width}, blocks={self.blocks}, norm={self.norm!r}, block={self.block!r}, "
            f"head_pool={self.head_pool}"
        )


class ConvResNet(ResNet):
    """The ConvResNet of Liu et al. (ICML 2022, §2): identity skips, no normalisation.

    ``x -> conv3x3(in -> width)``, then ``blocks`` residual blocks
    ``x + conv3x3(act(conv3x3(act(x))))`` at constant width (one stage, no downsampling),
    then ``act -> AvgPool2d(head_pool) -> flatten -> Linear``. Default PyTorch
    (Kaiming-uniform) initialisation. The theory's blocks are stacks of convolutions with
    identity skips and no normalisation; the concrete sizes are our reconstruction
    (no official code is public). ``norm="batch"`` gives a BatchNorm variant.
    """

    def __init__(
        self,
        in_channels: int = 1,
        n_classes: int = 10,
        width: int = 8,
        blocks: int = 2,
        image_size: int = 8,
        head_pool: int = 2,
        activation: str | nn.Module = "relu",
        norm: str = "none",
        conv_layer: ConvFactory = nn.Conv2d,
        linear_layer: LinearFactory = nn.Linear,
    ) -> None:
        super().__init__(
            in_channels=in_channels,
            n_classes=n_classes,
            width=width,
            blocks=blocks,
            stages=1,
            norm=norm,
            activation=activation,
            block="preact",
            head_pool=head_pool,
            image_size=image_size,
            conv_layer=conv_layer,
            linear_layer=linear_layer,
        )

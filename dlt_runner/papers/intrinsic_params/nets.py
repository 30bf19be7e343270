"""IntrinsicNet = output affine o phi_out o phi_f o phi_in (Shen, Yang & Zhang 2022).

The construction behind the paper's main theorem composes a fixed index map phi_in (x -> its
grid cell), a block phi_f holding the intrinsic parameters (the values of f on the grid,
encoded), a fixed decoder phi_out, and an f-dependent affine map A_{f,R} onto the range of f.
Its experiments (Fig. 4) train only a small fully connected block of a CNN whose other layers
are random or pre-trained. The learned counterpart here (reconstruction):

- ``phi_in``: a conv feature map (3x3 convolutions, ReLU, one average pool, flatten), frozen:
  random at init, or pre-trained on a related task with a throw-away linear head;
- ``phi_f``: Linear(n_features -> k), the intrinsic block, with no activation after it (a
  ReLU on a 2-8 dimensional bottleneck leaves dead units and training collapses to chance);
- ``phi_out``: Linear(k -> hidden), ReLU, Linear(hidden -> n_classes), frozen at random init;
- ``output``: logits = scale * phi_out(.) + shift, 2 * n_classes parameters, the analogue of
  A_{f,R} (the "+2" of n + 2).

The baseline (full training) is the same network with every submodule trainable.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from dlt_runner.core.errors import ConfigError, positive_int

SUBMODULES = ("phi_in", "phi_f", "phi_out", "output")


class PooledConvFeatures(nn.Sequential):
    """conv3x3 + ReLU per entry of ``channels``, one ``pool`` x ``pool`` average pool, flatten.

    On 1x8x8 digits with channels (64, 64) and pool 4: 64 * 2 * 2 = 256 features. The shared
    ``dlt_runner.nn.ConvNet`` pools 2x2 only, which leaves 1,024 features here; the pool size
    is what sets the width of phi_f's input, so this map has its own pool knob.
    """

    def __init__(
        self,
        in_channels: int = 1,
        channels: Sequence[int] = (64, 64),
        pool: int = 4,
        image_size: int = 8,
    ) -> None:
        widths = [positive_int("channels", width) for width in channels]
        if not widths:
            raise ConfigError("phi_in needs at least one convolution width in channels")
        pool, image_size = positive_int("pool", pool), positive_int("image_size", image_size)
        if image_size % pool:
            raise ConfigError(f"image_size {image_size} is not a multiple of pool {pool}")
        layers: list[nn.Module] = []
        previous = positive_int("in_channels", in_channels)
        for width in widths:
            layers += [nn.Conv2d(previous, width, kernel_size=3, padding=1), nn.ReLU()]
            previous = width
        layers += [nn.AvgPool2d(pool), nn.Flatten()]
        super().__init__(*layers)
        self.n_features = previous * (image_size // pool) ** 2


class OutputAffine(nn.Module):
    """logits = scale * z + shift, per class: the rescaling A_{f,R} of the paper's construction."""

    def __init__(self, n_classes: int) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(n_classes))
        self.shift = nn.Parameter(torch.zeros(n_classes))

    def forward(self, z: Tensor) -> Tensor:
        return self.scale * z + self.shift


class IntrinsicNet(nn.Module):
    """output o phi_out o phi_f o phi_in with a ``trainable`` subset of the four submodules.

    Args:
        phi_in: the feature map (``n_features`` attribute, or pass ``n_features``).
        k: width of the intrinsic block phi_f = Linear(n_features -> k).
        hidden: width H of phi_out = Linear(k -> H), ReLU, Linear(H -> n_classes).
        n_classes: outputs of the target task.
        trainable: which of ``phi_in, phi_f, phi_out, output`` receive gradients; the others
            have ``requires_grad = False`` (and so are left out of the optimiser).
        n_features: phi_in's output width when phi_in has no ``n_features`` attribute.
    """

    def __init__(
        self,
        phi_in: nn.Module,
        k: int = 8,
        hidden: int = 256,
        n_classes: int = 5,
        trainable: Sequence[str] = ("phi_f", "output"),
        n_features: int | None = None,
    ) -> None:
        super().__init__()
        features = getattr(phi_in, "n_features", None) if n_features is None else n_features
        if features is None:
            raise ConfigError("IntrinsicNet: phi_in has no n_features attribute; pass n_features")
        self.n_features = positive_int("n_features", features)
        self.k = positive_int("k", k)
        self.phi_in = phi_in
        self.phi_f = nn.Linear(self.n_features, self.k)
        self.phi_out = nn.Sequential(
            nn.Linear(self.k, positive_int("hidden", hidden)),
            nn.ReLU(),
            nn.Linear(hidden, positive_int("n_classes", n_classes)),
        )
        self.output = OutputAffine(n_classes)
        self.trainable: tuple[str, ...] = ()
        self.set_trainable(trainable)

    def set_trainable(self, names: Sequence[str]) -> None:
        """Gradients on the named submodules only; an unknown name lists the valid ones."""
        names = tuple(str(name) for name in names)
        unknown = [name for name in names if name not in SUBMODULES]
        if unknown or not names:
            raise ConfigError(
                f"trainable must name some of: {', '.join(SUBMODULES)}; got {list(names)}"
            )
        for name in SUBMODULES:
            getattr(self, name).requires_grad_(name in names)
        self.trainable = names

    def features(self, x: Tensor) -> Tensor:
        """phi_in(x), shape (B, n_features)."""
        return self.phi_in(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.output(self.phi_out(self.phi_f(self.phi_in(x))))

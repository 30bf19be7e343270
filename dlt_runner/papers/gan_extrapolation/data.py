"""1-D Gaussian bumps with three knowledge factors (position, width, height) (reconstruction).

x(t) = h exp(-(t - c)^2 / (2 w^2)) on ``n_points`` equally spaced t in [0, 1], with c, w, h drawn
uniformly and independently. Width is the knowledge to extrapolate beyond the data (the paper's
"one knowledge dimension", abstract); position and height are the remaining knowledge.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from dlt_runner.core.datamodule import Batch, TensorDataModule
from dlt_runner.core.errors import ConfigError

FACTORS = ("position", "width", "height")


def bump_signals(factors: Tensor, n_points: int) -> Tensor:
    """Bumps h exp(-(t - c)^2 / (2 w^2)) for rows (c, w, h) of ``factors`` (N, 3): (N, n_points)."""
    grid = torch.linspace(0.0, 1.0, n_points, dtype=factors.dtype, device=factors.device)
    centre, width, height = factors[:, :1], factors[:, 1:2], factors[:, 2:3]
    return height * torch.exp(-((grid - centre) ** 2) / (2 * width**2))


class BumpData(TensorDataModule):
    """Bumps with factors uniform on the given ranges; labels are the standardised factors.

    ``labels`` are (factor - mean) / std with the uniform distributions' exact moments
    (mean (a + b) / 2, std (b - a) / sqrt(12)); only the conditional-GAN baseline reads them.

    Args:
        n_points: grid points in [0, 1].
        position_range, width_range, height_range: [low, high] of each uniform factor.
        n_train, n_val, n_test: samples per split, drawn from one generator seeded by ``seed``.
    """

    def __init__(
        self,
        n_points: int = 32,
        position_range: Sequence[float] = (0.35, 0.65),
        width_range: Sequence[float] = (0.04, 0.07),
        height_range: Sequence[float] = (0.6, 1.0),
        n_train: int = 6000,
        n_val: int = 500,
        n_test: int = 500,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.n_points = int(n_points)
        self.ranges = torch.tensor(
            [list(position_range), list(width_range), list(height_range)], dtype=torch.float64
        )
        if self.ranges.shape != (3, 2) or bool((self.ranges[:, 1] <= self.ranges[:, 0]).any()):
            raise ConfigError(
                "data.position_range, width_range and height_range must each be [low, high] "
                f"with low < high, got {self.ranges.tolist()}"
            )
        self.sizes = {"train": int(n_train), "val": int(n_val), "test": int(n_test)}

    @property
    def factor_mean(self) -> Tensor:
        return self.ranges.mean(1)

    @property
    def factor_std(self) -> Tensor:
        return (self.ranges[:, 1] - self.ranges[:, 0]) / math.sqrt(12.0)

    def standardise(self, factors: Tensor) -> Tensor:
        """(factors - mean) / std with the generating distribution's exact moments."""
        mean = self.factor_mean.to(factors)
        return (factors - mean) / self.factor_std.to(factors)

    def build(self) -> dict[str, Batch]:
        generator = torch.Generator().manual_seed(self.seed)
        splits = {}
        for split, n in self.sizes.items():
            if n > 0:
                unit = torch.rand(n, 3, generator=generator, dtype=torch.float64)
                factors = self.ranges[:, 0] + unit * (self.ranges[:, 1] - self.ranges[:, 0])
                splits[split] = {
                    "x": bump_signals(factors, self.n_points),
                    "factors": factors,
                    "labels": self.standardise(factors),
                }
        return splits


class LatentCodes(TensorDataModule):
    """Latent codes z ~ N(0, I) for a frozen pretrained generator (paper scale).

    With nothing to train, the generator's decoded reference codes stand for the data: their
    knowledge sets the range the target extrapolates beyond (reconstruction; the paper's
    attribute-labelled images need downloads).

    Args:
        latent_dim: the generator's latent size (512 for StyleGAN2's W space).
        n_train: reference codes.
    """

    def __init__(self, latent_dim: int = 512, n_train: int = 2000, **kwargs) -> None:
        super().__init__(**kwargs)
        self.latent_dim, self.n_train = int(latent_dim), int(n_train)

    def build(self) -> dict[str, Batch]:
        generator = torch.Generator().manual_seed(self.seed)
        return {"train": {"z": torch.randn(self.n_train, self.latent_dim, generator=generator)}}

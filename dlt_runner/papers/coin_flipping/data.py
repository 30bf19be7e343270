"""The d-ball classification task: is ||x|| below the radius? (Sieradzki et al. 2022, §1.)

Points straddle the sphere: a direction uniform on S^{d-1}; label 1 ("inside") with
probability ``p_inside``; radius U(inner) for inside points and U(outer) for outside ones,
in units of ``radius`` (reconstruction of a data set for the paper's ball-indicator result;
the intervals were chosen so that a width-2 deterministic net is far from the task).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from dlt_runner.core.datamodule import Batch, TensorDataModule
from dlt_runner.core.errors import ConfigError, positive_int

SMOKE_POINTS = 64


def ball_points(
    n: int,
    dim: int,
    generator: torch.Generator,
    radius: float = 1.0,
    inner: Sequence[float] = (0.6, 1.0),
    outer: Sequence[float] = (1.0, 1.4),
    p_inside: float = 0.5,
) -> Batch:
    """``n`` points in R^dim: ``x`` (n, dim), ``y`` (n,) long, 1 = inside the ball.

    Drawn in this order from ``generator``: directions, labels, radii.
    """
    direction = torch.randn(n, dim, generator=generator, dtype=torch.float64)
    direction = direction / direction.norm(dim=1, keepdim=True)
    inside = torch.rand(n, generator=generator, dtype=torch.float64) < p_inside
    uniform = torch.rand(n, generator=generator, dtype=torch.float64)
    low = torch.where(inside, float(inner[0]), float(outer[0]))
    high = torch.where(inside, float(inner[1]), float(outer[1]))
    norm = radius * (low + (high - low) * uniform)
    return {"x": direction * norm.unsqueeze(1), "y": inside.long()}


def _interval(name: str, value: Sequence[float]) -> tuple[float, float]:
    low, high = (float(v) for v in value)
    if not 0 <= low < high:
        raise ConfigError(f"data.{name} must be [low, high] with 0 <= low < high, got {value}")
    return low, high


class BallData(TensorDataModule):
    """Splits of the ball task, drawn from one ``torch.Generator`` seeded with ``seed``:
    train first, then test, then validation (so n_val does not change train or test).

    Args:
        input_dim: d (10 in the CPU experiment).
        n_train, n_val, n_test: points per split (n_val may be 0).
        radius: the ball's radius.
        inner, outer: [low, high] radius ranges of inside / outside points, in units of radius.
        p_inside: probability of label 1.
    """

    def __init__(
        self,
        input_dim: int = 10,
        n_train: int = 10_000,
        n_val: int = 1_000,
        n_test: int = 5_000,
        radius: float = 1.0,
        inner: Sequence[float] = (0.6, 1.0),
        outer: Sequence[float] = (1.0, 1.4),
        p_inside: float = 0.5,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.input_dim = positive_int("data.input_dim", input_dim)
        self.n_train = positive_int("data.n_train", n_train)
        self.n_test = positive_int("data.n_test", n_test)
        if int(n_val) < 0:
            raise ConfigError(f"data.n_val must be >= 0, got {n_val}")
        self.n_val = int(n_val)
        if float(radius) <= 0:
            raise ConfigError(f"data.radius must be positive, got {radius}")
        self.radius = float(radius)
        self.inner = _interval("inner", inner)
        self.outer = _interval("outer", outer)
        if not 0.0 < float(p_inside) < 1.0:
            raise ConfigError(f"data.p_inside must be in (0, 1), got {p_inside}")
        self.p_inside = float(p_inside)

    def points(self, n: int, generator: torch.Generator) -> Batch:
        return ball_points(
            n, self.input_dim, generator, self.radius, self.inner, self.outer, self.p_inside
        )

    def build(self) -> dict[str, Batch]:
        generator = torch.Generator().manual_seed(self.seed)
        size = (lambda n: min(n, SMOKE_POINTS)) if self.smoke else (lambda n: n)
        splits = {
            "train": self.points(size(self.n_train), generator),
            "test": self.points(size(self.n_test), generator),
        }
        if self.n_val:
            splits["val"] = self.points(size(self.n_val), generator)
        return splits

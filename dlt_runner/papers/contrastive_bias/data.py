"""The hypercube task of Example 1 (paper §3) and its disjoint augmentation.

Inputs are uniform on {-1, +1}^D; the label is linear in the first k coordinates; an
augmentation multiplies each of the last D - k coordinates by its own factor drawn from U(0, 1].
Augmentations of distinct inputs never coincide (sign(x) recovers the input), which is the
disjoint regime of the paper's lower bounds (Definition 4.1, Lemma 4.1). The generator follows
the paper's Example 1 and the public re-implementation dante-hl/matrixssl-inductive
(``data/loader.py``, ``generate_cube_augs`` with ``aug='mult'``).
"""

from __future__ import annotations

import torch
from torch import Tensor

from dlt_runner.core.datamodule import Batch, TensorDataModule
from dlt_runner.core.errors import ConfigError, positive_int

SMOKE_POINTS = 256


class HypercubeScaling:
    """Multiply each of the last ``D - k`` coordinates by its own factor from U(0, 1] (Example 1).

    Called as ``transform(x, generator)`` on ``x`` of shape (B, D), like the transforms of
    :mod:`dlt_runner.data.transforms`; wrap it in :class:`~dlt_runner.data.transforms.TwoViews`
    for the two views of contrastive learning. The first ``k`` coordinates (the label's) are
    untouched; the factors are never 0, so ``sign`` of a view is the input.
    """

    def __init__(self, k: int) -> None:
        self.k = positive_int("hypercube k", k)

    def __call__(self, x: Tensor, generator: torch.Generator) -> Tensor:
        if x.dim() != 2 or x.shape[1] <= self.k:
            raise ValueError(
                f"hypercube scaling expects (batch, D) with D > k = {self.k}, got shape "
                f"{tuple(x.shape)}"
            )
        spurious = x.shape[1] - self.k
        # torch.rand is in [0, 1): 1 - rand is in (0, 1].
        factors = 1.0 - torch.rand(
            (x.shape[0], spurious), generator=generator, device=x.device, dtype=x.dtype
        )
        return torch.cat([x[:, : self.k], x[:, self.k :] * factors], dim=1)


def hypercube_points(n: int, dim: int, weights: Tensor, generator: torch.Generator) -> Batch:
    """``n`` inputs uniform on {-1, +1}^dim and labels y = 1[w . x_{1:k} > 0], k = len(weights).

    Returns ``x`` (n, dim) float64 and ``y`` (n,) long.
    """
    x = 2.0 * torch.randint(0, 2, (n, dim), generator=generator).to(torch.float64) - 1.0
    y = (x[:, : len(weights)] @ weights > 0).long()
    return {"x": x, "y": y}


class HypercubeData(TensorDataModule):
    """Splits of the hypercube task, from one ``torch.Generator`` seeded with ``seed``.

    Draw order: the label weights w ~ N(0, I_k), then train (pretraining inputs), val (held-out
    inputs for the contrastive loss), probe (inputs the linear probe is fitted on) and test
    (inputs the probe is scored on). The probe sees clean inputs; the labels are never used in
    pretraining.

    Args:
        dim: D, the input dimension.
        k: coordinates the label depends on (and the augmentation leaves alone), k < D.
        n_train, n_val, n_probe, n_test: points per split.
    """

    def __init__(
        self,
        dim: int = 100,
        k: int = 10,
        n_train: int = 16384,
        n_val: int = 12288,
        n_probe: int = 2000,
        n_test: int = 2000,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.dim = positive_int("data.dim", dim)
        self.k = positive_int("data.k", k)
        if self.k >= self.dim:
            raise ConfigError(f"data.k must be below data.dim = {self.dim}, got {k}")
        self.sizes = {
            "train": positive_int("data.n_train", n_train),
            "val": positive_int("data.n_val", n_val),
            "probe": positive_int("data.n_probe", n_probe),
            "test": positive_int("data.n_test", n_test),
        }

    def build(self) -> dict[str, Batch]:
        generator = torch.Generator().manual_seed(self.seed)
        weights = torch.randn(self.k, generator=generator, dtype=torch.float64)
        splits = {}
        for split, n in self.sizes.items():
            n = min(n, SMOKE_POINTS) if self.smoke else n
            splits[split] = hypercube_points(n, self.dim, weights, generator)
        return splits

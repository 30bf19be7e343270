"""The paper's two-layer convolutional net on patch images and its linear baseline.

``PatchCNN`` is the model of the paper's analysis (following Allen-Zhu & Li 2020): for every
class c, m filters w_{c,r} in R^d shared over the P patches, a pointwise activation and global
sum pooling,

    F_c(x) = sum_{r=1..m} sum_{p=1..P} act(<w_{c,r}, x_p>),

no bias. ``act: cubic`` (z^3) is the non-linear model; ``act: linear`` (identity) the linear
baseline, trained identically. ``smoothed_relu`` is the polynomially smoothed ReLU of Allen-Zhu &
Li (2020), cubic near zero and linear beyond ``rho``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from dlt_runner.core.errors import choose, positive_int


class Cube(nn.Module):
    """act(z) = z^3: the cubic activation of the non-linear model."""

    def forward(self, z: Tensor) -> Tensor:
        return z**3


class SmoothedReLU(nn.Module):
    """z^3 / (3 rho^2) on [0, rho], z - 2 rho / 3 beyond, 0 below (C^1 at 0 and at rho)."""

    def __init__(self, rho: float = 0.1) -> None:
        super().__init__()
        self.rho = float(rho)

    def forward(self, z: Tensor) -> Tensor:
        rho = self.rho
        cubic = z.clamp(0, rho) ** 3 / (3 * rho**2)
        return cubic + (z - rho).clamp(min=0)


PATCH_ACTIVATIONS: dict[str, type[nn.Module]] = {
    "cubic": Cube,
    "linear": nn.Identity,
    "smoothed_relu": SmoothedReLU,
}


class PatchCNN(nn.Module):
    """Two-layer CNN on (B, P, d) patch images: ``weight`` (C, m, d), logits (B, C).

    Args:
        dim: d, the patch dimension.
        filters: m, filters per class.
        n_classes: C.
        act: ``cubic``, ``linear`` or ``smoothed_relu``.
        init_std: filters start i.i.d. N(0, init_std^2).
    """

    def __init__(
        self,
        dim: int = 100,
        filters: int = 20,
        n_classes: int = 2,
        act: str = "cubic",
        init_std: float = 0.03,
    ) -> None:
        super().__init__()
        self.act_name = act
        self.activation = choose("activation", act, PATCH_ACTIVATIONS)()
        shape = (
            positive_int("n_classes", n_classes),
            positive_int("filters", filters),
            positive_int("dim", dim),
        )
        self.weight = nn.Parameter(torch.randn(shape) * float(init_std))

    def forward(self, x: Tensor) -> Tensor:
        # (B, P, d) x (C, m, d) -> (B, C, m, P): every filter on every patch (weight sharing).
        responses = torch.einsum("bpd,cmd->bcmp", x, self.weight)
        return self.activation(responses).sum(dim=(2, 3))

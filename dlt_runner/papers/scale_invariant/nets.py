"""The scale-invariant MLP of the paper's recipe (Section 3) and the standard MLP baseline.

A network is scale invariant when f(c·θ; x) = f(θ; x) for every c > 0, jointly in all its
parameters. The paper's rules: every weight matrix feeds a parameter-free normalisation (no
biases, no trainable gains), and the output head is weight-normalised with a fixed temperature.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class NormalizedHead(nn.Module):
    """Weight-normalised linear head with a fixed temperature: logits = τ · W h / |W|_F."""

    def __init__(self, in_features: int, out_features: int, temperature: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        nn.init.kaiming_uniform_(self.weight, a=5**0.5)  # nn.Linear's default draw
        self.temperature = float(temperature)

    def forward(self, h: Tensor) -> Tensor:
        return self.temperature * F.linear(h, self.weight) / self.weight.norm()


class ScaleInvariantMLP(nn.Module):
    """[Linear (no bias) → LayerNorm (no affine) → ReLU] × depth, then a normalised head.

    Each hidden weight matrix is followed by a normalisation that removes its scale, and the
    head divides by its own norm, so the output is invariant to scaling all weights jointly
    (and to scaling each one separately).

    Args:
        in_features, hidden, out_features: widths.
        depth: number of hidden layers.
        temperature: τ of the head (fixed, not trained).
        eps: LayerNorm's variance floor. Invariance is exact only at 0; PyTorch's default 1e-5
            breaks it once a layer's pre-activation variance is that small, which an initial
            scale of 0.01 reaches, so the default here is 1e-12 (still guards a zero row).
    """

    def __init__(
        self,
        in_features: int,
        hidden: int,
        depth: int,
        out_features: int,
        temperature: float,
        eps: float = 1e-12,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = int(in_features)
        for _ in range(int(depth)):
            layers += [
                nn.Linear(width, int(hidden), bias=False),
                nn.LayerNorm(int(hidden), eps=float(eps), elementwise_affine=False),
                nn.ReLU(),
            ]
            width = int(hidden)
        self.body = nn.Sequential(*layers)
        self.head = NormalizedHead(width, int(out_features), temperature)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.body(x))


class StandardMLP(nn.Module):
    """The baseline with the same widths: [Linear (with bias) → ReLU] × depth → Linear.

    PyTorch's default initialisation, no normalisation: its output changes with the scale of
    its parameters, so its training depends on the initial scale and the loss scale.
    """

    def __init__(self, in_features: int, hidden: int, depth: int, out_features: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = int(in_features)
        for _ in range(int(depth)):
            layers += [nn.Linear(width, int(hidden)), nn.ReLU()]
            width = int(hidden)
        layers.append(nn.Linear(width, int(out_features)))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)

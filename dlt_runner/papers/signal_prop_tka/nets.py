"""The paper's deep fully-connected net with depth and width as config keys."""

from __future__ import annotations

from torch import nn

from dlt_runner.core.errors import positive_int
from dlt_runner.nn.mlp import MLP


class DeepMLP(MLP):
    """input_dim -> `depth` hidden layers of `width` -> n_classes logits, linear readout.

    The shared `MLP` with its sizes built from (depth, width), so that a sweep can type
    `model.net.depth=20`. W_l ~ N(0, sigma_w^2 / fan_in), b_l ~ N(0, sigma_b^2) in every layer,
    readout included (standard parameterisation; `parameterization='ntk'` is also accepted).
    The ordered / edge-of-chaos / chaotic phases of tanh are sigma_w < 1, ~1, > 1 at small
    sigma_b.
    """

    def __init__(
        self,
        input_dim: int,
        width: int,
        depth: int,
        n_classes: int,
        activation: str | nn.Module = "tanh",
        weight_std: float = 1.0,
        bias_std: float = 0.0,
        parameterization: str = "standard",
    ) -> None:
        depth = positive_int("model.net.depth (hidden layers)", depth)
        sizes = [int(input_dim), *[int(width)] * depth, int(n_classes)]
        super().__init__(
            sizes,
            activation=activation,
            parameterization=parameterization,
            weight_std=weight_std,
            bias_std=bias_std,
        )
        self.depth = int(depth)

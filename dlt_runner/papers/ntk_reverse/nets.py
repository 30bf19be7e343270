"""The paper's shallow mimic net and its deep fully-connected baselines, finite and infinite.

All nets use the NTK parameterisation of neural-tangents' `stax.Dense` (as the official
notebooks do), through `dlt_runner.nn.MLP`:

- `ShallowNet`: f(x) = V phi(W x / sqrt(d)) / sqrt(m), W, V ~ N(0, 1), no biases (the
  weight std 1 / bias std 0 "of the proofs" in the official `get_net_functions`).
- `DeepNet`: `depth` hidden ReLU or erf layers of width m, scales from `INIT_SCALES`.
- `DeepKernel`: the m -> infinity NNGP or NTK of a `DeepNet` on the sphere, as a function of
  rho = x.x'/d: the targets the shallow net mimics and the kernel-regression baselines.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from torch import Tensor, nn

from dlt_runner.core.errors import ConfigError, choose, positive_int, unknown_choice
from dlt_runner.nn.mlp import MLP
from dlt_runner.papers.ntk_reverse.hermite import KERNEL_KINDS
from dlt_runner.theory.closed_form_kernels import DUALS, deep_nngp_ntk

Scales = tuple[list[float], list[float]]


def he_scales(activation: str, depth: int) -> Scales:
    """sigma_w = [1, sqrt 2, ..., sqrt 2], sigma_b = 0: for ReLU exactly the paper's
    arc-cosine recursion Sigma_l = k1(Sigma_{l-1}), Theta_l = Sigma_l + Theta_{l-1} k0(.)
    (`theory.closed_form_kernels.relu_arccos_nngp_ntk`), so Theta(1) = depth + 1."""
    return [1.0] + [math.sqrt(2.0)] * depth, [0.0] * (depth + 1)


def official_scales(activation: str, depth: int) -> Scales:
    """Hidden layers sigma_w = sqrt 2, sigma_b = 0.1; readout 1, 0: the official
    `utils.get_net_fns` defaults (hermite_kernel_demos, mimic_net_training, parity)."""
    return [math.sqrt(2.0)] * depth + [1.0], [0.1] * depth + [0.0]


def fig2_scales(activation: str, depth: int) -> Scales:
    """Hidden sigma_w = 1.5 and sigma_b = 0.1 (ReLU) or 0.3 (erf); readout 1, 0: the fig_1 and
    fig_2 notebooks' `get_net_functions` defaults (the CIFAR-10 depth comparison)."""
    bias = 0.3 if activation == "erf" else 0.1
    return [1.5] * depth + [1.0], [bias] * depth + [0.0]


INIT_SCALES: dict[str, Callable[[str, int], Scales]] = {
    "he": he_scales,
    "official": official_scales,
    "fig2": fig2_scales,
}


class ShallowNet(MLP):
    """One hidden layer, f(x) = V phi(W x / sqrt(d)) / sqrt(m), NTK parameterisation, no bias.

    Args:
        in_features: d; inputs should lie on the sphere |x|^2 = d (`normalization: sphere`).
        width: m.
        out_features: number of outputs (classes).
        activation: phi, e.g. a `hermite.HermiteActivation` (or a name such as 'relu').
    """

    def __init__(
        self, in_features: int, width: int, out_features: int, activation: str | nn.Module
    ) -> None:
        super().__init__(
            [in_features, width, out_features],
            activation=activation,
            parameterization="ntk",
            weight_std=1.0,
            bias_std=0.0,
            bias=False,
        )


class DeepNet(MLP):
    """`depth` hidden layers of width m with ReLU or erf, NTK parameterisation (the baselines).

    Args:
        in_features, width, out_features: d, m and the number of outputs.
        depth: hidden layers (the official Fig. 2 sweeps 1..15; the mimic target has 4).
        activation: 'relu' or 'erf'.
        init: a name from `INIT_SCALES` (he, official, fig2).
    """

    def __init__(
        self,
        in_features: int,
        width: int,
        out_features: int,
        depth: int = 4,
        activation: str = "relu",
        init: str = "he",
    ) -> None:
        choose("activation", activation, DUALS)
        depth = positive_int("depth (hidden layers)", depth)
        weight_std, bias_std = choose("init", init, INIT_SCALES)(activation, depth)
        super().__init__(
            [in_features] + [width] * depth + [out_features],
            activation=activation,
            parameterization="ntk",
            weight_std=weight_std,
            bias_std=bias_std,
            bias=any(b > 0 for b in bias_std),
        )


class DeepKernel:
    """rho -> the infinite-width NNGP or NTK of `DeepNet(depth, activation, init)` on the sphere.

    Callable on a tensor of correlations rho in [-1, 1] (float64 result); `kind` says which
    kernel, so a shallow net can be designed to realise it (`hermite.mimic_activation`).
    """

    def __init__(
        self, activation: str = "relu", depth: int = 4, kind: str = "ntk", init: str = "he"
    ) -> None:
        self.dual = choose("activation", activation, DUALS)
        self.scales = choose("init", init, INIT_SCALES)
        if kind not in KERNEL_KINDS:
            raise ConfigError(unknown_choice("kernel kind", kind, KERNEL_KINDS))
        self.activation, self.kind, self.init = activation, kind, init
        self.depth = positive_int("depth (hidden layers)", depth)

    def nngp_ntk(self, rho: Tensor, depth: int | None = None) -> tuple[Tensor, Tensor]:
        """(NNGP, NTK) at correlation rho, for `depth` hidden layers (default: self.depth)."""
        depth = self.depth if depth is None else positive_int("depth (hidden layers)", depth)
        weight_std, bias_std = self.scales(self.activation, depth)
        return deep_nngp_ntk(
            self.dual, rho, 1.0, 1.0, depth=depth, weight_std=weight_std, bias_std=bias_std
        )

    def __call__(self, rho: Tensor) -> Tensor:
        nngp, ntk = self.nngp_ntk(rho)
        return ntk if self.kind == "ntk" else nngp

    def __repr__(self) -> str:
        return (
            f"DeepKernel(activation={self.activation!r}, depth={self.depth}, "
            f"kind={self.kind!r}, init={self.init!r})"
        )

"""Fully-connected network with a choice of parameterisation and per-layer init scales.

Shared by the IMDE vector field (Zhu et al. 2022), the shallow nets with engineered
activations (Simon et al. 2022), the wide informed nets (Yang & Ren 2022), the deep nets at
ordered / edge-of-chaos / chaotic initialisation (Lou et al. 2022) and the MLP whose empirical
NTK is regressed on (Wei et al. 2022).

Two parameterisations, as in neural-tangents' `stax.Dense` (Jacot et al. 2018; Lee et al.
2019, eq. 1) with sigma_w = `weight_std`, sigma_b = `bias_std`, n = fan-in:

- standard: W ~ N(0, sigma_w^2 / n), b ~ N(0, sigma_b^2), h' = act(W h + b);
- ntk:      W ~ N(0, 1),  b ~ N(0, 1),  h' = act(sigma_w / sqrt(n) W h + sigma_b b).

Both give the same distribution of functions at initialisation (and, for the same seed,
the same function); they differ in the gradients and hence in training dynamics and in
the scale of the empirical NTK. The last layer is linear.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from numbers import Real

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dlt_runner.core.errors import choose
from dlt_runner.nn.activations import get_activation

PARAMETERIZATIONS = ("standard", "ntk")


class ScaledLinear(nn.Linear):
    """y = weight_multiplier * (x W^T) + bias_multiplier * b: nn.Linear with NTK scaling.

    The multipliers are constants (not parameters); both are 1 in the standard
    parameterisation, so it is then exactly nn.Linear.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        weight_multiplier: float = 1.0,
        bias_multiplier: float = 1.0,
    ) -> None:
        super().__init__(in_features, out_features, bias=bias)
        self.weight_multiplier = weight_multiplier
        self.bias_multiplier = bias_multiplier

    def forward(self, x: Tensor) -> Tensor:
        if self.weight_multiplier == 1.0 and self.bias_multiplier == 1.0:
            return F.linear(x, self.weight, self.bias)
        # Scale the output, not the weight: cheaper when fan-in x fan-out >> batch x fan-out.
        out = F.linear(x, self.weight) * self.weight_multiplier
        if self.bias is not None:
            out = out + self.bias * self.bias_multiplier
        return out

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, weight_multiplier={self.weight_multiplier:.4g}, "
            f"bias_multiplier={self.bias_multiplier:.4g}"
        )


def _normal_init(layer: ScaledLinear, weight_std: float, bias_std: float, ntk: bool) -> None:
    """Gaussian init; draws the same standard normals in both parameterisations."""
    with torch.no_grad():
        fan_in = layer.in_features
        layer.weight.normal_(0.0, 1.0)
        if not ntk:
            layer.weight.mul_(weight_std / math.sqrt(fan_in))
        if layer.bias is not None:
            layer.bias.normal_(0.0, 1.0)
            if not ntk:
                layer.bias.mul_(bias_std)


def _orthogonal_init(layer: ScaledLinear, weight_std: float, bias_std: float, ntk: bool) -> None:
    """Effective weight = weight_std * (semi-)orthogonal matrix, zero biases.

    This is `torch.nn.init.orthogonal_(W, gain=weight_std)` with zero biases, as in the
    official IMDE code (Aiqing-Zhu/IMDE, `learner/nn/fnn.py`, gain 1). In the NTK
    parameterisation the stored weight is sqrt(fan_in) * Q so that the effective weight
    weight_std / sqrt(fan_in) * W is the same as in the standard one. `bias_std` is unused.
    """
    with torch.no_grad():
        nn.init.orthogonal_(layer.weight, gain=1.0 if ntk else weight_std)
        if ntk:
            layer.weight.mul_(math.sqrt(layer.in_features))
        if layer.bias is not None:
            layer.bias.zero_()


INITS: dict[str, Callable[[ScaledLinear, float, float, bool], None]] = {
    "normal": _normal_init,
    "orthogonal": _orthogonal_init,
}


def per_layer(value: float | Sequence[float], n_layers: int, name: str) -> list[float]:
    """A scalar broadcast to every linear layer, or a list with one entry per layer.

    >>> per_layer(2, 3, "weight_std")
    [2.0, 2.0, 2.0]
    """
    if isinstance(value, Real):
        return [float(value)] * n_layers
    values = [float(v) for v in value]
    if len(values) != n_layers:
        raise ValueError(
            f"{name} has {len(values)} entries but the net has {n_layers} linear layers "
            f"(readout included); give one value or a list of {n_layers}"
        )
    return values


class MLP(nn.Module):
    """Fully-connected net `sizes[0] -> ... -> sizes[-1]`, activation between layers.

    Args:
        sizes: widths including input and output, e.g. [2, 64, 64, 2]; at least 2 entries.
        activation: a name from `nn.activations.ACTIVATIONS` or an nn.Module; the same
            instance is applied after every hidden layer.
        parameterization: 'standard' or 'ntk' (module docstring).
        weight_std: sigma_w, a scalar or one value per linear layer.
        bias_std: sigma_b, a scalar or one value per linear layer.
        bias: whether the linear layers have biases.
        init: 'normal' (Gaussian, module docstring) or 'orthogonal' (gain sigma_w, zero bias).

    The linear layers are `self.layers[0..L]` (parameter names `layers.<i>.weight`,
    `layers.<i>.bias`), so per-layer kernels are keyed `layers.0`, `layers.1`, ...
    """

    def __init__(
        self,
        sizes: Sequence[int],
        activation: str | nn.Module = "relu",
        parameterization: str = "standard",
        weight_std: float | Sequence[float] = 1.0,
        bias_std: float | Sequence[float] = 0.0,
        bias: bool = True,
        init: str = "normal",
    ) -> None:
        super().__init__()
        sizes = [int(s) for s in sizes]
        if len(sizes) < 2 or min(sizes) < 1:
            raise ValueError(
                f"sizes must list at least an input and an output width, all >= 1; got {sizes}"
            )
        choose("parameterization", parameterization, dict.fromkeys(PARAMETERIZATIONS))
        choose("init", init, INITS)
        n_layers = len(sizes) - 1
        self.sizes = sizes
        self.parameterization = parameterization
        self.init = init
        self.weight_stds = per_layer(weight_std, n_layers, "weight_std")
        self.bias_stds = per_layer(bias_std, n_layers, "bias_std")
        self.activation = get_activation(activation)
        ntk = parameterization == "ntk"
        self.layers = nn.ModuleList(
            ScaledLinear(
                fan_in,
                fan_out,
                bias=bias,
                weight_multiplier=w_std / math.sqrt(fan_in) if ntk else 1.0,
                bias_multiplier=b_std if ntk else 1.0,
            )
            for fan_in, fan_out, w_std, b_std in zip(
                sizes[:-1], sizes[1:], self.weight_stds, self.bias_stds, strict=True
            )
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Redraw all weights and biases from the configured initialisation."""
        ntk = self.parameterization == "ntk"
        for layer, w_std, b_std in zip(self.layers, self.weight_stds, self.bias_stds, strict=True):
            INITS[self.init](layer, w_std, b_std, ntk)

    @property
    def layer_names(self) -> list[str]:
        """Module names of the linear layers in order: ['layers.0', 'layers.1', ...]."""
        return [f"layers.{i}" for i in range(len(self.layers))]

    def preactivations(self, x: Tensor) -> list[Tensor]:
        """Outputs of every linear layer, before the activation; the last one is f(x).

        Their per-unit second moments are the forward variances q_l of signal
        propagation (Lou et al. 2022).
        """
        outputs = []
        h = x
        for i, layer in enumerate(self.layers):
            if i > 0:
                h = self.activation(h)
            h = layer(h)
            outputs.append(h)
        return outputs

    def features(self, x: Tensor) -> Tensor:
        """Penultimate representation act(h_{L-1}) fed to the readout (x if no hidden layer)."""
        h = x
        for layer in self.layers[:-1]:
            h = self.activation(layer(h))
        return h

    def forward(self, x: Tensor) -> Tensor:
        return self.layers[-1](self.features(x))

    def extra_repr(self) -> str:
        return f"sizes={self.sizes}, parameterization={self.parameterization!r}, init={self.init!r}"

"""Per-layer tangent-kernel alignment and signal-propagation diagnostics, as pure functions.

1. Tangent kernels of each layer's weights, K_l = J_l J_l^T with J_l = d f / d W_l summed over
   the logits (the paper's §1 defines the NTK as the Gram matrix of the tangent
   features). For an MLP they factor exactly (see `layer_tangent_kernels`), which costs a few
   backward passes instead of n per-sample Jacobians; `jacobian_layer_kernels` is the generic
   per-sample-Jacobian reference (`theory.entk.empirical_ntk`).
2. Their alignment with the centred labels, A_l = <K_l, Y Y^T>_F / (||K_l||_F ||Y Y^T||_F), and
   where it peaks along the depth.
3. Signal propagation (the mechanism of the paper's Equilibrium Hypothesis): the forward
   variances q_l of the pre-activations, measured and from the mean-field length map of
   Poole et al. 2016 / Schoenholz et al. 2017, q_{l+1} = sigma_w^2 E_{z~N(0, q_l)}[phi(z)^2]
   + sigma_b^2; chi_1 = sigma_w^2 E[phi'(z)^2] (< 1 ordered, > 1 chaotic); and the per-layer
   weight-gradient norms ||dL/dW_l||_F.

Layers are numbered 1..L+1 in what this module reports (1 = the input weights W_1, L+1 = the
readout), as W_l in the paper; lists are in that order.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from dlt_runner.nn.activations import get_activation
from dlt_runner.nn.mlp import MLP
from dlt_runner.theory.alignment import kernel_alignment
from dlt_runner.theory.entk import empirical_ntk

# ---------------------------------------------------------------------------------------------
# 1. Per-layer tangent kernels
# ---------------------------------------------------------------------------------------------


def layer_tangent_kernels(
    net: MLP, x: Tensor, *, include_bias: bool = False, dtype: torch.dtype = torch.float64
) -> dict[str, Tensor]:
    """{layer name: K_l} with K_l(x, x') = sum_c <d f_c(x) / dW_l, d f_c(x') / dW_l>.

    Since z_l = m_l W_l h_{l-1} + b_l (m_l the weight multiplier: 1 in the standard
    parameterisation), d f_c / dW_l = m_l delta_l^c h_{l-1}^T with delta_l^c = d f_c / dz_l,
    and the Frobenius product of two such outer products factors:
        K_l = m_l^2 (sum_c Delta_l^c Delta_l^c^T) ∘ (H_{l-1} H_{l-1}^T),
    where ∘ is the entrywise product and row i of Delta_l^c, H_{l-1} belongs to x_i. One
    backward pass per logit gives every Delta_l^c (samples do not interact in an MLP); the
    readout's is e_c, so its first factor is the constant C. `include_bias` adds the bias
    kernel (bias multiplier)^2 sum_c Delta_l^c Delta_l^c^T. Computed on a `dtype` copy of
    the net (float64 by default: early-layer kernels of deep nets are tiny).
    """
    model = copy.deepcopy(net).to(dtype).requires_grad_(True)
    x = x.to(device=next(model.parameters()).device, dtype=dtype).flatten(1)
    with torch.enable_grad():
        preactivations = model.preactivations(x)
        logits = preactivations[-1]
        layer_inputs = [x, *(model.activation(z) for z in preactivations[:-1])]
        n, n_logits = logits.shape
        backward = [x.new_zeros(n, n) for _ in preactivations[:-1]]
        for c in range(n_logits):
            deltas = torch.autograd.grad(logits[:, c].sum(), preactivations[:-1], retain_graph=True)
            for gram, delta in zip(backward, deltas, strict=True):
                gram += delta @ delta.T
    backward.append(x.new_full((n, n), float(n_logits)))
    kernels = {}
    for name, layer, gram, h in zip(
        model.layer_names, model.layers, backward, layer_inputs, strict=True
    ):
        kernel = layer.weight_multiplier**2 * gram * (h @ h.T)
        if include_bias and layer.bias is not None:
            kernel = kernel + layer.bias_multiplier**2 * gram
        kernels[name] = kernel.detach()
    return kernels


def jacobian_layer_kernels(
    net: MLP, x: Tensor, *, include_bias: bool = False, dtype: torch.dtype = torch.float64
) -> dict[str, Tensor]:
    """The same kernels from per-sample Jacobians (`empirical_ntk`, output='trace'): the
    reference `layer_tangent_kernels` is tested against; works for any net with `layers`."""
    names = [f"{name}.weight" for name in net.layer_names]
    if include_bias:
        names += [
            f"{name}.bias"
            for name, layer in zip(net.layer_names, net.layers, strict=True)
            if layer.bias is not None
        ]
    return empirical_ntk(net, x, output="trace", per_layer=True, parameters=names, dtype=dtype)


KernelFunction = Callable[..., dict[str, Tensor]]
KERNELS: dict[str, KernelFunction] = {
    "factored": layer_tangent_kernels,
    "jacobian": jacobian_layer_kernels,
}

# ---------------------------------------------------------------------------------------------
# 2. Alignment with the labels
# ---------------------------------------------------------------------------------------------


def centered_labels(targets: Tensor) -> Tensor:
    """Y minus its column means (the paper's Y is the centred one-hot matrix), in float64.

    Then Y^T 1 = 0, so Y Y^T is already doubly centred and a constant offset in K (e.g. the
    readout kernel's all-C factor) carries no alignment.
    """
    targets = targets.double().reshape(len(targets), -1)
    return targets - targets.mean(dim=0, keepdim=True)


def layer_alignments(kernels: Mapping[str, Tensor], labels: Tensor) -> list[float]:
    """[A_1, ..., A_{L+1}], A_l = <K_l, Y Y^T>_F / (||K_l||_F ||Y Y^T||_F).

    `labels` is used as given (centre it with `centered_labels` first); NaN-safe: a kernel
    that underflowed to zero has alignment 0 (`theory.alignment.kernel_alignment`).
    """
    return [kernel_alignment(kernel, labels) for kernel in kernels.values()]


@dataclass(frozen=True)
class AlignmentPeak:
    """Where A_l peaks along the depth. `layer` is 1-based; NaNs never win."""

    layer: int
    n_layers: int
    minus_first: float  # A_peak - A_1
    minus_last: float  # A_peak - A_{L+1} (the readout)

    @property
    def is_hidden(self) -> bool:
        """Neither the first layer nor the readout: the ascent-descent shape."""
        return 1 < self.layer < self.n_layers


def alignment_peak(alignments: Sequence[float]) -> AlignmentPeak:
    values = torch.tensor([float(a) for a in alignments], dtype=torch.float64)
    index = int(values.nan_to_num(nan=-math.inf).argmax())
    peak = values[index]
    return AlignmentPeak(index + 1, len(values), float(peak - values[0]), float(peak - values[-1]))


# ---------------------------------------------------------------------------------------------
# 3. Signal propagation
# ---------------------------------------------------------------------------------------------


def forward_variances(net: MLP, x: Tensor) -> list[float]:
    """Measured q_l = mean over samples and units of z_l^2, for l = 1..L+1 (readout last)."""
    with torch.no_grad():
        return [float(z.double().pow(2).mean()) for z in net.preactivations(x)]


def weight_gradient_norms(net: MLP, loss: Tensor) -> list[float]:
    """||dL/dW_l||_F for l = 1..L+1, without touching the parameters' `.grad`."""
    weights = [layer.weight for layer in net.layers]
    gradients = torch.autograd.grad(loss, weights, allow_unused=True)
    return [0.0 if g is None else float(g.double().norm()) for g in gradients]


# Trapezoid rule on a uniform grid: for integrands analytic in a strip |Im z| < a it converges
# like exp(-2 pi a / h) (Trefethen & Weideman 2014), so it stays accurate when phi(sqrt(q) z)
# sharpens towards a step at large q, where 201-node Gauss-Hermite is off by 3e-2 (erf^2, q = 100).
_GRID_STEP = 0.02
_GRID = torch.arange(-1200, 1201, dtype=torch.float64) * _GRID_STEP  # |z| <= 24 sigma
_GRID_WEIGHTS = _GRID_STEP * torch.exp(-(_GRID**2) / 2) / math.sqrt(2 * math.pi)


def gaussian_expectation(function: Callable[[Tensor], Tensor], variance: Tensor | float) -> Tensor:
    """E_{z ~ N(0, variance)}[function(z)], elementwise in `variance`, in float64.

    Trapezoid rule in z / sqrt(variance) on [-24, 24] with step 0.02: round-off-level error
    for erf^2 and erf'^2 up to variance 300, 1e-7 at 1,000 (the integrand sharpens like
    phi(sqrt(q) z)); standardised inputs and sigma_w <= 3 keep q below ~10 here."""
    variance = torch.as_tensor(variance, dtype=torch.float64)
    points = variance.clamp_min(0).sqrt().unsqueeze(-1) * _GRID.to(variance.device)
    return (function(points) * _GRID_WEIGHTS.to(variance.device)).sum(-1)


def _derivative(activation: nn.Module) -> Callable[[Tensor], Tensor]:
    def derivative(z: Tensor) -> Tensor:
        with torch.enable_grad():
            z = z.detach().requires_grad_(True)
            return torch.autograd.grad(activation(z).sum(), z)[0]

    return derivative


def length_map(
    variance: Tensor | float, weight_std: float, bias_std: float, activation: str | nn.Module
) -> Tensor:
    """q_{l+1} = sigma_w^2 E_{z~N(0, q_l)}[phi(z)^2] + sigma_b^2 (the mean-field length map)."""
    phi = get_activation(activation)
    return weight_std**2 * gaussian_expectation(lambda z: phi(z) ** 2, variance) + bias_std**2


def mean_field_variances(
    x: Tensor,
    weight_stds: Sequence[float],
    bias_stds: Sequence[float],
    activation: str | nn.Module,
) -> list[float]:
    """Infinite-width q_l, l = 1..len(weight_stds), for inputs x (n, d), averaged over x.

    q_1(x) = sigma_w1^2 |x|^2 / d + sigma_b1^2, then `length_map` per input (the map is
    nonlinear, so each input is propagated before averaging). The finite-width `MLP` with
    the same sigma_w, sigma_b matches it up to O(1/width) and sampling noise.
    """
    x = x.double().flatten(1)
    variance = weight_stds[0] ** 2 * x.pow(2).mean(1) + bias_stds[0] ** 2
    variances = [float(variance.mean())]
    for weight_std, bias_std in zip(weight_stds[1:], bias_stds[1:], strict=True):
        variance = length_map(variance, weight_std, bias_std, activation)
        variances.append(float(variance.mean()))
    return variances


def fixed_point_variance(
    weight_std: float, bias_std: float, activation: str | nn.Module, iterations: int = 500
) -> float:
    """q* = length_map(q*): the depth-independent variance deep layers settle at (from q = 1)."""
    variance = torch.tensor(1.0, dtype=torch.float64)
    for _ in range(iterations):
        variance = length_map(variance, weight_std, bias_std, activation)
    return float(variance)


def chi1(variance: Tensor | float, weight_std: float, activation: str | nn.Module) -> float:
    """chi_1 = sigma_w^2 E_{z~N(0, q)}[phi'(z)^2]: < 1 ordered, = 1 edge of chaos, > 1 chaotic
    (at q = q*); it is also the factor by which backward gradients grow per layer."""
    derivative = _derivative(get_activation(activation))
    return float(weight_std**2 * gaussian_expectation(lambda z: derivative(z) ** 2, variance))

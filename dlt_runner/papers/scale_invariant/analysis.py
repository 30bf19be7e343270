"""The paper's quantities as pure functions: norms, the clip threshold, the effective step.

For a scale-invariant f, ⟨∇L(θ), θ⟩ = 0 and ∇L(cθ) = ∇L(θ)/c (paper Section 2), so a step of
size η on θ moves the direction θ/|θ| by η|∇L(θ/|θ|)|/|θ|²: the effective learning rate is
η/|θ|².
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Sequence

import torch
from torch import Tensor, nn


def global_norm(tensors: Iterable[Tensor]) -> Tensor:
    """|θ|: the Euclidean norm of all tensors taken together."""
    tensors = list(tensors)
    if not tensors:
        return torch.tensor(0.0)
    return torch.linalg.vector_norm(torch.stack([t.detach().norm() for t in tensors]))


def clip_threshold(param_norm: float, lr: float, weight_decay: float) -> float:
    """|θ|·sqrt(2λ/η): the gradient-norm bound of the paper's clipping rule."""
    return float(param_norm) * math.sqrt(2.0 * float(weight_decay) / float(lr))


def effective_lr(lr: float, param_norm: float) -> float:
    """η/|θ|²: the learning rate felt by the direction of a scale-invariant net's weights."""
    return float(lr) / float(param_norm) ** 2


def equilibrium_angular_update(lr: float, weight_decay: float) -> float:
    """sqrt(2ηλ): the angular update per step once |θ| has settled (paper Section 3)."""
    return math.sqrt(2.0 * float(lr) * float(weight_decay))


def scale_parameters(net: nn.Module, factor: float) -> None:
    """Multiply every parameter by ``factor`` (the initial-scale sweep α of Section 5)."""
    with torch.no_grad():
        for parameter in net.parameters():
            parameter.mul_(float(factor))


def scale_invariance_error(net: nn.Module, x: Tensor, factors: Sequence[float]) -> float:
    """max over c of |f(cθ; x) − f(θ; x)|∞ / |f(θ; x)|∞ (0 for a scale-invariant net)."""
    reference = net(x)
    worst = 0.0
    for factor in factors:
        scaled = copy.deepcopy(net)
        scale_parameters(scaled, factor)
        worst = max(worst, float((scaled(x) - reference).abs().max() / reference.abs().max()))
    return worst

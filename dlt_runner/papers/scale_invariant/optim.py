"""SGD with weight decay and the paper's norm-proportional gradient clipping (abstract, Section 3).

Before each step the global gradient norm is clipped to |θ|·sqrt(2λ/η), with λ the weight
decay and η the learning rate: sqrt(2ηλ) is the angular update per step at the equilibrium
norm of a scale-invariant net, so the clip only removes steps far larger than that. Because the
threshold depends on |θ|, the rule lives in the optimiser, not in the trainer's fixed
``gradient_clip_val``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch
from torch import Tensor

from dlt_runner.core.errors import ConfigError
from dlt_runner.papers.scale_invariant.analysis import clip_threshold, global_norm


class NormClippedSGD(torch.optim.SGD):
    """``torch.optim.SGD`` whose step first clips the gradient norm to |θ|·sqrt(2λ/η).

    Exposes the last step's ``param_norm``, ``grad_norm`` and ``clipped`` (whether the clip
    fired) for logging. λ and η are read from the first parameter group at every step, so a
    learning-rate schedule moves the threshold with it.

    Args:
        params, lr, momentum, weight_decay: as ``torch.optim.SGD``.
        clip: apply the clipping rule (needs ``weight_decay > 0``).
    """

    def __init__(
        self,
        params: Iterable[Tensor],
        lr: float,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        clip: bool = True,
    ) -> None:
        if clip and weight_decay <= 0:
            raise ConfigError(
                "model.optimizer.clip=true needs model.optimizer.weight_decay > 0: the threshold "
                f"|θ|·sqrt(2λ/η) is 0 when λ = 0 (got weight_decay={weight_decay})"
            )
        super().__init__(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
        self.clip = bool(clip)
        self.param_norm = math.nan
        self.grad_norm = math.nan
        self.clipped = False

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        params = [p for group in self.param_groups for p in group["params"]]
        grads = [p.grad for p in params if p.grad is not None]
        self.param_norm = float(global_norm(params))
        self.grad_norm = float(global_norm(grads))
        self.clipped = False
        if self.clip and grads:
            group = self.param_groups[0]
            threshold = clip_threshold(self.param_norm, group["lr"], group["weight_decay"])
            if self.grad_norm > threshold:
                torch._foreach_mul_(grads, threshold / (self.grad_norm + 1e-12))
                self.clipped = True
        return super().step(closure)

"""Gradient descent with one adaptive global step size per model (Razin et al. 2021's optimiser).

Razin, Maman & Cohen train their tensor factorisations with a variant of RMSprop that keeps a
single moving average of the squared gradient *norm* of the whole model rather than one per
coordinate (noamrazin/imp_reg_in_tf, ``common/train/optim/group_rsmprop.py``):

    a_t = alpha a_{t-1} + (1 - alpha) ||g_t||^2,       a_hat_t = a_t / (1 - alpha^t),
    theta_{t+1} = theta_t - lr / (sqrt(a_hat_t) + eps) * g_t.

Every coordinate moves along the plain gradient; only the step length adapts, so the direction
(hence the implicit bias of gradient descent) is that of GD. With ``n_models > 1`` every
parameter's leading axis indexes independent models (initialisations trained side by side) and
each model gets its own average and step, exactly as if it were trained alone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor

from dlt_runner.core.errors import ConfigError, positive_int


class GroupRMSprop(torch.optim.Optimizer):
    """Full-gradient steps of length lr / (sqrt(bias-corrected EMA of ||grad||^2) + eps).

    Args:
        params: parameters (or parameter groups; ``lr`` may differ per group, the average is
            over all of them: one model).
        lr: base step size (a scheduler may change it per group).
        alpha: decay of the moving average of the squared gradient norm (Razin et al.: 0.99).
        eps: added to the root of the average (Razin et al.: 1e-6).
        n_models: independent models stacked along every parameter's first axis.
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-6,
        n_models: int = 1,
    ) -> None:
        if lr < 0 or eps < 0 or not 0 <= alpha < 1:
            raise ConfigError(
                f"GroupRMSprop needs lr >= 0, eps >= 0 and 0 <= alpha < 1, got lr={lr}, "
                f"eps={eps}, alpha={alpha}"
            )
        self.n_models = positive_int("optimizer.n_models", n_models)
        super().__init__(params, {"lr": lr, "alpha": alpha, "eps": eps})
        for group in self.param_groups:
            for p in group["params"]:
                if self.n_models > 1 and (p.dim() == 0 or p.shape[0] != self.n_models):
                    raise ConfigError(
                        f"GroupRMSprop(n_models={self.n_models}) needs every parameter's first "
                        f"axis to index the models, got a parameter of shape {tuple(p.shape)}"
                    )

    def _squared_norm(self, grad: Tensor) -> Tensor:
        if self.n_models == 1:
            return grad.pow(2).sum()
        return grad.pow(2).reshape(self.n_models, -1).sum(dim=1)

    @torch.no_grad()
    def step(self, closure: Callable[[], Tensor] | None = None) -> Tensor | None:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        grads = [(g, p) for g in self.param_groups for p in g["params"] if p.grad is not None]
        if not grads:
            return loss
        # The model's state lives with its first parameter, so state_dict/load_state_dict work.
        state = self.state[self.param_groups[0]["params"][0]]
        if not state:
            first = grads[0][1]
            state["step"] = torch.zeros((), dtype=torch.float64)
            shape = () if self.n_models == 1 else (self.n_models,)
            state["square_avg"] = torch.zeros(shape, dtype=first.dtype, device=first.device)
        alpha = self.param_groups[0]["alpha"]
        squared = torch.stack([self._squared_norm(p.grad) for _, p in grads]).sum(dim=0)
        state["step"] += 1
        state["square_avg"].mul_(alpha).add_(squared, alpha=1 - alpha)
        root = (state["square_avg"] / (1 - alpha ** state["step"].item())).sqrt()
        for group, p in grads:
            scale = group["lr"] / (root + group["eps"])
            if self.n_models > 1:
                scale = scale.reshape(-1, *([1] * (p.dim() - 1)))
            p.sub_(scale * p.grad)
        return loss

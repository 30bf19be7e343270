"""Learning-rate schedules that configs name directly (``_partial_: true``)."""

from __future__ import annotations

import math

import torch
from torch.optim.lr_scheduler import CosineAnnealingLR, ExponentialLR, LRScheduler, StepLR

from dlt_runner.core.errors import ConfigError


def exponential_decay(optimizer: torch.optim.Optimizer, factor: float, steps: int) -> LRScheduler:
    """Multiply the learning rate by ``factor`` over ``steps`` optimiser steps, geometrically.

    IMDE's official runs divide the rate by 1000 over training this way (``factor=1e-3``).
    """
    if steps is None or int(steps) < 1:
        raise ConfigError(f"exponential_decay needs steps >= 1 (trainer.max_steps), got {steps}")
    if not 0 < factor <= 1:
        raise ConfigError(f"exponential_decay factor must be in (0, 1], got {factor}")
    return ExponentialLR(optimizer, gamma=math.exp(math.log(factor) / int(steps)))


def cosine_decay(
    optimizer: torch.optim.Optimizer, steps: int, final_factor: float = 0.0
) -> LRScheduler:
    """Cosine decay of the learning rate over ``steps`` optimiser steps to ``final_factor`` × lr."""
    if steps is None or int(steps) < 1:
        raise ConfigError(f"cosine_decay needs steps >= 1 (trainer.max_steps), got {steps}")
    base = optimizer.param_groups[0]["lr"]
    return CosineAnnealingLR(optimizer, T_max=int(steps), eta_min=base * final_factor)


def step_decay(
    optimizer: torch.optim.Optimizer, steps: int, n_decays: int = 8, gamma: float = 0.9
) -> LRScheduler:
    """Multiply the rate by ``gamma`` every ``steps // n_decays`` optimiser steps.

    ClofNet's official schedule (StepLR every epochs/8 epochs, gamma 0.9), counted in
    optimiser steps; bind ``steps`` to ``${trainer.max_steps}``.
    """
    if steps is None or int(steps) < 1:
        raise ConfigError(f"step_decay needs steps >= 1 (trainer.max_steps), got {steps}")
    if int(n_decays) < 1 or not 0 < gamma <= 1:
        raise ConfigError(
            f"step_decay needs n_decays >= 1 and 0 < gamma <= 1, got {n_decays}, {gamma}"
        )
    return StepLR(optimizer, step_size=max(1, int(steps) // int(n_decays)), gamma=gamma)

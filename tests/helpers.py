"""Helpers shared by several test files (imported as ``from helpers import ...``; pytest puts
``tests/`` on ``sys.path`` because ``tests/conftest.py`` lives there)."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from dlt_runner.core.module import RunnerModule


def objective(module: RunnerModule, batch: Mapping[str, Tensor]) -> Tensor:
    """The training loss of ``module`` on ``batch``, without the extra scalars some modules add."""
    loss = module.loss(batch)
    return loss[0] if isinstance(loss, tuple) else loss


def train_full_batch(
    module: RunnerModule,
    batch: Mapping[str, Tensor],
    steps: int,
    optimizer: torch.optim.Optimizer | None = None,
) -> list[float]:
    """``steps`` optimiser steps on the same batch, outside Lightning.

    Uses the module's own optimiser (its ``optimizer`` config) unless one is given. Returns the
    loss before every step and after the last one (``steps + 1`` values), so a test asserts
    ``losses[-1] < fraction * losses[0]``.
    """
    if optimizer is None:
        optimizer = module.optimizer_factory(module.trainable_parameters())
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss = objective(module, batch)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    losses.append(float(objective(module, batch).detach()))
    return losses


def quiet_trainer(max_steps: int, **options):
    """A CPU Lightning Trainer that writes nothing (no logger, checkpoint, bar or summary)."""
    import pytorch_lightning as pl

    defaults = {
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "accelerator": "cpu",
        "devices": 1,
    }
    return pl.Trainer(max_steps=max_steps, **{**defaults, **options})

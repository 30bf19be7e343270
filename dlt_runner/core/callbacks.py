"""Callbacks every run shares (the ``callbacks/default.yaml`` group)."""

from __future__ import annotations

import math
import time
from typing import Any

import pytorch_lightning as pl


class DivergenceGuard(pl.Callback):
    """Stop training when the loss becomes non-finite; the run is then recorded as ``diverged``.

    A diverging run is a result, not a crash: the sweep goes on and ``metrics.json`` says
    ``"status": "diverged"`` with the step at which it happened.
    """

    def __init__(self, check_every_n_calls: int = 1) -> None:
        self.check_every_n_calls = max(1, int(check_every_n_calls))
        self.diverged_at_step: int | None = None

    @property
    def diverged(self) -> bool:
        return self.diverged_at_step is not None

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any
    ) -> None:
        if trainer.fit_loop.epoch_loop.batch_progress.current.completed % self.check_every_n_calls:
            return
        loss = getattr(pl_module, "last_train_loss", None)
        if loss is None:
            return
        value = float(loss.float().mean())  # one host sync per check
        if not math.isfinite(value):
            self.diverged_at_step = trainer.global_step
            trainer.should_stop = True

    def state_dict(self) -> dict[str, Any]:
        return {"diverged_at_step": self.diverged_at_step}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.diverged_at_step = state_dict.get("diverged_at_step")


class FitTimer(pl.Callback):
    """Wall time of the training loop and its optimiser steps (``timing`` in metrics.json)."""

    def __init__(self) -> None:
        self.fit_seconds = 0.0
        self._started: float | None = None
        self.steps_at_start = 0
        self.steps = 0

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.steps_at_start = trainer.global_step
        self._started = time.perf_counter()

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._started is not None:
            self.fit_seconds = time.perf_counter() - self._started
        self.steps = trainer.global_step

"""Callbacks every run shares (the ``callbacks/default.yaml`` group).

Their results travel in ``trainer.callback_metrics`` (``diverged_at_step``, ``timing/*``):
under ``ddp_spawn`` training happens in child processes, and callback metrics are what
Lightning sends back to the main process, which writes ``metrics.json``.
"""

from __future__ import annotations

import math
import time
from typing import Any

import pytorch_lightning as pl
import torch

DIVERGED_KEY = "diverged_at_step"
TIMING_PREFIX = "timing/"


class DivergenceGuard(pl.Callback):
    """Stop training when the loss becomes non-finite; the run is then recorded as ``diverged``.

    A diverging run is a result, not a crash: the sweep goes on and ``metrics.json`` says
    ``"status": "diverged"`` with the step at which it happened.
    """

    def __init__(self, check_every_n_calls: int = 1) -> None:
        self.check_every_n_calls = max(1, int(check_every_n_calls))

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any
    ) -> None:
        if trainer.fit_loop.epoch_loop.batch_progress.current.completed % self.check_every_n_calls:
            return
        loss = getattr(pl_module, "last_train_loss", None)
        if loss is None:
            return
        if not math.isfinite(float(loss.float().mean())):  # one host sync per check
            trainer.callback_metrics[DIVERGED_KEY] = torch.tensor(float(trainer.global_step))
            trainer.should_stop = True


class FitTimer(pl.Callback):
    """Wall time of the training loop and the optimiser steps it made (``timing`` record)."""

    def __init__(self) -> None:
        self._started: tuple[float, float] | None = None

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._started = (time.perf_counter(), time.process_time())

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        wall, cpu = self._started or (time.perf_counter(), time.process_time())
        # CPU time of this process: on a busy machine it measures the work, not the waiting.
        timing = {
            "fit_seconds": time.perf_counter() - wall,
            "fit_cpu_seconds": time.process_time() - cpu,
            "steps": float(trainer.global_step),
        }
        for name, value in timing.items():
            trainer.callback_metrics[f"{TIMING_PREFIX}{name}"] = torch.tensor(
                value, dtype=torch.float64
            )

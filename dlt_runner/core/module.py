"""The LightningModule every paper extends: optimisation, logging and evaluation written once.

A paper module implements three things:

- :meth:`RunnerModule.loss` — the training objective on one minibatch (plus extra scalars);
- :meth:`RunnerModule.evaluate` — metrics on an evaluation batch (default: the loss);
- :meth:`RunnerModule.analysis` — the paper's end-of-fit measurements (``analysis/*``).

Optimisation is manual so that one Lightning ``training_step`` can make several optimiser
steps (one per minibatch of the chunk the datamodule yields); ``trainer.global_step`` still
counts optimiser steps, so ``trainer.max_steps`` means what it says.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pytorch_lightning as pl
import torch
from torch import Tensor, nn

from dlt_runner.core.datamodule import Batch

OptimizerFactory = Callable[..., torch.optim.Optimizer]
_STEP_HOOKS = (
    "on_before_backward",
    "on_after_backward",
    "on_before_optimizer_step",
    "on_before_zero_grad",
)
SchedulerFactory = Callable[..., Any]


class RunnerModule(pl.LightningModule):
    """Base module: holds ``net``, builds the optimiser from a ``_partial_`` config.

    Args:
        net: the paper's ``nn.Module`` (injected from the ``net:`` config node).
        optimizer: a partial optimiser, called with the parameters to optimise.
        scheduler: optional partial LR scheduler, stepped after every optimiser step.
        log_every_n_steps: log training scalars (loss, learning rate, the paper's extras) every
            this many optimiser steps; logging every step costs ≈ 0.35 ms, more than a small
            model's step.
    """

    def __init__(
        self,
        net: nn.Module,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        log_every_n_steps: int = 50,
    ) -> None:
        super().__init__()
        self.net = net
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.log_every_n_steps = max(1, int(log_every_n_steps))
        self.automatic_optimization = False
        self.last_train_loss: Tensor | None = None
        self._direct_steps: bool | None = None  # decided once per fit, see _step_directly

    # ----------------------------------------------------------------- paper hooks
    def loss(self, batch: Batch) -> Tensor | tuple[Tensor, Mapping[str, Tensor]]:
        """Training objective on one minibatch; optionally with extra scalars to log."""
        raise NotImplementedError

    def evaluate(self, batch: Batch, split: str) -> Mapping[str, Tensor]:
        """Metrics on an evaluation batch, logged as ``<split>/<name>`` (epoch means)."""
        loss = self.loss(batch)
        return {"loss": loss[0] if isinstance(loss, tuple) else loss}

    def analysis(self, datamodule: pl.LightningDataModule) -> dict[str, Any]:
        """The paper's end-of-run measurements: scalars, or lists for curves."""
        return {}

    def trainable_parameters(self) -> list[nn.Parameter]:
        """Parameters handed to the optimiser (override to exclude frozen parts)."""
        return [p for p in self.parameters() if p.requires_grad]

    # ----------------------------------------------------------------- Lightning
    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer_factory(self.trainable_parameters())
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }

    def training_step(self, chunk: list[Batch], chunk_idx: int) -> None:
        optimizer = self.optimizers()
        scheduler = self.lr_schedulers()
        steps = self._steps_left(len(chunk))
        direct = self._step_directly()
        for batch in chunk[:steps]:
            optimizer.zero_grad(set_to_none=True)
            loss, extras = self._split_loss(self.loss(batch))
            if direct:
                loss.backward()
                # Lightning's own step accounting (global_step), without its plugin/hook layers.
                optimizer._on_before_step()
                optimizer.optimizer.step()
                optimizer._on_after_step()
            else:
                self.manual_backward(loss)
                optimizer.step()
            if scheduler is not None:
                scheduler.step()
        self.last_train_loss = loss.detach()
        if self._log_now(steps):
            self.log("train/loss", self.last_train_loss, prog_bar=True)
            self.log("train/lr", optimizer.param_groups[0]["lr"])
            for name, value in extras.items():
                self.log(f"train/{name}", value)

    def on_train_start(self) -> None:
        self._direct_steps = None

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        self._log_eval(batch, "val")

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        self._log_eval(batch, "test")

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Lightning does not save RNG state; resumed runs must draw the same random numbers.
        checkpoint["rng_state"] = {"torch": torch.get_rng_state()}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if "rng_state" in checkpoint:
            torch.set_rng_state(checkpoint["rng_state"]["torch"])

    # ----------------------------------------------------------------- helpers
    def _step_directly(self) -> bool:
        """Whether backward and the optimiser step may bypass Lightning's wrappers.

        ``manual_backward`` and ``LightningOptimizer.step`` cost ≈ 0.3 ms per step in hook
        dispatch and plugin layers: as much as a small model's whole step. They do nothing
        here when the run is on one device, the precision needs no loss scaling, the profiler
        is off, and neither a callback nor this module overrides the backward/step hooks;
        then the step is taken directly (same arithmetic, same ``global_step``).
        """
        if self._direct_steps is None:
            self._direct_steps = self.allow_direct_steps and _direct_steps_allowed(
                self.trainer, self
            )
        return self._direct_steps

    #: Set False to always go through Lightning's manual_backward / optimizer.step.
    allow_direct_steps = True

    @staticmethod
    def _split_loss(result: Tensor | tuple[Tensor, Mapping[str, Tensor]]):
        if isinstance(result, tuple):
            return result[0], dict(result[1])
        return result, {}

    def _steps_left(self, chunk_length: int) -> int:
        max_steps = self.trainer.max_steps if self._trainer is not None else -1
        if max_steps is None or max_steps < 0:
            return chunk_length
        return max(1, min(chunk_length, max_steps - self.global_step))

    def _log_now(self, steps: int) -> bool:
        # True when this chunk's steps crossed a multiple of log_every_n_steps (the trainer's own
        # log_every_n_steps is 1, so whatever is logged here reaches the loggers).
        step = self.global_step
        return step // self.log_every_n_steps != (step - steps) // self.log_every_n_steps

    def _log_eval(self, batch: Batch, split: str) -> None:
        size = len(next(iter(batch.values())))
        for name, value in self.evaluate(batch, split).items():
            self.log(
                f"{split}/{name}",
                value,
                on_epoch=True,
                batch_size=size,
                sync_dist=self.trainer.world_size > 1,
            )


def _direct_steps_allowed(trainer: pl.Trainer, module: pl.LightningModule) -> bool:
    from pytorch_lightning.plugins.precision import (
        DoublePrecision,
        HalfPrecision,
        MixedPrecision,
        Precision,
    )
    from pytorch_lightning.profilers import PassThroughProfiler
    from pytorch_lightning.strategies import SingleDeviceStrategy
    from pytorch_lightning.utilities.model_helpers import is_overridden

    precision = trainer.precision_plugin
    scales_loss = isinstance(precision, MixedPrecision) and precision.scaler is not None
    plain_precision = type(precision) in (Precision, DoublePrecision, HalfPrecision, MixedPrecision)
    hooks_used = any(
        is_overridden(hook, callback, pl.Callback)
        for callback in trainer.callbacks
        for hook in _STEP_HOOKS
    ) or any(is_overridden(hook, module, pl.LightningModule) for hook in _STEP_HOOKS)
    return (
        type(trainer.strategy) is SingleDeviceStrategy
        and plain_precision
        and not scales_loss
        and isinstance(trainer.profiler, PassThroughProfiler)
        and not hooks_used
    )

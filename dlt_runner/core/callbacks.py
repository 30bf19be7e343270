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
from pytorch_lightning.callbacks.progress import ProgressBar

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


class RandomState(pl.Callback):
    """Save and restore every random stream a run draws from, so a resumed run is exact.

    Lightning's checkpoints hold the weights, optimisers, schedulers and loop counters but
    no random state; a run resumed after a kill would otherwise draw different numbers
    from the point it resumes. Saved: torch's CPU generator, every CUDA device's generator,
    NumPy's global generator and Python's ``random``. Under several processes each rank
    restores rank 0's state (the one in the checkpoint).
    """

    KEY = "random_state"

    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        import random

        import numpy as np

        name, keys, position, has_gauss, cached_gaussian = np.random.get_state()
        state: dict[str, Any] = {
            "torch": torch.get_rng_state(),
            # Plain types and tensors only: Lightning loads checkpoints with weights_only=True.
            "numpy": {
                "name": name,
                "keys": torch.from_numpy(keys.astype(np.int64)),
                "position": int(position),
                "has_gauss": int(has_gauss),
                "cached_gaussian": float(cached_gaussian),
            },
            "python": random.getstate(),
        }
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["cuda"] = torch.cuda.get_rng_state_all()
        checkpoint[self.KEY] = state

    def on_load_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        import random

        import numpy as np

        # "rng_state": checkpoints of earlier versions, which saved torch's CPU generator only.
        state = checkpoint.get(self.KEY) or checkpoint.get("rng_state")
        if not state:
            return
        torch.set_rng_state(state["torch"])
        if "numpy" in state:
            saved = state["numpy"]
            np.random.set_state(
                (
                    saved["name"],
                    saved["keys"].numpy().astype(np.uint32),
                    saved["position"],
                    saved["has_gauss"],
                    saved["cached_gaussian"],
                )
            )
        if "python" in state:
            random.setstate(state["python"])
        cuda = state.get("cuda")
        if cuda and torch.cuda.is_available():
            # A run resumed on fewer devices restores the generators of the devices it has.
            for device, device_state in enumerate(cuda[: torch.cuda.device_count()]):
                torch.cuda.set_rng_state(device_state, device)


class StepProgressBar(ProgressBar):
    """One bar over optimiser steps toward ``trainer.max_steps``, with rate and ETA.

    The runner's modules make several optimiser steps per Lightning step, so Lightning's
    per-epoch bar shows ``1/1`` and no ETA; this bar counts ``trainer.global_step``.
    Validation and testing draw no bar of their own. ``refresh_rate`` is the number of
    Lightning steps between updates; 0 draws no bar (the default when output is not a
    terminal, see ``dlt_runner.core.resolvers.progress_refresh``).
    """

    def __init__(self, refresh_rate: int = 1) -> None:
        super().__init__()
        self.refresh_rate = max(0, int(refresh_rate))
        self._enabled = self.refresh_rate > 0
        self._bar: Any = None
        self._calls = 0

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = self.refresh_rate > 0

    @property
    def is_enabled(self) -> bool:
        return self._enabled and self._bar is not None

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self._enabled or not trainer.is_global_zero:
            return
        from tqdm import tqdm

        total = trainer.max_steps if trainer.max_steps and trainer.max_steps > 0 else None
        self._calls = 0
        self._bar = tqdm(
            total=total,
            initial=trainer.global_step,
            desc="train",
            unit="step",
            dynamic_ncols=True,
            smoothing=0.1,
        )

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any
    ) -> None:
        if self._bar is None:
            return
        self._calls += 1
        if self._calls % self.refresh_rate:
            return
        self._bar.update(trainer.global_step - self._bar.n)
        loss = trainer.progress_bar_metrics.get("train/loss")
        if loss is not None:
            self._bar.set_postfix_str(f"loss={float(loss):.4g}", refresh=False)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._close(trainer)

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        self._close(trainer)

    def _close(self, trainer: pl.Trainer) -> None:
        if self._bar is not None:
            self._bar.update(trainer.global_step - self._bar.n)
            self._bar.close()
            self._bar = None


class LoggerCheckpointState(pl.Callback):
    """Checkpoint the state of loggers that have one (see ``CSVLogger.checkpoint_state``).

    Called while a checkpoint is assembled, before its file is written: the rows a logger
    has flushed are then all rows logged up to the checkpoint, so a run resumed from it can
    drop the ones logged after it.
    """

    KEY = "logger_states"

    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        states = {
            _logger_key(index, logger): logger.checkpoint_state()
            for index, logger in enumerate(trainer.loggers)
            if hasattr(logger, "checkpoint_state")
        }
        if states:
            checkpoint[self.KEY] = states

    def on_load_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        states = checkpoint.get(self.KEY, {})
        for index, logger in enumerate(trainer.loggers):
            state = states.get(_logger_key(index, logger))
            if state is not None and hasattr(logger, "restore_checkpoint_state"):
                logger.restore_checkpoint_state(state)


class LastMetrics(pl.Callback):
    """Checkpoint the last logged values (``train/loss``, ``val/loss``...) with the weights.

    Lightning keeps them in ``trainer.callback_metrics``, which no checkpoint holds: a run
    killed after its last checkpoint (during the final test or analysis) and resumed from it
    trains no further step, and would end without them. Values logged after the resume
    replace the restored ones; timing and divergence records are the resumed fit's own.
    """

    KEY = "last_metrics"

    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        checkpoint[self.KEY] = {
            name: float(value)
            for name, value in trainer.callback_metrics.items()
            if not name.startswith(TIMING_PREFIX) and name != DIVERGED_KEY and value.numel() == 1
        }

    def on_load_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        self._restored = dict(checkpoint.get(self.KEY, {}))

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # on_fit_end, not on_train_end: a fit resumed at max_steps skips the training loop.
        for name, value in getattr(self, "_restored", {}).items():
            trainer.callback_metrics.setdefault(name, torch.tensor(value, dtype=torch.float64))


def _logger_key(index: int, logger: Any) -> str:
    return f"{index}:{type(logger).__name__}"

"""Lightning's ``ModelCheckpoint`` with step- and time-triggered saves taken once the step is
complete, so a run resumed from one loses nothing.

Lightning calls ``on_train_batch_end`` before it hands the step's logged values to the
loggers and before the epoch-end validation. A checkpoint saved there (``every_n_train_steps``,
``train_time_interval``; Lightning's own deferral covers only automatic optimisation) resumes
after a step whose CSV / W&B record was never written, and, on an epoch's last batch,
Lightning's restart skips that epoch's validation. Here such a save waits for the next
``on_train_batch_start`` (inside an epoch) or ``on_train_epoch_end`` (after its last batch,
when its validation has run): the same optimiser step, with everything of it done and logged.
Epoch- and validation-triggered saves are Lightning's, unchanged.
"""

from __future__ import annotations

import time
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import ModelCheckpoint as _LightningModelCheckpoint


class ModelCheckpoint(_LightningModelCheckpoint):
    """``pytorch_lightning.callbacks.ModelCheckpoint`` whose step/time saves wait until the
    step's records are logged and its epoch-end validation has run."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._save_due = False

    def _step_or_time_due(self, trainer: pl.Trainer) -> bool:
        if self._every_n_train_steps >= 1 and trainer.global_step % self._every_n_train_steps == 0:
            return True
        if self._train_time_interval is None or self._last_time_checked is None:
            return False
        now = time.monotonic()
        due = now - self._last_time_checked >= self._train_time_interval.total_seconds()
        # Ranks may disagree about elapsed time: rank 0 decides for all (as Lightning does).
        due = bool(trainer.strategy.broadcast(due))
        if due:
            self._last_time_checked = now
        return due

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        if self._step_or_time_due(trainer):
            self._save_due = True

    def _save_if_due(self, trainer: pl.Trainer) -> None:
        if not self._save_due:
            return
        self._save_due = False
        if self._should_skip_saving_checkpoint(trainer):
            return
        candidates = self._monitor_candidates(trainer)
        if self.monitor is not None and self.monitor not in candidates:
            self._defer_save_until_validation = True  # Lightning saves it after validation
            return
        self._save_topk_checkpoint(trainer, candidates)
        self._save_last_checkpoint(trainer, candidates)

    def on_train_batch_start(self, trainer: pl.Trainer, *args: Any) -> None:
        self._save_if_due(trainer)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._save_if_due(trainer)
        super().on_train_epoch_end(trainer, pl_module)

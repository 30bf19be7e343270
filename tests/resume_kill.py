"""Test-only pieces for the resume tests: a callback that SIGKILLs a run at a chosen point, one
that holds a run still at a chosen step so a test can kill it from outside, and an IMDE module
whose loss draws from every random stream a run may use.

Used from a ``dlt-run`` subprocess (``tests/`` on its PYTHONPATH), e.g.
``+callbacks.kill._target_=resume_kill.KillAt +callbacks.kill.step=30
+callbacks.kill.where=validation``.
"""

from __future__ import annotations

import io
import os
import random
import signal
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch

from dlt_runner.core.checkpoint_io import PARTIAL_SUFFIX, partial_prefix
from dlt_runner.papers.imde.module import NeuralODEModule

WHERE = ("train", "validation", "assembling_checkpoint", "writing_checkpoint", "between_files")


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


class KillAt(pl.Callback):
    """SIGKILL the process at the first ``where`` event at or after optimiser step ``step``.

    - ``train``: after a training step;
    - ``validation``: before a validation batch;
    - ``assembling_checkpoint``: while the checkpoint dict is assembled (nothing written);
    - ``writing_checkpoint``: half-way through writing the checkpoint file;
    - ``between_files``: after ``best.ckpt`` is written, before ``last.ckpt``.
    """

    def __init__(self, step: int, where: str) -> None:
        if where not in WHERE:
            raise ValueError(f"unknown where {where!r}; choose one of: {', '.join(WHERE)}")
        self.step, self.where = int(step), where

    def _due(self, trainer: pl.Trainer, where: str) -> bool:
        return self.where == where and trainer.global_step >= self.step

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        io_plugin = trainer.strategy.checkpoint_io
        save = io_plugin.save_checkpoint

        def save_then_maybe_die(checkpoint: dict[str, Any], path: Any, **options: Any) -> None:
            target = Path(path)
            if self._due(trainer, "writing_checkpoint"):
                buffer = io.BytesIO()
                torch.save(checkpoint, buffer)
                data = buffer.getvalue()
                descriptor, _ = tempfile.mkstemp(
                    dir=target.parent, prefix=partial_prefix(target), suffix=PARTIAL_SUFFIX
                )
                with os.fdopen(descriptor, "wb") as handle:
                    handle.write(data[: len(data) // 2])
                _die()
            save(checkpoint, path, **options)
            if target.name == "best.ckpt" and self._due(trainer, "between_files"):
                _die()

        io_plugin.save_checkpoint = save_then_maybe_die

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        if self._due(trainer, "train"):
            _die()

    def on_validation_batch_start(self, trainer: pl.Trainer, *args: Any) -> None:
        if not trainer.sanity_checking and self._due(trainer, "validation"):
            _die()

    def on_save_checkpoint(self, trainer: pl.Trainer, *args: Any) -> None:
        if self._due(trainer, "assembling_checkpoint"):
            _die()


class PauseAt(pl.Callback):
    """After the first training step at or beyond ``step``, write ``marker`` and sleep until
    killed: a test waiting for the marker then kills the process group at a known point,
    however fast the run is."""

    def __init__(self, step: int, marker: str) -> None:
        self.step, self.marker = int(step), Path(marker)

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        if trainer.global_step >= self.step:
            self.marker.write_text(str(trainer.global_step))
            while True:
                time.sleep(60)


class NoisyNeuralODE(NeuralODEModule):
    """IMDE's module with a loss weight drawn each step from torch, NumPy and ``random``:
    a resumed run matches only if all three streams resume where they were."""

    def loss(self, batch: Any) -> torch.Tensor:
        weight = 1 + 0.1 * (torch.rand(()).item() + np.random.rand() + random.random())
        return super().loss(batch) * weight

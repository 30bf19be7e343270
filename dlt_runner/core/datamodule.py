"""In-memory datasets: tensors resident on the model's device, batches drawn by index.

A ``DataLoader`` over a ``TensorDataset`` costs about 10 ms a batch here, more than a small
model's whole step. Every paper with a dataset that fits in memory subclasses
:class:`TensorDataModule` instead: it builds its splits once as tensors, moves them to the
device in ``setup``, and hands Lightning an iterable that slices them.

Each item the training iterable yields is a *chunk*: a list of ``steps_per_call``
minibatches, consumed by one Lightning ``training_step`` that makes one optimiser step per
minibatch (see :class:`dlt_runner.core.module.RunnerModule`). Lightning's per-step overhead
(≈ 0.4 ms) is then paid once per chunk. Full-batch problems (``batch_size: null``) repeat
the one batch, which costs nothing: the same tensors are referenced, never copied.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import pytorch_lightning as pl
import torch
from torch import Tensor

from dlt_runner.core.errors import ConfigError

Batch = dict[str, Tensor]
SPLITS = ("train", "val", "test")


def _length(split: Batch) -> int:
    lengths = {name: len(tensor) for name, tensor in split.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"tensors of one split must have the same length, got {lengths}")
    return next(iter(lengths.values()))


class TrainChunks:
    """Training iterable: chunks of minibatches, shuffled per data pass, sharded across ranks.

    One iteration (a Lightning *epoch*) is one pass over the data, or, when ``steps_per_call``
    holds several passes (``steps_per_call >= 2 ×`` the minibatches of a pass), that many whole
    passes: Lightning's per-epoch bookkeeping (≈ 2.5 ms) is then paid once per chunk even when
    a pass is only a few small steps. Each pass draws its own permutation, which depends only on
    ``(seed, pass index)``, so a run resumed from an epoch-end checkpoint draws exactly the
    batches an uninterrupted run would.

    A checkpoint taken inside an epoch (e.g. ``every_n_train_steps``) records the epoch and the
    chunks of it already trained (``state_dict``, Lightning's resumable-loader interface); the
    first iteration after ``load_state_dict`` skips those chunks, so the resumed run trains on
    the rest of the same permutation.
    """

    def __init__(
        self,
        data: Batch,
        batch_size: int | None,
        steps_per_call: int,
        seed: int,
        epoch: Callable[[], int],
        rank: int = 0,
        world_size: int = 1,
        shuffle: bool = True,
        trained_in_epoch: Callable[[], int] = lambda: 0,
    ) -> None:
        self.data = data
        self.n = _length(data)
        self.full_batch = batch_size is None or batch_size >= self.n
        self.batch_size = self.n if self.full_batch else int(batch_size)
        self.steps_per_call = steps_per_call
        self.seed = seed
        self.epoch = epoch
        self.rank, self.world_size = rank, world_size
        self.shuffle = shuffle
        self.trained_in_epoch = trained_in_epoch
        self._resume: tuple[int, int] | None = None  # (epoch, chunks trained) from a checkpoint

    def state_dict(self) -> dict[str, int]:
        """Where training is: the current epoch and how many of its chunks are trained."""
        return {"epoch": self.epoch(), "chunks_trained": self.trained_in_epoch()}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Resume inside the checkpoint's epoch: its trained chunks are skipped once."""
        self._resume = (int(state["epoch"]), int(state["chunks_trained"]))

    def _chunks_to_skip(self) -> int:
        resume, self._resume = self._resume, None
        return resume[1] if resume is not None and resume[0] == self.epoch() else 0

    def steps_per_pass(self) -> int:
        """Minibatches in one pass over the data (1 when full-batch)."""
        if self.full_batch:
            return 1
        return math.ceil(self.n / (self.batch_size * self.world_size))

    def passes_per_epoch(self) -> int:
        """Whole data passes in one Lightning epoch (1 unless a chunk holds several)."""
        if self.full_batch:
            return 1
        return max(1, self.steps_per_call // self.steps_per_pass())

    def steps_per_epoch(self) -> int:
        """Optimiser steps in one epoch: its passes over the data, or one chunk when full-batch."""
        if self.full_batch:
            return self.steps_per_call
        return self.passes_per_epoch() * self.steps_per_pass()

    def __len__(self) -> int:
        return math.ceil(self.steps_per_epoch() / self.steps_per_call)

    def __iter__(self) -> Iterator[list[Batch]]:
        skip = self._chunks_to_skip()
        if self.full_batch:
            batch = self._shard(self.data)
            for _ in range(skip, len(self)):
                yield [batch] * self.steps_per_call
            return
        # Chunk c holds the epoch's minibatches c * steps_per_call, ...: skipping c chunks is
        # starting at that minibatch.
        epoch, passes, chunk = self.epoch(), self.passes_per_epoch(), []
        first = skip * self.steps_per_call
        for data_pass in range(epoch * passes, (epoch + 1) * passes):
            start = max(0, first - (data_pass - epoch * passes) * self.steps_per_pass())
            if start >= self.steps_per_pass():
                continue
            order = self._order(data_pass)
            for step in range(start, self.steps_per_pass()):
                chunk.append(self._take(order, step))
                if len(chunk) == self.steps_per_call:
                    yield chunk
                    chunk = []
        if chunk:
            yield chunk

    def _order(self, data_pass: int) -> Tensor:
        device = next(iter(self.data.values())).device
        if not self.shuffle:
            return torch.arange(self.n, device=device)
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + data_pass)
        return torch.randperm(self.n, generator=generator).to(device)

    def _take(self, order: Tensor, step: int) -> Batch:
        global_size = self.batch_size * self.world_size
        window = order[step * global_size : (step + 1) * global_size]
        index = window[self.rank :: self.world_size]
        return {name: tensor[index] for name, tensor in self.data.items()}

    def _shard(self, data: Batch) -> Batch:
        if self.world_size == 1:
            return data
        return {name: tensor[self.rank :: self.world_size] for name, tensor in data.items()}


class EvalBatches:
    """Evaluation iterable: the split in order, in batches of ``batch_size`` (None: all at once)."""

    def __init__(self, data: Batch, batch_size: int | None, rank: int = 0, world_size: int = 1):
        self.data = {name: tensor[rank::world_size] for name, tensor in data.items()}
        self.n = _length(self.data)
        self.batch_size = self.n if batch_size is None else max(1, min(int(batch_size), self.n))

    def __len__(self) -> int:
        return math.ceil(self.n / self.batch_size) if self.n else 0

    def __iter__(self) -> Iterator[Batch]:
        for start in range(0, self.n, self.batch_size):
            yield {
                name: tensor[start : start + self.batch_size] for name, tensor in self.data.items()
            }


class TensorDataModule(pl.LightningDataModule):
    """Base datamodule for data that fits in memory: subclasses implement :meth:`build`.

    Args:
        batch_size: training minibatch size; ``None`` trains full-batch.
        eval_batch_size: batch size for validation and test; ``None`` evaluates a split at once.
        steps_per_call: optimiser steps per Lightning ``training_step`` (chunk length).
        seed: seeds the split/generation (subclasses) and the per-epoch shuffling.
        dtype: floating dtype the float tensors are cast to (``float32`` or ``float64``).
    """

    def __init__(
        self,
        batch_size: int | None = None,
        eval_batch_size: int | None = None,
        steps_per_call: int = 1,
        seed: int = 0,
        dtype: str = "float32",
    ) -> None:
        super().__init__()
        if batch_size is not None and int(batch_size) < 1:
            raise ConfigError(
                f"data.batch_size must be a positive integer or null, got {batch_size}"
            )
        if int(steps_per_call) < 1:
            raise ConfigError(f"data.steps_per_call must be >= 1, got {steps_per_call}")
        if dtype not in ("float32", "float64"):
            raise ConfigError(f"unknown dtype {dtype!r}; choose one of: float32, float64")
        self.batch_size = None if batch_size is None else int(batch_size)
        self.eval_batch_size = None if eval_batch_size is None else int(eval_batch_size)
        self.steps_per_call = int(steps_per_call)
        self.seed = int(seed)
        self.dtype = getattr(torch, dtype)
        self.splits: dict[str, Batch] = {}
        # Set under `debug=fast` (Lightning's fast_dev_run): subclasses whose build() is expensive
        # (simulators, large generated sets) may build a small version for the smoke run.
        self.smoke = False

    def build(self) -> dict[str, Batch]:
        """Return ``{"train": {...}, "val": {...}, "test": {...}}`` of CPU tensors."""
        raise NotImplementedError

    def prepare(self) -> None:
        """Build the splits once (idempotent); callable without a trainer, e.g. by analysis."""
        if not self.splits:
            self.splits = {
                split: {name: self._cast(tensor) for name, tensor in tensors.items()}
                for split, tensors in self.build().items()
            }

    def setup(self, stage: str | None = None) -> None:
        self.smoke = bool(self.trainer is not None and self.trainer.fast_dev_run)
        self.prepare()
        device = self.trainer.strategy.root_device if self.trainer is not None else None
        if device is not None:
            self.splits = {
                split: {name: tensor.to(device) for name, tensor in tensors.items()}
                for split, tensors in self.splits.items()
            }

    def _cast(self, tensor: Any) -> Tensor:
        tensor = torch.as_tensor(tensor)
        return tensor.to(self.dtype) if tensor.is_floating_point() else tensor

    def _rank(self) -> tuple[int, int]:
        if self.trainer is None:
            return 0, 1
        return self.trainer.global_rank, self.trainer.world_size

    def train_dataloader(self) -> TrainChunks:
        rank, world_size = self._rank()
        return TrainChunks(
            self.splits["train"],
            self.batch_size,
            self.steps_per_call,
            self.seed,
            epoch=lambda: self.trainer.current_epoch if self.trainer is not None else 0,
            rank=rank,
            world_size=world_size,
            trained_in_epoch=self._chunks_trained_in_epoch,
        )

    def _chunks_trained_in_epoch(self) -> int:
        """Lightning batches (our chunks) of the current epoch whose training step has run
        (``processed``: ``ready`` already counts a batch that is fetched but not trained)."""
        if self.trainer is None:
            return 0
        return self.trainer.fit_loop.epoch_loop.batch_progress.current.processed

    def _eval(self, split: str) -> EvalBatches | list:
        if split not in self.splits:
            return []
        rank, world_size = self._rank()
        return EvalBatches(self.splits[split], self.eval_batch_size, rank, world_size)

    def val_dataloader(self) -> EvalBatches | list:
        return self._eval("val")

    def test_dataloader(self) -> EvalBatches | list:
        return self._eval("test")

    def tensors(self, split: str) -> Batch:
        """The whole split as tensors (built on first use), for end-of-fit analysis; a split the
        data does not have is a config mistake, named with the splits it has."""
        self.prepare()
        if split not in self.splits:
            raise ConfigError(f"no data split {split!r}; the data has: {', '.join(self.splits)}")
        return self.splits[split]

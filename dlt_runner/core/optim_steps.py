"""How :class:`~dlt_runner.core.module.RunnerModule` turns minibatches into optimiser steps.

Its pieces:

- :class:`StepOptions`: Lightning's Trainer options that act on the optimiser step
  (``gradient_clip_val``, ``gradient_clip_algorithm``, ``accumulate_grad_batches``). Lightning
  refuses them under manual optimisation, so the runner takes them off the Trainer and carries
  them out in its own loop, with Lightning's documented meaning.
- :class:`Round`: the order in which named optimisers step. One round is what
  ``trainer.global_step`` counts.
- :class:`StepLoop`: the module's training loops that walk a round, with the options above.
- :func:`direct_steps_allowed`: when backward and the step may bypass Lightning's wrappers.
- :func:`mix_seed`: the seed of :meth:`~dlt_runner.core.module.RunnerModule.step_generator`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from dlt_runner.core.datamodule import Batch
from dlt_runner.core.errors import ConfigError, positive_int, unknown_choice

#: Trainer keys the runner carries out itself; the Trainer is built with the neutral values.
TRAINER_STEP_OPTIONS = ("gradient_clip_val", "gradient_clip_algorithm", "accumulate_grad_batches")
NEUTRAL_TRAINER_OPTIONS: dict[str, Any] = {
    "gradient_clip_val": None,
    "gradient_clip_algorithm": None,
    "accumulate_grad_batches": 1,
}
CLIP_ALGORITHMS = ("norm", "value")


@dataclass(frozen=True)
class StepOptions:
    """Gradient clipping and accumulation, as Lightning's Trainer documents them.

    - ``gradient_clip_val``: ``None`` or ``0`` is off. Otherwise, before every optimiser step, the
      gradients of that optimiser's parameters are clipped: ``norm`` rescales them so that their
      joint 2-norm is at most the value (``torch.nn.utils.clip_grad_norm_``), ``value`` clamps each
      entry to ``[-value, value]`` (``clip_grad_value_``). Clipping happens after the
      ``on_before_optimizer_step`` hooks of callbacks, as in Lightning's automatic optimisation.
    - ``accumulate_grad_batches = N``: every optimiser step sums the gradients of ``N``
      consecutive minibatches, each loss divided by ``N`` (Lightning's automatic loop does
      ``loss / accumulate_grad_batches``), so the step uses the mean gradient of the ``N``
      minibatches. ``trainer.global_step`` and ``trainer.max_steps`` count optimiser steps, so
      ``max_steps=S`` consumes ``N * S`` minibatches. As in Lightning, the last group of an
      epoch steps even if it has fewer than ``N`` minibatches (still divided by ``N``).
    """

    gradient_clip_val: float | None = None
    gradient_clip_algorithm: str = "norm"
    accumulate_grad_batches: int = 1

    def __post_init__(self) -> None:
        value = self.gradient_clip_val
        if value is not None:
            try:
                value = float(value)
            except (TypeError, ValueError):
                value = -1.0
            if not value >= 0:
                raise ConfigError(
                    "trainer.gradient_clip_val must be null (off) or a number >= 0, "
                    f"got {self.gradient_clip_val!r}"
                )
            object.__setattr__(self, "gradient_clip_val", value or None)
        algorithm = "norm" if self.gradient_clip_algorithm is None else self.gradient_clip_algorithm
        if algorithm not in CLIP_ALGORITHMS:
            raise ConfigError(
                unknown_choice("trainer.gradient_clip_algorithm", algorithm, CLIP_ALGORITHMS)
            )
        object.__setattr__(self, "gradient_clip_algorithm", algorithm)
        accumulate = positive_int("trainer.accumulate_grad_batches", self.accumulate_grad_batches)
        object.__setattr__(self, "accumulate_grad_batches", accumulate)

    @classmethod
    def from_trainer_options(cls, options: Mapping[str, Any]) -> StepOptions:
        """The options among a Trainer's keyword arguments (absent keys keep the defaults)."""
        return cls(**{key: options[key] for key in TRAINER_STEP_OPTIONS if key in options})

    @property
    def clips(self) -> bool:
        return self.gradient_clip_val is not None

    @property
    def is_off(self) -> bool:
        return not self.clips and self.accumulate_grad_batches == 1


@dataclass(frozen=True)
class Round:
    """The steps that make one ``global_step``: a sequence of stages, each a tuple of optimisers.

    Alternating updates (the default): optimiser ``name`` makes ``steps_per_round[name]``
    consecutive steps, in the declared order, each on a fresh minibatch; e.g.
    ``{"discriminator": 5, "generator": 1}`` gives the stages D, D, D, D, D, G (WGAN's
    ``n_critic = 5``, Arjovsky et al. 2017, Algorithm 1). Simultaneous updates: one stage in
    which every optimiser computes its gradient at the same parameters, on the same minibatch,
    before any of them steps.
    With gradient accumulation each stage takes ``accumulate_grad_batches`` minibatches.
    """

    stages: tuple[tuple[str, ...], ...]

    @classmethod
    def build(
        cls, names: Sequence[str], steps_per_round: Mapping[str, Any] | None, simultaneous: bool
    ) -> Round:
        counts = dict(steps_per_round or {})
        unknown = sorted(set(counts) - set(names))
        if unknown:
            raise ConfigError(
                f"model.steps_per_round names {', '.join(unknown)}, which are not optimisers; "
                f"the optimisers are: {', '.join(names)}"
            )
        counts = {
            name: positive_int(f"model.steps_per_round.{name}", counts.get(name, 1))
            for name in names
        }
        if simultaneous:
            if any(count != 1 for count in counts.values()):
                raise ConfigError(
                    "model.steps_per_round must be 1 for every optimiser with simultaneous "
                    f"updates, got {counts}"
                )
            return cls(stages=(tuple(names),))
        return cls(stages=tuple((name,) for name in names for _ in range(counts[name])))

    def __len__(self) -> int:
        return len(self.stages)


class StepLoop:
    """The training loops of :class:`~dlt_runner.core.module.RunnerModule` (a mixin).

    ``_plain_steps`` is the fast path (one optimiser, no clipping, no accumulation, nothing
    hooked); ``_steps`` walks the :class:`Round` with clipping and accumulation. The module
    provides ``loss``, ``round``, ``step_options``, ``optimizer_names``, the round position
    (``_position``: stage, minibatch in the accumulation group) and the logging helpers.
    """

    def _plain_steps(self, chunk: list[Batch]) -> None:
        """One optimiser, no clipping, no accumulation, nothing hooked: the fast path."""
        optimizer = self.optimizers()
        scheduler = self.lr_schedulers()
        steps = self._steps_left(len(chunk))
        for batch in chunk[:steps]:
            optimizer.zero_grad(set_to_none=True)
            loss, extras = self._split_loss(self.loss(batch))
            loss.backward()
            # Lightning's own step accounting (global_step), without its plugin/hook layers.
            optimizer._on_before_step()
            optimizer.optimizer.step()
            optimizer._on_after_step()
            if scheduler is not None:
                scheduler.step()
        self.last_train_loss = loss.detach()
        if self._log_now(steps):
            self._log_train({"": loss}, {"": optimizer}, extras)

    def _steps(self, chunk: list[Batch], direct: bool) -> None:
        """Rounds of named optimisers, with clipping and accumulation (see the module docstring)."""
        optimizers = self._named(self.optimizers())
        schedulers = self.lr_schedulers() or []
        schedulers = schedulers if isinstance(schedulers, list) else [schedulers]
        if self._pending_grads is not None:
            for parameter, grad in zip(self.parameters(), self._pending_grads, strict=True):
                parameter.grad = None if grad is None else grad.to(parameter)
            self._pending_grads = None
        accumulate = self.step_options.accumulate_grad_batches
        epoch_ends = self.trainer.fit_loop.epoch_loop.batch_progress.is_last_batch
        max_steps = self.trainer.max_steps
        start = self.global_step
        losses: dict[str, Tensor] = {}
        extras: dict[str, Tensor] = {}
        for index, batch in enumerate(chunk):
            stage, micro = self._position
            names = self.round.stages[stage]
            for name in names:
                optimizer = optimizers[name]
                if micro == 0:
                    optimizer.zero_grad(set_to_none=True)
                loss, extras = self._backward(batch, name, optimizer, accumulate, direct)
                losses[name] = loss.detach()
            micro += 1
            if micro < accumulate and not (epoch_ends and index == len(chunk) - 1):
                self._position = (stage, micro)
                continue
            round_ends = stage == len(self.round) - 1
            if round_ends:
                optimizers[names[-1]]._on_before_step()  # counts the round as one global_step
            for name in names:
                self._optimizer_step(optimizers[name], direct)
            self._position = (0 if round_ends else stage + 1, 0)
            if round_ends:
                optimizers[names[-1]]._on_after_step()
                for scheduler in schedulers:
                    scheduler.step()
                if 0 <= max_steps <= self.global_step:
                    break
        if losses:  # several players: any non-finite loss stops the run (DivergenceGuard)
            self.last_train_loss = losses.get("")
            if self.last_train_loss is None:
                self.last_train_loss = torch.stack(list(losses.values()))
        if self._log_now(self.global_step - start):
            self._log_train(losses, optimizers, extras)

    def _backward(
        self, batch: Batch, name: str, optimizer: Any, accumulate: int, direct: bool
    ) -> tuple[Tensor, dict[str, Tensor]]:
        if not name:
            loss, extras = self._split_loss(self.loss(batch))
        else:
            self.toggle_optimizer(optimizer)
            loss, extras = self._split_loss(self.loss(batch, name))
        scaled = loss / accumulate if accumulate > 1 else loss
        if direct:
            scaled.backward()
        else:
            self.manual_backward(scaled)
        if name:
            self.untoggle_optimizer(optimizer)
        return loss, extras

    def _optimizer_step(self, optimizer: Any, direct: bool) -> None:
        if direct:
            if self.step_options.clips:
                self._clip(optimizer.optimizer)
            optimizer.optimizer.step()
        else:
            # Lightning's precision plugin: unscaling, on_before_optimizer_step hooks (which
            # clip), the step; without LightningOptimizer.step's count, done per round above.
            from pytorch_lightning.core.optimizer import do_nothing_closure

            self.trainer.strategy.optimizer_step(optimizer.optimizer, do_nothing_closure)

    def _clip(self, optimizer: torch.optim.Optimizer) -> None:
        from pytorch_lightning.utilities.enums import GradClipAlgorithmType

        options = self.step_options
        self.trainer.precision_plugin.clip_gradients(
            optimizer,
            options.gradient_clip_val,
            GradClipAlgorithmType(options.gradient_clip_algorithm),
        )

    def _named(self, optimizers: Any) -> dict[str, Any]:
        if not self.optimizer_names:
            return {"": optimizers}
        return dict(zip(self.optimizer_names, optimizers, strict=True))

    def _steps_left(self, chunk_length: int) -> int:
        max_steps = self.trainer.max_steps if self._trainer is not None else -1
        if max_steps is None or max_steps < 0:
            return chunk_length
        return max(1, min(chunk_length, max_steps - self.global_step))


def direct_steps_allowed(trainer: Any, module: Any, base: type) -> bool:
    """Whether ``manual_backward`` and ``LightningOptimizer.step`` would do nothing but step.

    True when the run is on one device, the precision needs no loss scaling, the profiler is
    off, and neither a callback nor the module (beyond ``base``, the runner's own module class)
    overrides the backward/step hooks.
    """
    import pytorch_lightning as pl
    from pytorch_lightning.plugins.precision import (
        DoublePrecision,
        HalfPrecision,
        MixedPrecision,
        Precision,
    )
    from pytorch_lightning.profilers import PassThroughProfiler
    from pytorch_lightning.strategies import SingleDeviceStrategy
    from pytorch_lightning.utilities.model_helpers import is_overridden

    hooks = ("on_before_backward", "on_after_backward", "on_before_optimizer_step")
    hooks += ("on_before_zero_grad",)
    precision = trainer.precision_plugin
    scales_loss = isinstance(precision, MixedPrecision) and precision.scaler is not None
    plain_precision = type(precision) in (Precision, DoublePrecision, HalfPrecision, MixedPrecision)
    hooks_used = any(
        is_overridden(hook, callback, pl.Callback)
        for callback in trainer.callbacks
        for hook in hooks
    ) or any(is_overridden(hook, module, base) for hook in hooks)
    return (
        type(trainer.strategy) is SingleDeviceStrategy
        and plain_precision
        and not scales_loss
        and isinstance(trainer.profiler, PassThroughProfiler)
        and not hooks_used
    )


_MASK64 = (1 << 64) - 1


def mix_seed(*values: int) -> int:
    """A 63-bit seed from integers (SplitMix64 finaliser, Steele et al. 2014), order-sensitive.

    >>> mix_seed(0, 1) != mix_seed(1, 0)
    True
    """
    state = 0x9E3779B97F4A7C15
    for value in values:
        state = (state ^ (int(value) & _MASK64)) * 0xBF58476D1CE4E5B9 & _MASK64
        state = (state ^ (state >> 31)) * 0x94D049BB133111EB & _MASK64
        state ^= state >> 29
    return state >> 1

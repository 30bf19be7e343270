"""How :class:`~dlt_runner.core.module.RunnerModule` turns minibatches into optimiser steps.

Three pieces, each small enough to test on its own:

- :class:`StepOptions`: Lightning's Trainer options that act on the optimiser step
  (``gradient_clip_val``, ``gradient_clip_algorithm``, ``accumulate_grad_batches``). Lightning
  refuses them under manual optimisation, so the runner takes them off the Trainer and carries
  them out in its own loop, with Lightning's documented meaning.
- :class:`Round`: the order in which named optimisers step. One round is what
  ``trainer.global_step`` counts.
- :func:`direct_steps_allowed`: when backward and the step may bypass Lightning's wrappers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

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
    ``n_critic = 5``). Simultaneous updates: one stage in which every optimiser computes its
    gradient at the same parameters, on the same minibatch, before any of them steps.
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

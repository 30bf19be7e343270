"""The LightningModule every paper extends: optimisation, logging and evaluation written once.

A paper module implements three things:

- :meth:`RunnerModule.loss` — the training objective on one minibatch (plus extra scalars);
- :meth:`RunnerModule.evaluate` — metrics on an evaluation batch (default: the loss);
- :meth:`RunnerModule.analysis` — the paper's end-of-fit measurements (``analysis/*``).

Optimisation is manual so that one Lightning ``training_step`` can make several optimiser
steps (one per minibatch of the chunk the datamodule yields); ``trainer.global_step`` still
counts optimiser steps, so ``trainer.max_steps`` means what it says.

**Lightning's step options.** ``trainer.gradient_clip_val``, ``trainer.gradient_clip_algorithm``
and ``trainer.accumulate_grad_batches`` keep Lightning's meaning (see
:class:`~dlt_runner.core.optim_steps.StepOptions`). Lightning rejects them under manual
optimisation, so ``dlt_runner.run`` moves them from the trainer config onto the module
(``module.step_options``) and builds the Trainer with the neutral values. Code that builds its
own Trainer sets ``module.step_options = StepOptions(...)`` instead.

**Several optimisers.** Pass ``optimizer`` as a mapping from names to ``_partial_`` optimisers.

- Parameters: ``net`` is then usually an ``nn.ModuleDict`` with the same keys, and optimiser
  ``name`` gets ``net[name]``'s trainable parameters (override :meth:`trainable_parameters`,
  called as ``trainable_parameters(name)``, otherwise).
- Loss: the runner calls ``loss(batch, name)`` for the optimiser about to step. While it is
  computed and differentiated, the other optimisers' parameters do not require gradients
  (Lightning's ``toggle_optimizer``), so one player's loss never leaves gradients on another.
- Order: ``steps_per_round`` (default 1 each) says how many consecutive steps each optimiser
  makes in one *round*, in the mapping's order, each on a fresh minibatch (consumed even if the
  loss ignores it); ``{discriminator: 5, generator: 1}`` is D, D, D, D, D, G (WGAN's
  ``n_critic``). ``simultaneous_steps=True`` instead computes every optimiser's gradient at the
  same parameters on one minibatch, then steps them all (``steps_per_round`` must be 1 each).
  With ``accumulate_grad_batches = N`` each of those steps takes N minibatches.
- Counting: **``trainer.global_step`` and ``trainer.max_steps`` count rounds** (with
  ``{discriminator: n_critic, generator: 1}``: generator steps, the "generator iterations" of
  WGAN papers), and so do ``log_every_n_steps`` and the schedulers: ``scheduler`` is a mapping
  from (some of) the names to partial schedulers, each stepped once per round, so schedules
  bound to ``${trainer.max_steps}`` end with the run.
- Logging, divergence, evaluation: ``train/loss_<name>`` and ``train/lr_<name>`` (extras as
  ``train/<extra>``); a non-finite loss of any optimiser stops the run; the default
  :meth:`evaluate` logs ``loss_<name>`` for every name. A checkpoint inside a round (or an
  accumulation group) resumes there.

Example::

    class GAN(RunnerModule):
        def __init__(self, generator, discriminator, n_critic: int = 5, **kwargs):
            super().__init__(
                net=nn.ModuleDict({"discriminator": discriminator, "generator": generator}),
                steps_per_round={"discriminator": n_critic, "generator": 1},
                **kwargs,
            )

        def loss(self, batch, optimizer_name):
            noise = torch.randn(len(batch["x"]), 8, generator=self.step_generator(),
                                device=self.device, dtype=batch["x"].dtype)
            fake = self.net["generator"](noise)
            critic = self.net["discriminator"]
            if optimizer_name == "discriminator":
                return critic(fake).mean() - critic(batch["x"]).mean()
            return -critic(fake).mean()

    # model config:
    #   optimizer:
    #     discriminator: {_target_: torch.optim.Adam, _partial_: true, lr: 4e-4}
    #     generator: {_target_: torch.optim.Adam, _partial_: true, lr: 1e-4}
    #   scheduler:          # optional, any subset of the names
    #     generator: {_target_: dlt_runner.core.schedules.cosine_decay, _partial_: true,
    #                 steps: ${trainer.max_steps}}

**Random numbers per step.** :meth:`RunnerModule.step_generator` returns a generator seeded by
the run seed, the round and the minibatch's place in the round: on-device augmentations drawn
from it (``dlt_runner.data.transforms``) are the same after a resume.

**Evaluation that needs gradients** (adversarial examples at test time, the eNTK): set the class
attribute ``eval_needs_grad = True`` and compute gradients inside ``with torch.enable_grad():``.
``dlt_runner.run`` then builds the Trainer with ``inference_mode=False``, so Lightning evaluates
under ``torch.no_grad`` (which ``enable_grad`` lifts) instead of ``torch.inference_mode`` (which
nothing lifts).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

import pytorch_lightning as pl
import torch
from torch import Tensor, nn

from dlt_runner.core.datamodule import Batch
from dlt_runner.core.errors import ConfigError
from dlt_runner.core.optim_steps import (
    Round,
    StepLoop,
    StepOptions,
    direct_steps_allowed,
    mix_seed,
)

OptimizerFactory = Callable[..., torch.optim.Optimizer]
SchedulerFactory = Callable[..., Any]
LossResult = Tensor | tuple[Tensor, Mapping[str, Tensor]]


class RunnerModule(StepLoop, pl.LightningModule):
    """Base module: holds ``net``, builds the optimisers from ``_partial_`` configs.

    Args:
        net: the paper's ``nn.Module`` (injected from the ``net:`` config node).
        optimizer: a partial optimiser, called with the parameters to optimise; or a mapping
            from names to partial optimisers (several optimisers, see the module docstring).
        scheduler: optional partial LR scheduler (a mapping by optimiser name with several
            optimisers), stepped after every optimiser step (every round).
        log_every_n_steps: log training scalars (loss, learning rate, the paper's extras) every
            this many optimiser steps; logging every step costs ≈ 0.35 ms, more than a small
            model's step.
        steps_per_round: with several optimisers, consecutive steps of each in one round
            (default 1 each).
        simultaneous_steps: with several optimisers, step them all on each minibatch from
            gradients taken at the same parameters.
    """

    #: Set True when ``evaluate``/``analysis`` differentiate (the Trainer then runs without
    #: ``inference_mode``).
    eval_needs_grad: bool = False
    #: Set False to always go through Lightning's manual_backward / optimizer.step.
    allow_direct_steps = True

    def __init__(
        self,
        net: nn.Module,
        optimizer: OptimizerFactory | Mapping[str, OptimizerFactory],
        scheduler: SchedulerFactory | Mapping[str, SchedulerFactory] | None = None,
        log_every_n_steps: int = 50,
        steps_per_round: Mapping[str, int] | None = None,
        simultaneous_steps: bool = False,
    ) -> None:
        super().__init__()
        self.net = net
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.log_every_n_steps = max(1, int(log_every_n_steps))
        self.automatic_optimization = False
        self.step_options = StepOptions()
        self.optimizer_names: tuple[str, ...] = ()
        if isinstance(optimizer, Mapping):
            self.optimizer_names = tuple(optimizer)
            self.round = Round.build(self.optimizer_names, steps_per_round, simultaneous_steps)
            if scheduler is not None and (
                not isinstance(scheduler, Mapping) or not set(scheduler) <= set(optimizer)
            ):
                raise ConfigError(
                    "with several optimisers, model.scheduler maps optimiser names "
                    f"({', '.join(self.optimizer_names)}) to schedulers"
                )
        else:
            self.round = Round(stages=(("",),))
        self.last_train_loss: Tensor | None = None
        self._direct_steps: bool | None = None  # decided once per fit, see _step_directly
        self._position = (0, 0)  # (stage in the round, minibatch in the accumulation group)
        self._pending_grads: list[Tensor | None] | None = None

    # ----------------------------------------------------------------- paper hooks
    def loss(self, batch: Batch, *optimizer_name: str) -> LossResult:
        """Training objective on one minibatch; optionally with extra scalars to log.

        With several optimisers it is called as ``loss(batch, optimizer_name)``.
        """
        raise NotImplementedError

    def evaluate(self, batch: Batch, split: str) -> Mapping[str, Tensor]:
        """Metrics on an evaluation batch, logged as ``<split>/<name>`` (epoch means)."""
        if not self.optimizer_names:
            return {"loss": self._split_loss(self.loss(batch))[0]}
        return {f"loss_{n}": self._split_loss(self.loss(batch, n))[0] for n in self.optimizer_names}

    def analysis(self, datamodule: pl.LightningDataModule) -> dict[str, Any]:
        """The paper's end-of-run measurements: scalars, or lists for curves."""
        return {}

    def trainable_parameters(self, *optimizer_name: str) -> list[nn.Parameter]:
        """Parameters handed to the optimiser (override to exclude frozen parts).

        With several optimisers it is called as ``trainable_parameters(name)`` and defaults to
        ``net[name]``'s parameters.
        """
        owner: nn.Module = self
        if optimizer_name:
            (name,) = optimizer_name
            if not (isinstance(self.net, nn.ModuleDict) and name in self.net):
                raise TypeError(
                    f"{type(self).__name__}: optimiser {name!r} needs net[{name!r}] "
                    "(an nn.ModuleDict), or an override of trainable_parameters(name)"
                )
            owner = self.net[name]
        return [p for p in owner.parameters() if p.requires_grad]

    def step_generator(self, stream: int = 0) -> torch.Generator:
        """A new generator on the module's device for this minibatch's random draws.

        Seeded by the run seed (``PL_GLOBAL_SEED``, set by ``pl.seed_everything``), the round
        (``global_step``), the minibatch's place in the round and ``stream`` (distinct streams
        are independent), so a resumed run draws what the uninterrupted run drew. During
        evaluation it depends on the step alone: pass ``stream=batch_idx`` to vary it by batch.
        """
        seed = int(os.environ.get("PL_GLOBAL_SEED", 0))
        stage, micro = self._position
        position = stage * self.step_options.accumulate_grad_batches + micro
        generator = torch.Generator(device=self.device)
        generator.manual_seed(mix_seed(seed, self.global_step, position, stream))
        return generator

    # ----------------------------------------------------------------- Lightning
    def configure_optimizers(self) -> Any:
        if not self.optimizer_names:
            optimizer = self.optimizer_factory(self.trainable_parameters())
            if self.scheduler_factory is None:
                return optimizer
            scheduler = self.scheduler_factory(optimizer)
            return {
                "optimizer": optimizer,
                "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
            }
        optimizers = [
            self.optimizer_factory[name](self.trainable_parameters(name))
            for name in self.optimizer_names
        ]
        factories = self.scheduler_factory or {}
        schedulers = [
            {"scheduler": factories[name](optimizer), "interval": "step"}
            for name, optimizer in zip(self.optimizer_names, optimizers, strict=True)
            if name in factories
        ]
        return optimizers, schedulers

    def training_step(self, chunk: list[Batch], chunk_idx: int) -> None:
        direct = self._step_directly()
        if direct and self.step_options.is_off and not self.optimizer_names:
            self._plain_steps(chunk)
        else:
            self._steps(chunk, direct)

    def on_train_start(self) -> None:
        self._direct_steps = None

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        # Lightning calls this after unscaling (mixed precision) and after the callbacks' hook:
        # where its automatic optimisation clips. Overrides must call super().
        if self.step_options.clips:
            self._clip(optimizer)

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        self._log_eval(batch, "val")

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        self._log_eval(batch, "test")

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # A checkpoint written between chunks can fall inside a round or an accumulation group.
        stage, micro = self._position
        checkpoint["runner_round"] = {
            "stage": stage,
            "micro": micro,
            "grads": [p.grad for p in self.parameters()] if micro else None,
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        position = checkpoint.get("runner_round")
        if position is not None:
            self._position = (position["stage"], position["micro"])
            self._pending_grads = position["grads"]

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
            self._direct_steps = self.allow_direct_steps and direct_steps_allowed(
                self.trainer, self, RunnerModule
            )
        return self._direct_steps

    @staticmethod
    def _split_loss(result: LossResult) -> tuple[Tensor, dict[str, Tensor]]:
        if isinstance(result, tuple):
            return result[0], dict(result[1])
        return result, {}

    def _log_now(self, steps: int) -> bool:
        # True when this chunk's steps crossed a multiple of log_every_n_steps (the trainer's own
        # log_every_n_steps is 1, so whatever is logged here reaches the loggers).
        step = self.global_step
        return step // self.log_every_n_steps != (step - steps) // self.log_every_n_steps

    def _log_train(
        self, losses: Mapping[str, Tensor], optimizers: Mapping[str, Any], extras: Mapping
    ) -> None:
        for name, loss in losses.items():
            suffix = f"_{name}" if name else ""
            self.log(f"train/loss{suffix}", loss, prog_bar=True)
            self.log(f"train/lr{suffix}", optimizers[name].param_groups[0]["lr"])
        for name, value in extras.items():
            self.log(f"train/{name}", value)

    def _log_eval(self, batch: Batch, split: str) -> None:
        if self.eval_needs_grad and torch.is_inference_mode_enabled():
            raise RuntimeError(
                f"{type(self).__name__}.eval_needs_grad is True: build the Trainer with "
                "inference_mode=False (dlt_runner.run does)"
            )
        size = len(next(iter(batch.values())))
        for name, value in self.evaluate(batch, split).items():
            self.log(
                f"{split}/{name}",
                value,
                on_epoch=True,
                batch_size=size,
                sync_dist=self.trainer.world_size > 1,
            )

"""Tensor completion with a (deep) CP factorisation, several initialisations at once (paper §5).

The loss is the mean squared error over the observed entries, summed over the independent
initialisations stacked in the net (so each one's gradient is its own). While training, the
module follows every initialisation on the unobserved entries, without touching the updates:

- the completion error at the first step whose training MSE is below ``matched_loss`` (the
  comparison "at matched training loss": a deeper model must not win only by fitting less);
- every ``curve_every`` steps, the median over initialisations of the training MSE, the test
  error and the effective rank (curves against the step, paper Fig. 1-2 style).

The end-of-fit analysis reports medians over the initialisations (the claim's unit) and the
per-initialisation values.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from dlt_runner.core.datamodule import Batch
from dlt_runner.core.errors import ConfigError, positive_int
from dlt_runner.core.module import RunnerModule
from dlt_runner.papers.tensor_factorization.analysis import (
    effective_rank,
    large_components,
    mean_squared_error,
    median,
    relative_error,
)
from dlt_runner.papers.tensor_factorization.nets import CPBase

CURVES = ("step", "train_mse", "test_error", "effective_rank", "large_components")


class TensorCompletionModule(RunnerModule):
    """Fit the observed entries with ``net`` (a :class:`CPBase` holding ``n_models`` draws).

    Args:
        net: a CP factorisation (``nets.CPFactorization`` or ``nets.DeepCPFactorization``).
        matched_loss: training-MSE threshold of the matched-loss comparison; ``None`` turns the
            per-step tracking off (the curves stay).
        curve_every: record the curves every this many optimiser steps.
        component_threshold: a component counts as "large" above this fraction of the largest.
        stop_loss: stop training once every initialisation's training MSE is below this (checked
            every ``curve_every`` steps, effective at the end of the current chunk of
            ``data.steps_per_call`` steps; Razin et al. stop at 1e-8); ``None``: run all steps.
        **kwargs: optimizer, scheduler, log_every_n_steps (see ``RunnerModule``).
    """

    def __init__(
        self,
        net: CPBase,
        matched_loss: float | None = 3e-4,
        curve_every: int = 100,
        component_threshold: float = 0.05,
        stop_loss: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(net=net, **kwargs)
        if not isinstance(net, CPBase):
            raise ConfigError(
                f"model.net must be a CP factorisation from papers/tensor_factorization/nets.py, "
                f"got {type(net).__name__}"
            )
        if matched_loss is not None and not matched_loss > 0:
            raise ConfigError(f"model.matched_loss must be positive or null, got {matched_loss}")
        self.matched_loss = None if matched_loss is None else float(matched_loss)
        self.curve_every = positive_int("model.curve_every", curve_every)
        self.component_threshold = float(component_threshold)
        self.stop_loss = None if stop_loss is None else float(stop_loss)
        models = net.n_models
        self.register_buffer("matched_test_error", torch.full((models,), math.inf))
        self.register_buffer("matched_step", torch.full((models,), -1, dtype=torch.long))
        self.curves: dict[str, list[float]] = {name: [] for name in CURVES}
        self._test: Batch | None = None

    # ------------------------------------------------------------------ training
    def loss(self, batch: Batch) -> tuple[Tensor, Mapping[str, Tensor]]:
        factors = self.net.factor_vectors()
        mse = mean_squared_error(self.net.entries(batch["index"], factors), batch["target"])
        if self.training and torch.is_grad_enabled():
            self._follow(factors, mse.detach())
        return mse.sum(), {"mse_median": mse.detach().median()}

    def on_train_start(self) -> None:
        super().on_train_start()
        datamodule = getattr(self.trainer, "datamodule", None)
        self._test = datamodule.tensors("test") if datamodule is not None else None

    @torch.no_grad()
    def _follow(self, factors: list[Tensor], train_mse: Tensor) -> None:
        """Matched-loss test error (first crossing) and the curves, at the current parameters."""
        step = self.global_step
        matched = self.matched_loss is not None
        record = step % self.curve_every == 0
        if self._test is None or not (matched or record):
            return
        factors = [f.detach() for f in factors]
        test_error = relative_error(
            self.net.entries(self._test["index"], factors), self._test["target"]
        )
        if matched:
            crossed = (train_mse < self.matched_loss) & (self.matched_step < 0)
            self.matched_test_error.copy_(torch.where(crossed, test_error, self.matched_test_error))
            self.matched_step.copy_(torch.where(crossed, step, self.matched_step))
        if record:
            self._record(step, factors, train_mse, test_error)
            if self.stop_loss is not None and bool((train_mse < self.stop_loss).all()):
                self.trainer.should_stop = True

    def _record(
        self, step: int, factors: list[Tensor], train_mse: Tensor, test_error: Tensor
    ) -> None:
        values = {
            "step": step,
            "train_mse": median(train_mse),
            "test_error": median(test_error),
            "effective_rank": median(effective_rank(self.net(factors))),
            "large_components": median(
                large_components(self.net.component_norms(factors), self.component_threshold)
            ),
        }
        for name, value in values.items():
            self.curves[name].append(float(value))

    def evaluate(self, batch: Batch, split: str) -> Mapping[str, Tensor]:
        """Median over initialisations of the relative error and MSE on ``batch``'s entries."""
        prediction = self.net.entries(batch["index"])
        return {
            "rel_error": relative_error(prediction, batch["target"]).median(),
            "mse": mean_squared_error(prediction, batch["target"]).median(),
        }

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["tensor_completion_curves"] = self.curves

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)
        self.curves = checkpoint.get("tensor_completion_curves", self.curves)

    # ------------------------------------------------------------------ analysis
    @torch.no_grad()
    def analysis(self, datamodule: Any) -> dict[str, Any]:
        train, test = datamodule.tensors("train"), datamodule.tensors("test")
        factors = self.net.factor_vectors()
        train_mse = mean_squared_error(
            self.net.entries(train["index"].to(self.device), factors),
            train["target"].to(self.device),
        )
        test_error = relative_error(
            self.net.entries(test["index"].to(self.device), factors),
            test["target"].to(self.device),
        )
        ranks = effective_rank(self.net(factors))
        components = large_components(self.net.component_norms(factors), self.component_threshold)
        step = self.global_step
        if self._test is not None and (not self.curves["step"] or self.curves["step"][-1] < step):
            self._record(step, factors, train_mse, test_error)
        reached = self.matched_step >= 0
        results: dict[str, Any] = {
            "test_error": median(test_error),
            "effective_rank": median(ranks),
            "train_mse": median(train_mse),
            "large_components": median(components),
            "test_error_at_matched_loss": median(self.matched_test_error),
            "matched_loss_reached": float(reached.float().mean()),
            "per_init_test_error": test_error.tolist(),
            "per_init_effective_rank": ranks.tolist(),
            "per_init_test_error_at_matched_loss": self.matched_test_error.tolist(),
            "per_init_matched_step": self.matched_step.tolist(),
        }
        results["curve_steps"] = list(self.curves["step"])
        results.update(
            {f"{name}_vs_step": values for name, values in self.curves.items() if name != "step"}
        )
        return results

"""Classifier trained under the paper's robustness sweep: initial scale α and loss scale β."""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from dlt_runner.core.datamodule import Batch
from dlt_runner.core.module import RunnerModule
from dlt_runner.papers.scale_invariant.analysis import (
    effective_lr,
    global_norm,
    scale_parameters,
)
from dlt_runner.theory.metrics import accuracy


def _cross_entropy(logits: Tensor, labels: Tensor) -> Tensor:
    """Cross-entropy over classes (B, C) or over every position of a sequence (B, L, C)."""
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1))


class ScaleInvariantModule(RunnerModule):
    """Cross-entropy classifier; the sweep hooks of the paper's experiments (Section 5).

    The net's parameters are multiplied by ``init_scale`` (α) after initialisation and the
    training loss by ``loss_scale`` (β): ``train/loss`` is the differentiated, β-scaled loss
    and ``train/unscaled_loss`` the cross-entropy itself, which runs with different β share.
    Logged every ``log_every_n_steps`` optimiser steps: ``param_norm`` |θ|, ``effective_lr``
    η/|θ|² (the mechanism of Section 3), and, with the clipping optimiser
    (``optim.NormClippedSGD``), the last step's ``grad_norm`` and ``clipped`` (1 when the clip
    fired). ``analysis`` returns |θ| and η/|θ|² at the end and their curves over training.

    Args:
        net: ``nets.ScaleInvariantMLP`` or ``nets.StandardMLP``.
        init_scale: α, multiplies every parameter once, before training.
        loss_scale: β, multiplies the loss that is differentiated.
        **kwargs: the base module's arguments (optimizer, scheduler, log_every_n_steps).
    """

    def __init__(
        self, net: nn.Module, init_scale: float = 1.0, loss_scale: float = 1.0, **kwargs: Any
    ) -> None:
        super().__init__(net=net, **kwargs)
        scale_parameters(self.net, init_scale)
        self.loss_scale = float(loss_scale)
        self.norm_curve: list[float] = []
        self.effective_lr_curve: list[float] = []

    def loss(self, batch: Batch) -> tuple[Tensor, dict[str, Tensor | float]]:
        loss = _cross_entropy(self.net(batch["x"]), batch["y"])
        return self.loss_scale * loss, self._mechanism(loss.detach())

    def _mechanism(self, unscaled_loss: Tensor) -> dict[str, Tensor | float]:
        """|θ|, η/|θ|² and the clip's state, at the logging cadence only (one norm per call)."""
        if self._trainer is None or (self.global_step + 1) % self.log_every_n_steps:
            return {"unscaled_loss": unscaled_loss}
        optimizer = self.optimizers()
        optimizer = getattr(optimizer, "optimizer", optimizer)
        norm = float(global_norm(self.net.parameters()))
        lr = optimizer.param_groups[0]["lr"]
        self.norm_curve.append(norm)
        self.effective_lr_curve.append(effective_lr(lr, norm))
        extras: dict[str, Tensor | float] = {
            "unscaled_loss": unscaled_loss,
            "param_norm": norm,
            "effective_lr": self.effective_lr_curve[-1],
        }
        if hasattr(optimizer, "clipped"):
            extras["grad_norm"] = optimizer.grad_norm
            extras["clipped"] = float(optimizer.clipped)
        return extras

    def evaluate(self, batch: Batch, split: str) -> dict[str, Tensor]:
        logits = self.net(batch["x"])
        logits, labels = logits.reshape(-1, logits.shape[-1]), batch["y"].reshape(-1)
        return {"loss": F.cross_entropy(logits, labels), "acc": accuracy(logits, labels)}

    def analysis(self, datamodule: Any) -> dict[str, Any]:
        optimizer = self.optimizers() if self._trainer is not None else None
        optimizer = getattr(optimizer, "optimizer", optimizer)
        norm = float(global_norm(self.net.parameters()))
        result: dict[str, Any] = {"param_norm": norm}
        if optimizer is not None:
            result["effective_lr"] = effective_lr(optimizer.param_groups[0]["lr"], norm)
        if self.norm_curve:
            result["param_norm_curve"] = list(self.norm_curve)
            result["effective_lr_curve"] = list(self.effective_lr_curve)
        return result

"""The measurements of the robustness experiment, as pure functions of a model and data.

- clean and PGD robust accuracy (the paper's numerical section: robust accuracy per network
  size);
- the mean input-gradient norm ``mean_i ||grad_x CE(f(x_i), y_i)||_2`` over test points, the
  first-order smoothness that the paper's approximation theory controls (the network's
  gradient approximates the target's), measured at clean inputs (reconstruction: the paper
  states smoothness in its theorems, not as this statistic).

Every function evaluates in batches of ``batch_size`` (``None``: all at once) and leaves the
model's mode alone; call them with the model in eval mode.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dlt_runner.attacks import pgd


def _batches(n: int, batch_size: int | None) -> Iterator[slice]:
    size = n if batch_size is None else max(1, int(batch_size))
    for start in range(0, n, size):
        yield slice(start, start + size)


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def correct(logits: Tensor, y: Tensor) -> Tensor:
    """1.0 where the arg-max class is the label, else 0.0."""
    return (logits.argmax(dim=-1) == y).float()


def accuracy(model: nn.Module, x: Tensor, y: Tensor, batch_size: int | None = None) -> float:
    with torch.no_grad():
        hits = sum(correct(model(x[part]), y[part]).sum() for part in _batches(len(x), batch_size))
    return float(hits) / len(x)


def robust_accuracy(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    eps: float,
    steps: int,
    alpha: float,
    batch_size: int | None = None,
    clamp: tuple[float, float] | None = (0.0, 1.0),
    generator: torch.Generator | None = None,
) -> float:
    """Accuracy on L-infinity PGD examples (random start, ``steps`` sign steps of ``alpha``)."""
    hits = 0.0
    for part in _batches(len(x), batch_size):
        x_adv = pgd(model, x[part], y[part], eps, steps, alpha, clamp=clamp, generator=generator)
        with torch.no_grad():
            hits += float(correct(model(x_adv), y[part]).sum())
    return hits / len(x)


def input_gradient_norms(
    model: nn.Module, x: Tensor, y: Tensor, batch_size: int | None = None
) -> Tensor:
    """``||grad_x CE(f(x_i), y_i)||_2`` for every i.

    The summed loss's gradient with respect to a batch is the per-example gradients stacked,
    as long as examples do not interact (eval mode: no batch statistics).
    """
    norms = []
    with torch.enable_grad():
        for part in _batches(len(x), batch_size):
            inputs = x[part].detach().clone().requires_grad_(True)
            loss = F.cross_entropy(model(inputs), y[part], reduction="sum")
            (gradient,) = torch.autograd.grad(loss, inputs)
            norms.append(gradient.flatten(1).norm(dim=1))
    return torch.cat(norms)


def robust_accuracy_curve(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    eps_values: Sequence[float],
    steps: int,
    alpha_fraction: float = 0.25,
    batch_size: int | None = None,
    clamp: tuple[float, float] | None = (0.0, 1.0),
    generator: torch.Generator | None = None,
) -> list[float]:
    """Robust accuracy at each radius, PGD step ``alpha_fraction * eps`` (accuracy at eps 0)."""
    return [
        robust_accuracy(model, x, y, eps, steps, alpha_fraction * eps, batch_size, clamp, generator)
        if eps > 0
        else accuracy(model, x, y, batch_size)
        for eps in eps_values
    ]

"""L-infinity adversarial attacks as pure functions, for adversarial training and evaluation.

- :func:`pgd`: projected gradient ascent on the loss (Madry et al. 2018, "Towards Deep
  Learning Models Resistant to Adversarial Attacks", ICLR, eq. 2.1 and §2.1):
  ``x_{t+1} = Proj_{B_inf(x, eps) ∩ box}(x_t + alpha * sign(grad_x loss(f(x_t), y)))``,
  optionally from a uniform random start in the eps-ball.
- :func:`fgsm`: one such step from a random start with ``alpha = 1.25 eps`` ("fast"
  adversarial training, Wong, Rice & Kolter 2020, "Fast is better than free", ICLR, Alg. 3);
  with ``random_start=False, alpha=eps`` it is the FGSM of Goodfellow et al. 2015.

Both work inside a training step and inside evaluation: they enable gradients themselves,
differentiate only with respect to the perturbation (``torch.autograd.grad``, so the model
parameters' ``.grad`` is untouched), run the model in eval mode by default (BatchNorm
statistics are neither used from the attacked batch nor updated by it) and restore its
mode. They cannot run under ``torch.inference_mode``, whose tensors never record gradients.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

LossFunction = Callable[[Tensor, Tensor], Tensor]


def _uniform(shape: torch.Size, x: Tensor, generator: torch.Generator | None) -> Tensor:
    """U(-1, 1) noise like x, drawn on the generator's device (then moved to x's)."""
    device = x.device if generator is None else generator.device
    noise = torch.rand(shape, generator=generator, device=device, dtype=x.dtype)
    return (2 * noise - 1).to(x.device)


def _project(x_adv: Tensor, x: Tensor, eps: float, clamp: tuple[float, float] | None) -> Tensor:
    """Nearest point of the eps-ball around x intersected with the clamp box (both per pixel)."""
    x_adv = torch.minimum(torch.maximum(x_adv, x - eps), x + eps)
    return x_adv if clamp is None else x_adv.clamp(*clamp)


def pgd(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    eps: float,
    steps: int,
    alpha: float,
    random_start: bool = True,
    clamp: tuple[float, float] | None = (0.0, 1.0),
    loss: LossFunction = F.cross_entropy,
    generator: torch.Generator | None = None,
    eval_mode: bool = True,
) -> Tensor:
    """L-infinity PGD (Madry et al. 2018, §2.1): a detached ``x_adv`` with
    ``|x_adv - x|_inf <= eps`` and values inside ``clamp``.

    Args:
        model: maps x to logits (or whatever ``loss`` takes first).
        x, y: clean inputs and targets.
        eps: radius of the L-infinity ball.
        steps: gradient-sign steps (0 returns the projected start).
        alpha: step size of each sign step.
        random_start: start from x + U(-eps, eps) (projected), not from x.
        clamp: the valid input box (``(0, 1)`` for images on that scale), ``None`` for none.
        loss: the objective ascended, ``loss(model(x_adv), y)``; cross-entropy by default.
        generator: draws the random start (reproducible attacks).
        eval_mode: attack the model in eval mode; its previous mode is restored either way.
    """
    if torch.is_inference_mode_enabled():
        raise RuntimeError(
            "pgd needs gradients and cannot run under torch.inference_mode: evaluate with "
            "gradients enabled (a RunnerModule sets eval_needs_grad = True)"
        )
    if eps < 0 or steps < 0:
        raise ValueError(f"eps and steps must be non-negative, got eps={eps}, steps={steps}")
    x = x.detach()
    x_adv = x + eps * _uniform(x.shape, x, generator) if random_start else x.clone()
    x_adv = _project(x_adv, x, eps, clamp)
    was_training = model.training
    if eval_mode:
        model.eval()
    try:
        with torch.enable_grad():
            for _ in range(steps):
                x_adv.requires_grad_(True)
                objective = loss(model(x_adv), y)
                (gradient,) = torch.autograd.grad(objective, x_adv)
                x_adv = _project(x_adv.detach() + alpha * gradient.sign(), x, eps, clamp)
    finally:
        model.train(was_training)
    return x_adv.detach()


def fgsm(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    eps: float,
    alpha: float | None = None,
    random_start: bool = True,
    clamp: tuple[float, float] | None = (0.0, 1.0),
    loss: LossFunction = F.cross_entropy,
    generator: torch.Generator | None = None,
    eval_mode: bool = True,
) -> Tensor:
    """FGSM with a random start (Wong et al. 2020, Alg. 3): one PGD step of ``alpha``
    (default ``1.25 * eps``) from x + U(-eps, eps), projected back into the eps-ball."""
    return pgd(
        model,
        x,
        y,
        eps=eps,
        steps=1,
        alpha=1.25 * eps if alpha is None else alpha,
        random_start=random_start,
        clamp=clamp,
        loss=loss,
        generator=generator,
        eval_mode=eval_mode,
    )

"""The paper's metrics: field error, energy drift along a rollout, empirical order."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import Tensor

from dlt_runner.papers.imde.integrators import RK4, VectorField


def max_abs_error(field_a: VectorField, field_b: VectorField, x: Tensor) -> float:
    """Error(f_a, f_b) = mean over the points x of max_i |f_a(x)_i - f_b(x)_i| (Plot_error.py)."""
    with torch.no_grad():
        return (field_a(x) - field_b(x)).abs().amax(dim=-1).mean().item()


def rollout(field: VectorField, x0: Tensor, t_end: float, dt: float) -> Tensor:
    """States along the flow of `field` from x0 (one state or a batch), by RK4 with step ~dt.

    Returns shape (steps + 1, *x0.shape); the step is t_end / ceil(t_end / dt). Evaluated
    without gradient tracking, one batched pass per step.
    """
    steps = math.ceil(t_end / dt - 1e-9)
    step_size = t_end / steps
    rk4 = RK4()
    with torch.no_grad():
        states = [x0]
        for _ in range(steps):
            states.append(rk4.step(field, states[-1], step_size))
        return torch.stack(states)


def energy_drift(
    field: VectorField,
    hamiltonian: VectorField,
    x0: Tensor,
    t_end: float = 50.0,
    dt: float = 0.01,
) -> Tensor:
    """max_t |H(x(t)) - H(x0)| along the flow of `field` from x0, integrated by RK4 with step dt.

    The paper rolls learned pendulum fields out from x0 = (0, 1) to t = 50. With dt = 0.01 the
    RK4 error in H along the true pendulum flow is below 1e-6, so what is measured is the field's
    own (non-)conservation. x0 may be one state (dim,) or a batch (n, dim): the result has shape
    x0.shape[:-1].
    """
    energies = hamiltonian(rollout(field, x0, t_end, dt))
    return (energies - energies[0]).abs().amax(dim=0)


def trajectory_gap(
    field_a: VectorField, field_b: VectorField, x0: Tensor, t_end: float, dt: float
) -> float:
    """Mean over start points of max_t max_i |x_a(t)_i - x_b(t)_i| (paper Fig. 1, Fig. 3).

    Compares the flows of two fields from the same points: the learned model against the
    true system, or against the IMDE flow (the IMDE integrated accurately).
    """
    gap = (rollout(field_a, x0, t_end, dt) - rollout(field_b, x0, t_end, dt)).abs()
    return gap.amax(dim=-1).amax(dim=0).mean().item()


class EmpiricalOrder(NamedTuple):
    """Convergence orders from errors at several step sizes."""

    pairwise: list[float]
    """log(e_i / e_{i+1}) / log(h_i / h_{i+1}) for consecutive entries (Plot_error.py)."""
    slope: float
    """Least-squares slope of log e against log h over all entries."""


def empirical_order(step_sizes: Sequence[float], errors: Sequence[float]) -> EmpiricalOrder:
    """Orders p in error ~ C h^p from matched step sizes and errors of a sweep over h (paper
    Fig. 2)."""
    if len(step_sizes) != len(errors) or len(step_sizes) < 2:
        raise ValueError(
            "need at least two step sizes and as many errors, got "
            f"{len(step_sizes)} step sizes and {len(errors)} errors"
        )
    if min(step_sizes) <= 0 or min(errors) <= 0:
        raise ValueError("step sizes and errors must be positive to take logarithms")
    if len(set(step_sizes)) < len(step_sizes):
        raise ValueError(f"step sizes must be distinct, got {list(step_sizes)}")
    log_h = [math.log(h) for h in step_sizes]
    log_e = [math.log(e) for e in errors]
    pairwise = [
        (log_e[i] - log_e[i + 1]) / (log_h[i] - log_h[i + 1]) for i in range(len(log_h) - 1)
    ]
    mean_h, mean_e = sum(log_h) / len(log_h), sum(log_e) / len(log_e)
    covariance = sum((a - mean_h) * (b - mean_e) for a, b in zip(log_h, log_e, strict=True))
    variance = sum((a - mean_h) ** 2 for a in log_h)
    return EmpiricalOrder(pairwise=pairwise, slope=covariance / variance)

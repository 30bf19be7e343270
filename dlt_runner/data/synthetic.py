"""Synthetic inputs and targets shared by several papers (all seeded, no files)."""

from __future__ import annotations

import torch
from torch import Tensor

from dlt_runner.nn.mlp import MLP


def sphere_inputs(n: int, dim: int, generator: torch.Generator, dtype=torch.float64) -> Tensor:
    """Gaussian points projected onto the sphere of radius sqrt(dim) (so x·x/dim = 1)."""
    x = torch.randn(n, dim, generator=generator, dtype=dtype)
    return x * (dim**0.5) / x.norm(dim=1, keepdim=True)


def gaussian_inputs(
    n: int, dim: int, generator: torch.Generator, std: float = 1.0, dtype=torch.float64
) -> Tensor:
    """x ~ N(0, std² I_dim)."""
    return std * torch.randn(n, dim, generator=generator, dtype=dtype)


def teacher_targets(
    x: Tensor, hidden: list[int], activation: str, seed: int, outputs: int = 1
) -> Tensor:
    """Outputs of a random fully-connected teacher (standard parameterisation, He-like σ_w)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        teacher = MLP(
            [x.shape[1], *hidden, outputs],
            activation=activation,
            weight_std=2.0**0.5 if activation == "relu" else 1.0,
        ).to(x.dtype)
    with torch.no_grad():
        return teacher(x)


def parity_targets(x: Tensor, coordinates: int) -> Tensor:
    """y = prod_{i < k} sign(x_i): the k-sparse parity (paper 02's design task)."""
    return torch.sign(x[:, :coordinates]).prod(dim=1, keepdim=True)

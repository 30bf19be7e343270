"""1-D demonstration of the construction: a fixed ReLU network reading f from one real number.

The paper's proof approximates a Lipschitz f on [0, 1]^d by phi = A_{f,R} o phi_out o phi_f o
phi_in: phi_in maps x to the index of its grid cell, phi_f holds the f-dependent values,
phi_out decodes them, and an affine map rescales. For d = 1 this module builds such a network
with ReLU operations only (our reconstruction of the sub-networks, in float64):

- ``cell_index``: x -> floor(K x) as a sum of K - 1 steep ReLU ramps (exact at the grid points
  and everywhere except bands of width ``sharpness / K`` just below them);
- ``encode``: the intrinsic parameters. With s = lambda / K, the walk g_0 = f(0),
  g_{i+1} = g_i +- s, stepping towards f((i+1)/K), stays within s of f on the grid; its K - 1
  step signs are stored as the binary digits of ONE real number ``theta``; with the offset
  f(0) and the step s (the affine map) that is K - 1 bits in 3 real parameters;
- ``extract_bits``: bit extraction by ReLU (b = step(2 theta - 1), theta <- 2 theta - b), exact
  while the digits fit in the float64 mantissa (K <= 32 here);
- ``decode``: g at x's cell = f(0) + s (2 * #(up-steps before the cell) - index), the count
  taken with ReLU ANDs relu(b_m + [index > m] - 1).

Error: |g_i - f(i/K)| <= lambda / K on the grid, hence <= 2 lambda / K everywhere off the bands.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

MAX_CELLS = 32  # the K - 1 digits of theta must fit in float64's 52-bit mantissa


def relu_step(t: Tensor, sharpness: float) -> Tensor:
    """relu(t / sharpness + 1) - relu(t / sharpness): 0 for t <= -sharpness, 1 for t >= 0."""
    scaled = t / sharpness
    return torch.relu(scaled + 1) - torch.relu(scaled)


def cell_index(x: Tensor, cells: int, sharpness: float = 1e-6) -> Tensor:
    """sum_{j=1}^{K-1} step(K x - j): floor(K x) clipped to [0, K - 1], from ReLU ramps."""
    thresholds = torch.arange(1, cells, dtype=x.dtype, device=x.device)
    return relu_step(cells * x[..., None] - thresholds, sharpness).sum(dim=-1)


@dataclass(frozen=True)
class IntrinsicCode:
    """The f-dependent parameters: offset f(0), step s = lambda / K, and theta holding the bits."""

    offset: float
    step: float
    theta: float
    cells: int


def encode(f: Callable[[Tensor], Tensor], lipschitz: float, cells: int) -> IntrinsicCode:
    """The walk's up/down steps towards f on the grid i / K, packed into theta's binary digits."""
    if not 2 <= cells <= MAX_CELLS:
        raise ValueError(f"cells must be in [2, {MAX_CELLS}] (float64 digits), got {cells}")
    grid = f(torch.arange(cells, dtype=torch.float64) / cells)
    step = float(lipschitz) / cells
    value, theta = float(grid[0]), 0.0
    for i in range(1, cells):
        up = value < float(grid[i])
        value += step if up else -step
        theta += float(up) * 2.0**-i
    return IntrinsicCode(offset=float(grid[0]), step=step, theta=theta, cells=cells)


def extract_bits(theta: Tensor, count: int, sharpness: float = 2.0**-40) -> Tensor:
    """The first ``count`` binary digits of theta in [0, 1), by ReLU steps; shape (..., count)."""
    bits = []
    for _ in range(count):
        bit = relu_step(2 * theta - 1, sharpness)
        theta = 2 * theta - bit
        bits.append(bit)
    return torch.stack(bits, dim=-1)


def decode(x: Tensor, code: IntrinsicCode, sharpness: float = 1e-6) -> Tensor:
    """phi(x) = offset + step * (2 * (up-steps before x's cell) - cell index), ReLU ops only."""
    x = x.double()
    index = cell_index(x, code.cells, sharpness)
    theta = torch.tensor(code.theta, dtype=torch.float64, device=x.device)
    bits = extract_bits(theta, code.cells - 1)  # bit m - 1: the step from cell m - 1 to m
    thresholds = torch.arange(1, code.cells, dtype=x.dtype, device=x.device)
    reached = relu_step(code.cells * x[..., None] - thresholds, sharpness)  # [index >= m]
    ups = torch.relu(bits + reached - 1).sum(dim=-1)
    return code.offset + code.step * (2 * ups - index)

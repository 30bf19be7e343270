"""The 1-D construction: grid index, bit extraction, and the error bound on the grid."""

from __future__ import annotations

import math

import pytest
import torch

from dlt_runner.papers.intrinsic_params.construction import (
    cell_index,
    decode,
    encode,
    extract_bits,
)


def _f(x: torch.Tensor) -> torch.Tensor:
    return torch.sin(2 * math.pi * x) / (2 * math.pi) + 0.3 * x  # Lipschitz constant <= 1.3


def test_cell_index_is_floor_on_the_grid_and_inside_cells():
    cells = 16
    grid = torch.arange(cells, dtype=torch.float64) / cells
    assert torch.equal(cell_index(grid, cells), torch.arange(cells, dtype=torch.float64))
    middles = grid + 0.5 / cells
    assert torch.equal(cell_index(middles, cells), torch.arange(cells, dtype=torch.float64))


def test_bit_extraction_is_exact_for_32_digits():
    generator = torch.Generator().manual_seed(0)
    bits = torch.randint(0, 2, (32,), generator=generator).double()
    theta = float((bits * 2.0 ** -torch.arange(1, 33, dtype=torch.float64)).sum())
    assert torch.equal(extract_bits(torch.tensor(theta, dtype=torch.float64), 32), bits)


@pytest.mark.parametrize("cells", [4, 16, 32])
def test_decoded_network_is_within_lambda_over_k_on_the_grid(cells):
    lipschitz = 1.3
    code = encode(_f, lipschitz, cells)
    grid = torch.arange(cells, dtype=torch.float64) / cells
    error = (decode(grid, code) - _f(grid)).abs().max()
    # K = 2^n cells: lambda 2^-n, the paper's exponential rate in the number of bits n.
    assert float(error) <= lipschitz / cells + 1e-12
    # Off the steep bands (cell middles), within 2 lambda / K of f.
    middles = grid + 0.5 / cells
    assert float((decode(middles, code) - _f(middles)).abs().max()) <= 2 * lipschitz / cells
    # The walk a plain loop computes, term by term, is what the ReLU network outputs.
    walk = [float(_f(grid[:1]))]
    for i in range(1, cells):
        walk.append(walk[-1] + (code.step if walk[-1] < float(_f(grid[i : i + 1])) else -code.step))
    assert torch.allclose(decode(grid, code), torch.tensor(walk, dtype=torch.float64), atol=1e-12)


def test_encode_refuses_more_digits_than_float64_holds():
    with pytest.raises(ValueError, match="cells"):
        encode(_f, 1.3, 64)

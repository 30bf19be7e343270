"""Effective rank on tensors of known rank; relative error; medians over initialisations."""

from __future__ import annotations

import math

import pytest
import torch

from dlt_runner.papers.tensor_factorization.analysis import (
    effective_rank,
    large_components,
    median,
    relative_error,
)


def _diagonal(values: list[float], d: int = 6) -> torch.Tensor:
    """sum_i values[i] e_i ⊗ e_i ⊗ e_i: its mode-1 unfolding has singular values ``values``."""
    tensor = torch.zeros(d, d, d, dtype=torch.float64)
    for i, value in enumerate(values):
        tensor[i, i, i] = value
    return tensor


def test_effective_rank_of_a_rank_one_tensor_is_one():
    torch.manual_seed(0)
    u, v, w = torch.randn(5, dtype=torch.float64), torch.randn(6), torch.randn(7)
    tensor = torch.einsum("i,j,k->ijk", u, v.double(), w.double())
    for mode in range(3):
        assert effective_rank(tensor[None], mode).item() == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("k", [1, 2, 3, 5])
def test_effective_rank_of_k_equal_orthogonal_components_is_k(k):
    tensor = 2.5 * _diagonal([1.0] * k)
    assert effective_rank(tensor[None]).item() == pytest.approx(k, abs=1e-9)


def test_effective_rank_is_exp_entropy_of_normalised_singular_values():
    # sigma = (3, 1): p = (3/4, 1/4), erank = exp(-(3/4 log 3/4 + 1/4 log 1/4)).
    expected = math.exp(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25)))
    batch = torch.stack([_diagonal([3.0, 1.0]), _diagonal([1.0, 1.0, 1.0])])
    ranks = effective_rank(batch)
    assert ranks.tolist() == pytest.approx([expected, 3.0])


def test_relative_error_is_the_ratio_of_norms_over_the_entries():
    target = torch.tensor([3.0, 4.0])
    prediction = torch.tensor([[3.0, 4.0], [0.0, 0.0], [6.0, 8.0]])
    assert relative_error(prediction, target).tolist() == pytest.approx([0.0, 1.0, 1.0])


def test_median_counts_inf_as_worst_and_propagates_nan():
    assert median([3.0, 1.0, 2.0]) == 2.0
    assert median([4.0, 1.0, 2.0, 3.0]) == 2.5
    assert median([1.0, math.inf, 2.0, math.inf, 0.5]) == 2.0
    assert median([1.0, math.inf, math.inf]) == math.inf
    assert math.isnan(median([1.0, math.nan, 2.0]))


def test_large_components_counts_norms_above_a_fraction_of_the_largest():
    norms = torch.tensor([[1.0, 0.2, 0.01, 0.06], [0.0, 0.0, 3.0, 0.1]])
    assert large_components(norms, 0.05).tolist() == [3, 1]

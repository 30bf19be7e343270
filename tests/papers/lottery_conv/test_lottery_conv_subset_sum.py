"""Subset-sum approximation: agreement with brute force, the error bound, the statistics."""

import itertools

import numpy as np
import pytest
import torch

from dlt_runner.core.errors import ConfigError
from dlt_runner.papers.lottery_conv.subset_sum import (
    solve_subset_sum,
    subset_bits,
    subset_sum_statistics,
)


def brute_force(target: float, base: list[float], eps: float, max_size: int):
    """The smallest subset within eps (then smallest error), else the best error overall."""
    candidates = [
        (abs(target - sum(base[i] for i in subset)), len(subset))
        for size in range(max_size + 1)
        for subset in itertools.combinations(range(len(base)), size)
    ]
    hits = [(size, error) for error, size in candidates if error <= eps]
    if hits:
        size, error = min(hits)
        return error, size
    error, size = min(candidates)
    return error, size


def test_subset_bits_enumerates_every_subset_once():
    bits = subset_bits(4)
    assert bits.shape == (16, 4)
    assert len({tuple(row.tolist()) for row in bits}) == 16


@pytest.mark.parametrize("max_size", [2, 6])
def test_matches_brute_force(max_size):
    rng = np.random.default_rng(0)
    targets = rng.uniform(-1.5, 1.5, 60)
    bases = rng.uniform(-1, 1, (60, 6))
    result = solve_subset_sum(torch.tensor(targets), torch.tensor(bases), 0.05, max_size)
    for b in range(60):
        error, size = brute_force(targets[b], list(bases[b]), 0.05, max_size)
        assert result.error[b].item() == pytest.approx(error, abs=1e-12)
        assert result.size[b].item() == size
        chosen_sum = bases[b][result.chosen[b].numpy()].sum()
        assert result.approximation[b].item() == pytest.approx(chosen_sum, abs=1e-12)


def test_every_target_within_eps_for_a_binary_base():
    """A base holding 1/2, 1/4, ..., 1/2^m (and their negatives) reaches every target in
    [-1, 1) within 2^-m: the error bound holds for all targets, not just most."""
    m = 7
    halves = [2.0**-i for i in range(1, m + 1)]
    base = torch.tensor(halves + [-h for h in halves[:1]] + [-1.0 + 2**-m])
    targets = torch.linspace(-0.99, 0.99, 997)
    eps = 2.0**-m
    result = solve_subset_sum(targets, base.expand(len(targets), -1), eps, max_size=len(base))
    assert result.hit.all()
    assert result.error.max().item() <= eps


def test_large_random_base_finds_every_target():
    """Lueker's bound: n = 16 uniform numbers approximate 400 targets in [-1, 1] to 0.01."""
    rng = np.random.default_rng(1)
    targets = torch.tensor(rng.uniform(-1, 1, 400))
    bases = torch.tensor(rng.uniform(-1, 1, (400, 16)))
    result = solve_subset_sum(targets, bases, 0.01)
    assert result.hit.float().mean().item() >= 0.99
    assert (result.error[result.hit] <= 0.01).all()


def test_small_targets_are_pruned_and_padding_is_never_used():
    bases = torch.tensor([[0.3, 0.9, 0.2], [0.3, 0.9, 0.2]])
    valid = torch.tensor([[True, True, True], [True, False, True]])
    result = solve_subset_sum(torch.tensor([0.004, 0.9]), bases, 0.01, valid=valid)
    assert result.size[0].item() == 0  # |target| <= eps: the empty subset, a pruned weight
    assert not result.chosen[1, 1]  # 0.9 is padding in the second problem
    assert result.approximation[1].item() == pytest.approx(0.5)


def test_statistics_at_the_papers_setting():
    """n = 15, eps = 0.01 (official main_ssa_stats.py defaults): almost every target hit."""
    targets = np.random.default_rng(2).uniform(-1, 1, 2000)
    stats = subset_sum_statistics(targets, n=15, eps=0.01, seed=0)
    assert stats["ssa_hit_rate"] >= 0.98
    assert stats["ssa_median_abs_err"] <= 0.01
    assert 1.0 <= stats["ssa_mean_subset_size"] <= 4.0
    products = subset_sum_statistics(targets, n=15, eps=0.01, seed=0, products=True)
    assert products["ssa_hit_rate"] <= stats["ssa_hit_rate"]  # |v a| <= |v|: harder


def test_bad_arguments():
    with pytest.raises(ConfigError, match="n <= 16"):
        solve_subset_sum(torch.zeros(1), torch.zeros(1, 17), 0.01)
    with pytest.raises(ConfigError, match="positive"):
        solve_subset_sum(torch.zeros(1), torch.zeros(1, 3), 0.0)

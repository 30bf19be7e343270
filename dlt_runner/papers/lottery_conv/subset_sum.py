"""Subset-sum approximation: the step every ticket construction repeats per target parameter.

Burkholz 2022 (subset-sum lemma after Lueker 1998): given n i.i.d. U(-1, 1) numbers, with
n ≥ C log(1/eps) every target in [-1, 1] is, with high probability, within eps of the sum of
some subset. The official code (RelationalML/LT-existence, ``Utils/pruning.py::exhaustive``)
searches subsets in order of size and stops at the first one within eps; so does
:func:`solve_subset_sum`, exactly and for a whole batch of problems at once: it enumerates
every subset of each base set (2^n sums, one matrix product), and returns the smallest subset
within eps (ties: the smallest error), or, if none is, the subset with the smallest error.
Small subsets are what make tickets sparse.

Base sets longer than ``max_base`` are cut to their first ``max_base`` valid entries
(2^16 subsets per problem): the official search would look at the whole set, but with 16
U(-1, 1) numbers a miss at eps = 0.01 is already rare (reconstruction).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from dlt_runner.core.errors import ConfigError

MAX_BASE = 16
#: Problems x subsets per chunk: bounds the error matrices to ~64 MiB of float64.
_CHUNK_ELEMENTS = 1 << 23


@dataclass
class SubsetSumResult:
    """Per problem: the chosen subset (``chosen`` over the base set), its sum and error."""

    chosen: Tensor  # (B, n) bool
    approximation: Tensor  # (B,)
    error: Tensor  # (B,) |target - approximation|
    size: Tensor  # (B,) subset sizes
    hit: Tensor  # (B,) error <= eps


def subset_bits(n: int, device: torch.device | None = None) -> Tensor:
    """(2^n, n) 0/1 matrix: row r is the subset whose members are the set bits of r."""
    rows = torch.arange(1 << n, device=device).unsqueeze(1)
    return ((rows >> torch.arange(n, device=device)) & 1).to(torch.float64)


def solve_subset_sum(
    targets: Tensor,
    bases: Tensor,
    eps: float,
    max_size: int = 10,
    valid: Tensor | None = None,
) -> SubsetSumResult:
    """Approximate every ``targets[b]`` by a subset sum of ``bases[b]`` (exhaustive search).

    Subsets are visited size by size (0, 1, 2, ...); a problem is settled at the first size
    that has a subset within eps (the one with the smallest error of that size). Problems no
    subset of size <= ``max_size`` settles get the subset with the smallest error overall.

    Args:
        targets: (B,) values to approximate.
        bases: (B, n) base sets, n <= 16 (cut longer sets first, see the module docstring).
        eps: tolerated error; among subsets within eps the smallest is chosen.
        max_size: largest subset considered (the official code's bound, 10).
        valid: (B, n) bool, which base entries may be used (padding of unequal base sets).
    """
    if bases.dim() != 2 or targets.shape != bases.shape[:1]:
        raise ValueError(f"need targets (B,) and bases (B, n); got {targets.shape}, {bases.shape}")
    n = bases.shape[1]
    if n > MAX_BASE:
        raise ConfigError(f"subset sum enumerates 2^n subsets: base sets of n <= {MAX_BASE}")
    if eps <= 0:
        raise ConfigError(f"subset-sum eps must be positive, got {eps}")
    device = bases.device
    bases = bases.to(torch.float64)
    targets = targets.to(torch.float64)
    bits = subset_bits(n, device)
    sizes = bits.sum(1)
    invalid = None if valid is None else (~valid.bool()).to(torch.float64)
    count = len(targets)
    best_error = torch.full((count,), float("inf"), dtype=torch.float64, device=device)
    best_row = torch.zeros(count, dtype=torch.long, device=device)
    open_ = torch.arange(count, device=device)
    for size in range(min(max_size, n) + 1):
        rows = torch.nonzero(sizes == size).squeeze(1)
        members = bits[rows]
        chunk = max(1, _CHUNK_ELEMENTS // len(rows))
        settled = []
        for start in range(0, len(open_), chunk):
            problems = open_[start : start + chunk]
            error = (bases[problems] @ members.T - targets[problems, None]).abs()
            if invalid is not None:
                unusable = (invalid[problems] @ members.T) > 0
                error = error.masked_fill(unusable, float("inf"))
            error_min, index = error.min(1)
            better = error_min < best_error[problems]
            best_error[problems] = torch.where(better, error_min, best_error[problems])
            best_row[problems] = torch.where(better, rows[index], best_row[problems])
            settled.append(problems[error_min <= eps])
        done = torch.cat(settled) if settled else open_[:0]
        open_ = open_[~torch.isin(open_, done)]
        if len(open_) == 0:
            break
    chosen = bits[best_row].bool()
    approximation = (bases * chosen).sum(1)
    error = (approximation - targets).abs()
    return SubsetSumResult(chosen, approximation, error, chosen.sum(1), error <= eps)


def subset_sum_statistics(
    targets: np.ndarray,
    n: int = 15,
    eps: float = 0.01,
    seed: int = 0,
    max_size: int = 10,
    products: bool = False,
) -> dict[str, float]:
    """Solve one subset-sum problem per target with a fresh U(-1, 1) base set of size n.

    The official ``main_ssa_stats.py`` statistics: median and max |error|, the fraction of
    targets within eps (hit rate) and the mean subset size. ``products=True`` draws each base
    element as a product of two U(-1, 1) numbers (the 2L construction's first layer).
    """
    rng = np.random.default_rng(seed)
    targets = np.asarray(targets, dtype=np.float64).reshape(-1)
    bases = rng.uniform(-1.0, 1.0, size=(len(targets), n))
    if products:
        bases = bases * rng.uniform(-1.0, 1.0, size=(len(targets), n))
    result = solve_subset_sum(
        torch.from_numpy(targets), torch.from_numpy(bases), eps, max_size=max_size
    )
    return {
        "ssa_median_abs_err": float(result.error.median()),
        "ssa_max_abs_err": float(result.error.max()),
        "ssa_hit_rate": float(result.hit.double().mean()),
        "ssa_mean_subset_size": float(result.size.double().mean()),
    }

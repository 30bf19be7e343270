"""Synthetic tensor completion: a random low-CP-rank tensor, some entries observed (paper §5).

As Razin et al.'s generator (noamrazin/imp_reg_in_tf, ``tensor_sensing_data_generator.py``): the
ground truth is T = sum_{r<=K} u_{1,r} ⊗ ... ⊗ u_{N,r} with i.i.d. standard Gaussian factors,
rescaled to a fixed norm, and the observed entries are drawn uniformly without replacement.
Train = the observed entries, test = every other entry (the completion error). Sizes and the
CPU-scale defaults (order 3, d = 10, CP rank 1, 300 of 1,000 observed) are a reconstruction.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from dlt_runner.core.datamodule import Batch, TensorDataModule
from dlt_runner.core.errors import ConfigError, choose, positive_int


def low_rank_tensor(
    shape: Sequence[int], cp_rank: int, generator: torch.Generator, dtype=torch.float64
) -> torch.Tensor:
    """sum_{r<=cp_rank} of outer products of i.i.d. N(0, 1) vectors, shape ``shape``."""
    tensor = torch.zeros(tuple(shape), dtype=dtype)
    for _ in range(cp_rank):
        component = torch.ones((), dtype=dtype)
        for d in shape:
            vector = torch.randn(d, generator=generator, dtype=dtype)
            component = component.unsqueeze(-1) * vector
        tensor = tensor + component
    return tensor


NORMALISATIONS = {
    # mean squared entry 1: entries are O(1) whatever the size (CPU default here).
    "mean_square": lambda t: t / t.pow(2).mean().sqrt(),
    # Frobenius norm 1: Razin et al.'s generator.
    "frobenius": lambda t: t / t.norm(),
}


class TensorCompletionData(TensorDataModule):
    """Observed (train) and unobserved (test) entries of a random CP-rank-``cp_rank`` tensor.

    Each split is ``{"index": (B, N) long, "target": (B,)}``. The completion error on the
    unobserved entries is the paper's test metric; a validation split (``n_val`` of the
    unobserved entries, then left out of the test set) exists only for hyper-parameter searches.

    Args:
        shape: (d_1, ..., d_N).
        cp_rank: number of rank-1 components of the ground truth.
        n_observed: how many entries are observed (train); the rest are the test set.
        normalisation: ``mean_square`` (mean squared entry 1) or ``frobenius`` (norm 1).
        n_val: unobserved entries held out as a validation split (0: none).
        seed: the problem seed: the tensor and the observed set (``${seed}`` in the configs).
    """

    def __init__(
        self,
        shape: Sequence[int] = (10, 10, 10),
        cp_rank: int = 1,
        n_observed: int = 300,
        normalisation: str = "mean_square",
        n_val: int = 0,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.shape = tuple(positive_int("data.shape entries", d) for d in shape)
        self.cp_rank = positive_int("data.cp_rank", cp_rank)
        self.n_observed = positive_int("data.n_observed", n_observed)
        self.n_val = int(n_val)
        if self.n_val < 0 or self.n_observed + self.n_val >= math.prod(self.shape):
            raise ConfigError(
                f"data.n_observed + data.n_val must be below the number of entries "
                f"{math.prod(self.shape)} (the rest are the test set) and n_val >= 0, got "
                f"{self.n_observed} + {self.n_val}"
            )
        self.normalise = choose("normalisation", normalisation, NORMALISATIONS)

    def _problem(self) -> tuple[torch.Tensor, torch.Generator]:
        generator = torch.Generator().manual_seed(self.seed)
        return self.normalise(low_rank_tensor(self.shape, self.cp_rank, generator)), generator

    def ground_truth(self) -> torch.Tensor:
        """The full tensor T (float64), the same for the same seed."""
        return self._problem()[0]

    def build(self) -> dict[str, Batch]:
        truth, generator = self._problem()
        order = torch.randperm(truth.numel(), generator=generator)
        index = torch.stack(torch.unravel_index(torch.arange(truth.numel()), self.shape), dim=1)
        values = truth.flatten()
        held_out = self.n_observed + self.n_val
        parts = {
            "train": order[: self.n_observed],
            "val": order[self.n_observed : held_out],
            "test": order[held_out:],
        }
        return {
            split: {"index": index[entries], "target": values[entries]}
            for split, entries in parts.items()
            if len(entries)
        }

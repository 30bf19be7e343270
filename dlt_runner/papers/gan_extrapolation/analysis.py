"""Measurements of an extrapolation (reconstruction of the paper's evaluation at CPU scale).

- reach: fraction of edited samples whose target knowledge reaches the target;
- indistinguishability of the remaining knowledge (abstract: "kept indistinguishable from the
  original distribution"): a k-NN classifier two-sample test between the edited samples'
  standardised remaining knowledge and an independent batch of original samples (0.5 = chance);
- drift: per-sample change of the remaining knowledge, in units of its spread in the data;
- fidelity: relative L2 misfit between a signal and the ideal bump rebuilt from its own knowledge.
"""

from __future__ import annotations

import torch
from torch import Tensor

from dlt_runner.papers.gan_extrapolation.data import bump_signals
from dlt_runner.theory.two_sample import knn_c2st


def reach(knowledge: Tensor, target_index: int, target: float) -> float:
    """Fraction of samples with knowledge ``target_index`` >= ``target``."""
    return float((knowledge[:, target_index] >= target).double().mean())


def rest_indices(n_knowledge: int, target_index: int) -> list[int]:
    return [j for j in range(n_knowledge) if j != target_index]


def rest_c2st(
    edited: Tensor,
    original: Tensor,
    target_index: int,
    scale: Tensor,
    k: int = 25,
    seed: int = 0,
) -> float:
    """k-NN C2ST (2 folds) on the remaining knowledge divided by ``scale`` (its data spread).

    Compares ``edited`` with as many ``original`` rows as there are edited rows; NaN when there
    are too few edited samples for ``k`` neighbours in a fold.
    """
    rest = rest_indices(edited.shape[1], target_index)
    n = min(len(edited), len(original))
    if n < k + 1:
        return float("nan")
    generator = torch.Generator().manual_seed(seed)
    first = edited[:n, rest] / scale
    second = original[:n, rest] / scale
    return knn_c2st(first.cpu(), second.cpu(), k=k, folds=2, generator=generator)


def drift(edited: Tensor, start: Tensor, target_index: int, scale: Tensor) -> float:
    """Mean over samples of |k_rest(edited) - k_rest(start)| in units of ``scale``."""
    rest = rest_indices(edited.shape[1], target_index)
    return float(((edited[:, rest] - start[:, rest]) / scale).norm(dim=1).mean())


def fidelity(signals: Tensor, knowledge: Tensor) -> float:
    """Median of |x - bump(K(x))| / |x|: how far a signal is from the bump its knowledge names
    (0 for the data's own bumps)."""
    ideal = bump_signals(knowledge.to(signals.dtype), signals.shape[1])
    misfit = (signals - ideal).norm(dim=1) / signals.norm(dim=1).clamp_min(1e-12)
    return float(misfit.median())

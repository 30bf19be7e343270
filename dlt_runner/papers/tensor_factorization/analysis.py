"""The paper's measurements as pure functions of tensors (paper §5; Razin et al. 2021, §5).

Every function takes a leading axis of independent models (initialisations) and returns one value
per model; :func:`median` reduces over that axis the way the claim does.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def relative_error(prediction: Tensor, target: Tensor) -> Tensor:
    """||P(W - T)|| / ||P(T)|| over the given entries (Razin et al.'s normalised error).

    ``prediction``: (n_models, B) values of W at B entries; ``target``: (B,) values of T there.
    """
    return (prediction - target).norm(dim=-1) / target.norm()


def mean_squared_error(prediction: Tensor, target: Tensor) -> Tensor:
    """Mean over the B entries of (W - T)^2, per model: shape (n_models,)."""
    return (prediction - target).pow(2).mean(dim=-1)


def effective_rank(tensor: Tensor, mode: int = 0) -> Tensor:
    """Roy & Vetterli's effective rank of the mode-``mode`` unfolding of each model's tensor.

    erank(A) = exp(-sum_i p_i log p_i), p_i = sigma_i / sum_j sigma_j over the singular values of
    A (Roy & Vetterli 2007, Def. 1; used for tensors by Milanesi et al. 2021, §IV). It is 1 for a
    rank-1 matrix and k when A has k equal non-zero singular values. ``tensor``: (n_models, d_1,
    ..., d_N); the unfolding of mode n is (d_n, prod_{m != n} d_m). Zero tensors give NaN.
    """
    moved = torch.movedim(tensor, mode + 1, 1)
    unfolding = moved.reshape(moved.shape[0], moved.shape[1], -1)
    singular = torch.linalg.svdvals(unfolding)
    p = singular / singular.sum(dim=-1, keepdim=True)
    entropy = -torch.where(p > 0, p * p.log(), torch.zeros_like(p)).sum(dim=-1)
    return entropy.exp()


def normalised_component_norms(component_norms: Tensor) -> Tensor:
    """Component norms sorted in decreasing order and divided by the largest, per model."""
    ordered = component_norms.sort(dim=-1, descending=True).values
    return ordered / ordered[..., :1]


def large_components(component_norms: Tensor, threshold: float = 0.05) -> Tensor:
    """How many components have norm above ``threshold`` x the largest, per model."""
    return (normalised_component_norms(component_norms) > threshold).sum(dim=-1)


def median(values: Tensor | list[float]) -> float:
    """Median over initialisations (mean of the middle two for an even count); inf counts as
    the worst value (an initialisation that never reached a threshold), NaN propagates."""
    values = torch.as_tensor(values, dtype=torch.float64).flatten()
    if values.numel() == 0 or bool(values.isnan().any()):
        return math.nan
    ordered = values.sort().values
    middle = ordered.numel() // 2
    if ordered.numel() % 2:
        return float(ordered[middle])
    return float((ordered[middle - 1] + ordered[middle]) / 2)

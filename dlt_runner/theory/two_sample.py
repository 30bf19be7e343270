"""Classifier two-sample test (C2ST): can a classifier tell two samples apart?

Lopez-Paz & Oquab, "Revisiting Classifier Two-Sample Tests", ICLR 2017: label one sample 0 and
the other 1, train a classifier on part of the pooled data and report its accuracy on the rest.
Under the null hypothesis (one distribution) every held-out prediction is right with probability
1/2, so the accuracy is about 0.5 (binomial spread 0.5 / sqrt(n)); accuracy near 1 means the
samples are separable. Here the classifier is k-nearest neighbours (Euclidean) and the accuracy
is cross-fitted over folds, so every point is predicted once by a classifier that never saw it.
"""

from __future__ import annotations

import torch
from torch import Tensor


def _fold_of_each_point(n: int, folds: int, generator: torch.Generator | None) -> Tensor:
    """A random balanced fold index in ``0..folds-1`` for each of ``n`` points."""
    order = torch.randperm(n, generator=generator)
    fold = torch.empty(n, dtype=torch.long)
    fold[order] = torch.arange(n) % folds
    return fold


def knn_c2st(
    first: Tensor,
    second: Tensor,
    k: int = 25,
    folds: int = 2,
    generator: torch.Generator | None = None,
) -> float:
    """Cross-fitted accuracy of a k-NN classifier telling ``first`` (N, d) from ``second`` (M, d).

    Each sample is split into ``folds`` balanced random folds (stratified, so every fold keeps
    the two samples' proportions); the points of one fold are classified by majority vote of
    their ``k`` nearest neighbours among the other folds' points. Returns the fraction of all
    N + M points classified correctly: about 0.5 for one distribution, 1.0 for separable ones.
    ``k`` must be odd (no tied votes). Features should share a scale (standardise first).
    """
    if k < 1 or k % 2 == 0:
        raise ValueError(f"k must be a positive odd number (no tied votes), got {k}")
    if folds < 2:
        raise ValueError(f"folds must be >= 2, got {folds}")
    points = torch.cat([first, second]).to(torch.float64)
    labels = torch.cat(
        [torch.zeros(len(first), dtype=torch.long), torch.ones(len(second), dtype=torch.long)]
    ).to(points.device)
    fold = torch.cat(
        [
            _fold_of_each_point(len(first), folds, generator),
            _fold_of_each_point(len(second), folds, generator),
        ]
    ).to(points.device)
    correct = 0
    for held_out in range(folds):
        test, train = fold == held_out, fold != held_out
        if int(train.sum()) < k:
            raise ValueError(f"{int(train.sum())} training points for k={k}: use more points")
        distances = torch.cdist(points[test], points[train])
        nearest = distances.topk(k, dim=1, largest=False).indices
        votes = labels[train][nearest].sum(1)
        predicted = (2 * votes > k).long()
        correct += int((predicted == labels[test]).sum())
    return correct / len(points)

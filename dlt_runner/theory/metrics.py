"""Accuracy and relative error, the two measurements every kernel-vs-net comparison reports."""

from __future__ import annotations

import torch
from torch import Tensor


def accuracy(scores: Tensor, targets: Tensor) -> Tensor:
    """Fraction of points whose highest score is the target class.

    scores: ``(..., m, C)``, e.g. logits, or a grid of kernel-regression predictions.
    targets: ``(m,)`` integer class labels, or ``(m, C)`` floating one-hot (or any score
    vectors), whose argmax is the class. Returns ``(...)``: one accuracy per leading index, in
    the scores' dtype (float64 for integer scores).

    >>> accuracy(torch.tensor([[0.1, 0.9], [0.8, 0.2]]), torch.tensor([1, 1]))
    tensor(0.5000)
    """
    labels = targets.argmax(dim=-1) if targets.is_floating_point() else targets
    dtype = scores.dtype if scores.is_floating_point() else torch.float64
    return (scores.argmax(dim=-1) == labels).to(dtype).mean(dim=-1)


def relative_error(estimate: Tensor, reference: Tensor, *, elementwise: bool = False) -> Tensor:
    """||estimate - reference||_F / ||reference||_F, or |estimate - reference| / |reference|
    entry by entry when ``elementwise`` (e.g. one error per ridge of a grid). float64.

    >>> relative_error(torch.tensor([1.0, 2.0]), torch.tensor([1.0, 4.0]), elementwise=True)
    tensor([0.0000, 0.5000], dtype=torch.float64)
    """
    estimate, reference = estimate.double(), reference.double()
    if elementwise:
        return (estimate - reference).abs() / reference.abs()
    return torch.linalg.norm(estimate - reference) / torch.linalg.norm(reference)

"""The measurements of the intrinsic-parameter experiments, as pure functions."""

from __future__ import annotations

import torch
from torch import Tensor, nn


def parameter_counts(net: nn.Module) -> dict[str, float]:
    """n_trainable (requires_grad), n_total and their ratio trainable_fraction."""
    total = sum(p.numel() for p in net.parameters())
    trainable = sum(p.numel() for p in net.parameters() if p.requires_grad)
    return {
        "n_trainable": float(trainable),
        "n_total": float(total),
        "trainable_fraction": trainable / total,
    }


@torch.no_grad()
def classifier_accuracy(net: nn.Module, x: Tensor, y: Tensor, batch_size: int = 1024) -> float:
    """Fraction of ``x`` whose argmax logit is ``y``, evaluated in batches."""
    correct = 0
    for start in range(0, len(x), batch_size):
        logits = net(x[start : start + batch_size])
        correct += int((logits.argmax(dim=1) == y[start : start + batch_size]).sum())
    return correct / len(x)

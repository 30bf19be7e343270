"""The SimCLR (NT-Xent) contrastive loss and its values at ideal configurations (paper eq. 2).

For a batch of B inputs with two views each, every one of the 2B views is an anchor: its
positive is the other view of the same input, its 2B - 2 negatives are the views of the other
inputs (Chen et al. 2020, eq. 1):

    l(i) = -log( exp(s(i, i+) / tau) / sum_{j != i} exp(s(i, j) / tau) ),

with s the cosine similarity; the loss is the mean of l over the 2B anchors. The paper's
hypercube experiments use tau = 0.5 (Table 1).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def nt_xent(z1: Tensor, z2: Tensor, temperature: float = 0.5) -> Tensor:
    """Mean NT-Xent loss of paired representations ``z1[i]``, ``z2[i]`` (shape (B, d) each)."""
    if z1.shape != z2.shape or z1.dim() != 2:
        raise ValueError(
            f"nt_xent expects two (batch, dim) tensors of one shape, got {tuple(z1.shape)} "
            f"and {tuple(z2.shape)}"
        )
    batch = len(z1)
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    logits = z @ z.T / temperature
    # A view is never its own negative.
    logits = logits.masked_fill(torch.eye(2 * batch, dtype=torch.bool, device=z.device), -math.inf)
    index = torch.arange(batch, device=z.device)
    positives = torch.cat([index + batch, index])
    return F.cross_entropy(logits, positives)


def nt_xent_orthogonal(batch_size: int, temperature: float = 0.5) -> float:
    """The loss when both views of an input coincide and distinct inputs are orthogonal.

    log(exp(1/tau) + 2B - 2) - 1/tau: with tau = 0.5 and B = 512, log(e^2 + 1022) - 2 = 4.937,
    the value the paper's constructed minimisers reach (4.939, Table 1). Attainable when the
    representation dimension is at least B.
    """
    inverse = 1.0 / temperature
    return math.log(math.exp(inverse) + 2 * batch_size - 2) - inverse


def nt_xent_minimum(batch_size: int, temperature: float = 0.5) -> float:
    """The least loss of an augmentation-invariant representation (both views coincide).

    log(exp(1/tau) + (2B - 2) exp(-1/(tau (B - 1)))) - 1/tau. It bounds such representations
    from below in any dimension: the Gram matrix of the B unit vectors is positive
    semi-definite, so the mean negative cosine is at least -1/(B - 1), and the loss is a convex
    function of the similarities (Jensen). It is reached when the inputs sit at the vertices of
    a regular simplex (cosine -1/(B - 1), representation dimension >= B - 1), and lies below
    :func:`nt_xent_orthogonal` by O(1/B).
    """
    inverse = 1.0 / temperature
    negatives = (2 * batch_size - 2) * math.exp(-inverse / (batch_size - 1))
    return math.log(math.exp(inverse) + negatives) - inverse

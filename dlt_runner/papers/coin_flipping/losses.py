"""Training objectives for a CFNN from the logits of P passes on one minibatch.

The plurality of many passes is right iff the mean per-pass class probability p_bar(x) ranks
the label first (a pass that votes class c with probability p_c(x, z) votes it with overall
probability E_z p_c = p_bar_c). So the objective that targets the amplified classifier acts on
p_bar, not on single passes (reconstruction: whether the paper trains on the vote or on single
passes could not be read):

- ``vote_margin``: logistic loss on the vote margin, softplus(-scale * margin) with margin
  = (p_bar_y - max_{c != y} p_bar_c) / 2; for a binary net this is (2y - 1)(p_bar_1 - 1/2).
- ``soft_vote``: cross-entropy of p_bar, -log p_bar_y.
- ``per_pass``: mean over passes of each pass's cross-entropy. It trains every pass to be a good
  deterministic classifier instead of a good voter, so it does not amplify; kept as the
  ablation.

Each takes ``logits`` (passes, batch, outputs) and integer labels (batch,), returns a scalar.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from dlt_runner.papers.coin_flipping.vote import class_logits


def mean_log_probabilities(logits: Tensor) -> Tensor:
    """log p_bar (batch, K): log of the per-pass softmax averaged over passes, stably."""
    log_probs = F.log_softmax(class_logits(logits), dim=-1)
    return torch.logsumexp(log_probs, dim=0) - math.log(logits.shape[0])


def vote_margin(logits: Tensor, labels: Tensor) -> Tensor:
    """Half the gap between p_bar of the label and of the strongest other class, (batch,)."""
    mean_probs = mean_log_probabilities(logits).exp()
    label_prob = mean_probs.gather(1, labels.unsqueeze(1)).squeeze(1)
    others = mean_probs.scatter(1, labels.unsqueeze(1), float("-inf"))
    return (label_prob - others.max(dim=1).values) / 2


def vote_margin_loss(logits: Tensor, labels: Tensor, scale: float = 10.0) -> Tensor:
    return F.softplus(-scale * vote_margin(logits, labels)).mean()


def soft_vote_loss(logits: Tensor, labels: Tensor, scale: float = 10.0) -> Tensor:
    return F.nll_loss(mean_log_probabilities(logits), labels)


def per_pass_loss(logits: Tensor, labels: Tensor, scale: float = 10.0) -> Tensor:
    per_class = class_logits(logits)
    passes = per_class.shape[0]
    return F.cross_entropy(per_class.flatten(0, 1), labels.repeat(passes))


#: ``model.loss`` name -> objective(logits, labels, scale); ``scale`` only enters vote_margin.
LOSSES: dict[str, Callable[[Tensor, Tensor, float], Tensor]] = {
    "vote_margin": vote_margin_loss,
    "soft_vote": soft_vote_loss,
    "per_pass": per_pass_loss,
}

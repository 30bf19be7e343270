"""The paper's measurements as pure functions: amplification curves, resource counts.

- :func:`vote_curve`: test accuracy of the n-vote plurality for several n, from one nested run
  of passes (Sieradzki et al. 2022, §1: amplification);
- :func:`expected_curve`: the same curve in expectation over the coin flips, for a net whose
  single-pass probability is known in closed form (the analytic ball CFNN): the mean binomial
  tail ``vote.majority_tail``;
- :func:`parameter_count`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from dlt_runner.core.datamodule import Batch
from dlt_runner.core.errors import ConfigError, positive_int
from dlt_runner.papers.coin_flipping.vote import (
    label_counts,
    majority_tail,
    n_classes,
    pass_label_chunks,
    plurality,
)


@dataclass
class VoteCurve:
    """Vote accuracy after each of ``votes`` passes, and the mean single-pass accuracy."""

    votes: list[int]
    accuracy: list[float]
    pass_accuracy: float


@torch.no_grad()
def vote_curve(
    net,
    batches: Sequence[Batch],
    votes: Sequence[int],
    generator: torch.Generator | None = None,
    chunk: int = 128,
) -> VoteCurve:
    """Accuracy of the n-vote plurality for every n in ``votes`` over batches of ``x``, ``y``.

    The first n passes of one run of max(votes) passes are an n-vote plurality, so one run per
    input gives the whole curve; the points are dependent, each is exact in distribution.
    ``pass_accuracy`` averages all max(votes) single passes: a low-variance estimate of the
    n = 1 point. Each input's passes are independent of every other input's.
    """
    targets = sorted({positive_int("votes", n) for n in votes})
    if not targets:
        raise ConfigError("votes must list at least one vote count")
    classes = n_classes(net)
    correct_votes = torch.zeros(len(targets), dtype=torch.float64)
    correct_passes, inputs = 0.0, 0
    for batch in batches:
        x, y = batch["x"], batch["y"]
        features = net.features(x)
        counts = torch.zeros(len(x), classes, dtype=torch.long, device=x.device)
        done = 0
        for index, target in enumerate(targets):
            for labels in pass_label_chunks(net, features, target - done, generator, chunk):
                counts += label_counts(labels, classes)
                correct_passes += float((labels == y).sum())
            done = target
            correct_votes[index] += float((plurality(counts) == y).sum())
        inputs += len(x)
    return VoteCurve(
        targets,
        [float(c) / inputs for c in correct_votes],
        correct_passes / (targets[-1] * inputs),
    )


def expected_curve(net, batches: Sequence[Batch], votes: Sequence[int]) -> list[float] | None:
    """Mean over inputs of P(n-vote majority right) for each n, or None.

    Needs a binary net with ``inside_probability(x)`` = P(pass votes 1 | x) in closed form and
    odd vote counts; then P(pass right) = p or 1 - p by the label, and the n-vote majority is
    right with probability ``majority_tail(P(pass right), n)``.
    """
    if not hasattr(net, "inside_probability") or any(n % 2 == 0 for n in votes):
        return None
    p_right = torch.cat(
        [
            torch.where(b["y"] == 1, p, 1 - p)
            for b in batches
            for p in [net.inside_probability(b["x"]).double()]
        ]
    )
    return [float(majority_tail(p_right, n).mean()) for n in votes]


def parameter_count(net: nn.Module) -> int:
    """Trainable parameters (the analytic CFNN has none: its weights are pure noise)."""
    return sum(p.numel() for p in net.parameters() if p.requires_grad)

"""Amplification, exactly: the binomial tail, vote counting, and a coin with known P(right).

Statistical tests use a fixed seed and a tolerance of 5 standard errors of the estimate
(false-failure probability < 1e-6 for a fresh seed).
"""

from __future__ import annotations

import math
from statistics import NormalDist

import pytest
import torch
from torch import Tensor

from dlt_runner.core.errors import ConfigError
from dlt_runner.papers.coin_flipping.analysis import vote_curve
from dlt_runner.papers.coin_flipping.nets import StochasticNet
from dlt_runner.papers.coin_flipping.vote import (
    MajorityVote,
    label_counts,
    majority_tail,
    pass_labels,
    plurality,
)

SIGMAS = 5.0


class Coin(StochasticNet):
    """Input b's pass is right (votes label 1) iff z_b < Phi^{-1}(p): exactly w.p. ``p``.

    Each input reads its own noise coordinate, so inputs are independent trials.
    """

    n_outputs = 1

    def __init__(self, p: float, inputs: int) -> None:
        super().__init__()
        self.noise_dim = inputs
        self.threshold = NormalDist().inv_cdf(p)

    def head(self, features: Tensor, noise: Tensor) -> Tensor:
        return (self.threshold - noise[:, : len(features)]).unsqueeze(-1)


def brute_force_tail(p: float, n: int) -> float:
    """P(more than n/2 of n right) by enumerating all 2^n outcomes."""
    total = 0.0
    for outcome in range(2**n):
        right = bin(outcome).count("1")
        if 2 * right > n:
            total += p**right * (1 - p) ** (n - right)
    return total


@pytest.mark.parametrize("n", [1, 3, 5, 11, 15])
@pytest.mark.parametrize("p", [0.0, 0.3, 0.5, 0.55, 0.9, 1.0])
def test_majority_tail_is_the_enumerated_binomial_tail(p, n):
    assert float(majority_tail(torch.tensor(p, dtype=torch.float64), n)) == pytest.approx(
        brute_force_tail(p, n), abs=1e-12
    )


def test_majority_tail_amplifies_above_one_half_and_rejects_even_n():
    n = [1, 11, 101, 1001]
    above = [float(majority_tail(torch.tensor(0.55), k)) for k in n]
    below = [float(majority_tail(torch.tensor(0.45), k)) for k in n]
    assert above == sorted(above) and above[-1] > 0.99
    assert below == sorted(below, reverse=True) and below[-1] < 0.01
    # P(right) = 1/2 stays 1/2 by symmetry, for any odd n.
    assert float(majority_tail(torch.tensor(0.5), 1001)) == pytest.approx(0.5, abs=1e-12)
    with pytest.raises(ConfigError, match="odd"):
        majority_tail(torch.tensor(0.6), 10)


def test_counts_and_plurality_with_ties_to_the_lowest_class():
    labels = torch.tensor([[0, 2, 1], [2, 2, 1], [1, 0, 0], [0, 1, 0]])  # (passes, batch)
    counts = label_counts(labels, 3)
    assert counts.tolist() == [[2, 1, 1], [1, 1, 2], [2, 2, 0]]
    assert plurality(counts).tolist() == [0, 2, 0]  # input 2 ties 2-2: the lower class wins


@pytest.mark.parametrize("p, n", [(0.6, 11), (0.55, 101), (0.45, 11)])
def test_majority_vote_of_a_coin_matches_the_binomial_tail(p, n):
    inputs = 40_000
    coin = Coin(p, inputs)
    x = torch.zeros(inputs, 1)
    result = MajorityVote(n, chunk=16)(coin, x, torch.Generator().manual_seed(0))
    assert result.counts.sum(1).eq(n).all()
    assert torch.allclose(result.fraction, result.counts.double() / n)
    measured = float(result.label.double().mean())  # label 1 is right
    expected = float(majority_tail(torch.tensor(p), n))
    stderr = math.sqrt(expected * (1 - expected) / inputs)
    assert abs(measured - expected) < SIGMAS * stderr


def test_vote_curve_of_a_coin_matches_the_tails_at_every_vote_count():
    inputs, p = 20_000, 0.56
    coin = Coin(p, inputs)
    batch = {"x": torch.zeros(inputs, 1), "y": torch.ones(inputs, dtype=torch.long)}
    votes = [1, 11, 101]
    curve = vote_curve(coin, [batch], votes, torch.Generator().manual_seed(1), chunk=32)
    assert curve.votes == votes
    for n, measured in zip(votes, curve.accuracy, strict=True):
        expected = float(majority_tail(torch.tensor(p), n))
        assert abs(measured - expected) < SIGMAS * math.sqrt(expected * (1 - expected) / inputs)
    # The mean over all 101 x 20,000 single passes estimates p itself.
    assert abs(curve.pass_accuracy - p) < SIGMAS * math.sqrt(p * (1 - p) / (101 * inputs))


def test_sampled_pass_votes_follow_the_softmax():
    passes = 200_000
    binary = torch.full((passes, 1, 1), 0.8)  # P(class 1) = sigmoid(0.8)
    share = float(pass_labels(binary, "sample", torch.Generator().manual_seed(2)).double().mean())
    p = 1 / (1 + math.exp(-0.8))
    assert abs(share - p) < SIGMAS * math.sqrt(p * (1 - p) / passes)

    logits = torch.tensor([0.0, 1.0, -1.0, 2.0]).expand(passes, 1, 4)
    labels = pass_labels(logits, "sample", torch.Generator().manual_seed(3))[:, 0]
    frequency = torch.bincount(labels, minlength=4).double() / passes
    softmax = torch.softmax(logits[0, 0].double(), 0)
    stderr = (softmax * (1 - softmax) / passes).sqrt()
    assert (frequency - softmax).abs().lt(SIGMAS * stderr).all()

    assert pass_labels(torch.tensor([[[0.3], [-0.2]]])).tolist() == [[1, 0]]
    with pytest.raises(ConfigError, match="argmax, sample"):
        pass_labels(binary, "vote")

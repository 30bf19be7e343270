"""k-NN classifier two-sample test: chance under the null, perfect on separable samples."""

from __future__ import annotations

import math

import pytest
import torch

from dlt_runner.theory.two_sample import knn_c2st


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_two_samples_of_one_distribution_score_chance(seed):
    # Under the null the labels are exchangeable: each of the 2n held-out predictions is right
    # with probability 1/2, so the accuracy is about Binomial(2n, 1/2) / 2n with standard
    # deviation 0.5 / sqrt(2n) = 0.011 for n = 1000 (the votes share neighbours, so the
    # predictions are only nearly independent). 4 standard deviations: a false failure has
    # probability about 6e-5 per seed, and the draws are seeded.
    n = 1000
    generator = torch.Generator().manual_seed(seed)
    first, second = torch.randn(2, n, 2, generator=generator)
    accuracy = knn_c2st(first, second, k=25, generator=generator)
    assert abs(accuracy - 0.5) <= 4 * 0.5 / math.sqrt(2 * n)


def test_mean_over_many_null_draws_is_one_half():
    # 40 independent tests of 2 x 400 points: the mean's spread is 0.5 / sqrt(40 x 800) = 0.0028.
    generator = torch.Generator().manual_seed(7)
    scores = [
        knn_c2st(*torch.randn(2, 400, 3, generator=generator), k=15, generator=generator)
        for _ in range(40)
    ]
    assert abs(sum(scores) / len(scores) - 0.5) <= 4 * 0.5 / math.sqrt(40 * 800)


def test_separated_gaussians_score_one():
    # Means 20 standard deviations apart: every point's 25 nearest neighbours are its own kind.
    generator = torch.Generator().manual_seed(0)
    first = torch.randn(500, 2, generator=generator)
    second = torch.randn(500, 2, generator=generator) + torch.tensor([20.0, 0.0])
    assert knn_c2st(first, second, k=25, generator=generator) == 1.0


def test_a_shifted_distribution_is_detected_and_k_must_be_odd():
    generator = torch.Generator().manual_seed(3)
    first = torch.randn(1000, 2, generator=generator)
    second = torch.randn(1000, 2, generator=generator) + torch.tensor([1.0, 0.0])
    # Bayes accuracy for a unit mean shift is Phi(1/2) = 0.69; k-NN gets close to it.
    assert 0.62 < knn_c2st(first, second, k=25, generator=generator) < 0.72
    with pytest.raises(ValueError, match="odd"):
        knn_c2st(first, second, k=24)
    with pytest.raises(ValueError, match="more points"):
        knn_c2st(first[:10], second[:10], k=25)

"""Bump data, knowledge heads against their closed forms, fidelity and the measurements."""

from __future__ import annotations

import math

import pytest
import torch

from dlt_runner.papers.gan_extrapolation import analysis
from dlt_runner.papers.gan_extrapolation.data import BumpData, bump_signals
from dlt_runner.papers.gan_extrapolation.nets import BumpKnowledge


def _factors() -> torch.Tensor:
    centres = torch.tensor([0.35, 0.5, 0.65, 0.42])
    widths = torch.tensor([0.04, 0.055, 0.07, 0.077])
    heights = torch.tensor([0.6, 0.8, 1.0, 0.73])
    return torch.stack([centres, widths, heights], 1).double()


def test_heads_return_position_width_height_of_a_gaussian_bump():
    # q = x^2 is a Gaussian of variance w^2/2; sampled at spacing 1/31, Poisson summation puts
    # the error of its discrete moments at ~exp(-2 pi^2 (w / sqrt 2)^2 31^2) < 1e-6 for w >= 0.04.
    # sum(q^2) samples a Gaussian of variance w^2/4: error ~exp(-2 pi^2 (w/2)^2 31^2) ~ 5e-4
    # at w = 0.04, so height gets a 1e-3 relative tolerance.
    factors = _factors()
    knowledge = BumpKnowledge(32).double()(bump_signals(factors, 32))
    torch.testing.assert_close(knowledge[:, :2], factors[:, :2], rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(knowledge[:, 2], factors[:, 2], rtol=1e-3, atol=0)


def test_heads_ignore_a_constant_floor_less_than_plain_moments_would():
    # A 0.01 background floor (a Sigmoid output's): x^2 weighting keeps the width within 10% of
    # the bump's, while plain x-weighted moments more than double it (the floor's mass is spread
    # over the whole grid, and weighted by x it is not small next to the bump's).
    factors = _factors()[1:2]
    signal = bump_signals(factors, 32) + 0.01
    width = BumpKnowledge(32).double()(signal)[0, 1]
    assert abs(float(width) / 0.055 - 1) < 0.1
    grid = torch.linspace(0, 1, 32).double()
    mass = signal.sum()
    mean = (signal * grid).sum() / mass
    plain = torch.sqrt(2 * (signal * (grid - mean) ** 2).sum() / mass)
    assert float(plain) > 2 * 0.055


def test_bump_data_splits_factors_and_labels():
    data = BumpData(n_train=4000, n_val=10, n_test=0, seed=3, dtype="float64")
    data.prepare()
    train = data.tensors("train")
    assert train["x"].shape == (4000, 32) and set(data.splits) == {"train", "val"}
    factors = train["factors"]
    assert float(factors[:, 1].min()) >= 0.04 and float(factors[:, 1].max()) <= 0.07
    # standardised labels: mean 0 and std 1 up to sampling error (4 sd of the mean: 4/sqrt(4000))
    labels = train["labels"]
    assert labels.mean(0).abs().max() < 4 / math.sqrt(4000)
    assert (labels.std(0) - 1).abs().max() < 0.05
    torch.testing.assert_close(train["x"], bump_signals(factors, 32))
    again = BumpData(n_train=4000, n_val=10, n_test=0, seed=3, dtype="float64")
    again.prepare()
    assert torch.equal(again.tensors("train")["x"], train["x"])


def test_fidelity_is_zero_for_bumps_and_positive_for_distorted_signals():
    factors = _factors()[:3]
    signals = bump_signals(factors, 32)
    heads = BumpKnowledge(32).double()
    assert analysis.fidelity(signals, heads(signals)) < 1e-3
    noisy = signals + 0.05 * torch.randn(signals.shape, generator=torch.Generator().manual_seed(0))
    assert analysis.fidelity(noisy, heads(noisy)) > 0.05


def test_reach_drift_and_rest_c2st():
    knowledge = torch.tensor([[0.5, 0.08, 0.7], [0.4, 0.06, 0.9]]).double()
    assert analysis.reach(knowledge, 1, 0.07) == 0.5
    start = knowledge.clone()
    start[:, 0] += torch.tensor([0.3, 0.0]).double()
    scale = torch.tensor([0.1, 0.1]).double()
    # sample 0 moved 3 sd in position, sample 1 not at all
    assert analysis.drift(knowledge, start, 1, scale) == pytest.approx(1.5)
    assert analysis.rest_indices(3, 1) == [0, 2]
    assert math.isnan(analysis.rest_c2st(knowledge, knowledge, 1, scale, k=25))

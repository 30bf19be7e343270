"""The ball data: label balance, radius ranges, uniform directions, seeding and draw order."""

from __future__ import annotations

import math

import pytest
import torch

from dlt_runner.core.errors import ConfigError
from dlt_runner.papers.coin_flipping.data import BallData, ball_points

SIGMAS = 5.0


def test_ball_points_statistics():
    n, d = 40_000, 10
    points = ball_points(n, d, torch.Generator().manual_seed(0))
    x, y = points["x"], points["y"]
    assert x.shape == (n, d) and y.shape == (n,) and y.dtype == torch.long
    radius = x.norm(dim=1)
    inside = y == 1
    # Labels ~ Bernoulli(1/2).
    assert abs(float(y.double().mean()) - 0.5) < SIGMAS * math.sqrt(0.25 / n)
    # Radii within their ranges, uniform: mean and std of U(a, b).
    for mask, (low, high) in ((inside, (0.6, 1.0)), (~inside, (1.0, 1.4))):
        r = radius[mask]
        assert r.min() >= low and r.max() <= high
        width = high - low
        assert abs(float(r.mean()) - (low + high) / 2) < SIGMAS * width / math.sqrt(12 * len(r))
        assert float(r.std()) == pytest.approx(width / math.sqrt(12), rel=0.02)
    # Directions uniform on the sphere: each coordinate of x / ||x|| has mean 0, variance 1/d.
    direction = x / radius.unsqueeze(1)
    assert direction.mean(0).abs().max() < SIGMAS * math.sqrt(1 / (d * n))
    assert torch.allclose(
        direction.pow(2).mean(0), torch.full((d,), 1 / d, dtype=x.dtype), atol=0.01
    )


def test_ball_points_scale_with_the_radius():
    points = ball_points(1000, 3, torch.Generator().manual_seed(1), radius=2.0)
    radius = points["x"].norm(dim=1)
    assert radius[points["y"] == 1].max() <= 2.0 <= radius[points["y"] == 0].min()


def test_ball_data_is_seeded_and_draws_train_then_test_then_val():
    data = BallData(input_dim=4, n_train=50, n_val=20, n_test=30, seed=7)
    data.prepare()
    generator = torch.Generator().manual_seed(7)
    for split, n in (("train", 50), ("test", 30), ("val", 20)):
        expected = ball_points(n, 4, generator)
        assert torch.equal(data.splits[split]["x"], expected["x"].float())
        assert torch.equal(data.splits[split]["y"], expected["y"])
    without_val = BallData(input_dim=4, n_train=50, n_val=0, n_test=30, seed=7)
    without_val.prepare()
    assert "val" not in without_val.splits
    assert torch.equal(without_val.splits["test"]["x"], data.splits["test"]["x"])
    other_seed = BallData(input_dim=4, n_train=50, n_val=0, n_test=30, seed=8)
    other_seed.prepare()
    assert not torch.equal(other_seed.splits["train"]["x"], data.splits["train"]["x"])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"inner": [1.0, 0.6]}, "inner"),
        ({"p_inside": 1.0}, "p_inside"),
        ({"n_train": 0}, "n_train"),
        ({"radius": 0.0}, "radius"),
    ],
)
def test_ball_data_rejects_bad_settings(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        BallData(**kwargs)

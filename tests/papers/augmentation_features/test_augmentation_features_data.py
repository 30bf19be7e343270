"""The multi-view generator: where the views sit, the noise law, label balance, splits."""

from __future__ import annotations

import pytest
import torch

from dlt_runner.core.errors import ConfigError
from dlt_runner.papers.augmentation_features.data import (
    MultiViewData,
    multiview_images,
    view_features,
)

VIEW = {"patches": 8, "easy_strength": 1.0, "hard_strength": 0.6}


def _features(dim: int = 100, n_classes: int = 2) -> torch.Tensor:
    return view_features(dim, n_classes, torch.Generator().manual_seed(0))


def test_view_features_are_orthonormal_rows():
    features = _features(100, 5)
    assert features.shape == (10, 100)
    assert torch.allclose(features @ features.T, torch.eye(10, dtype=features.dtype), atol=1e-12)
    with pytest.raises(ConfigError, match="data.dim"):
        view_features(6, 4, torch.Generator())


def test_without_noise_each_image_is_exactly_its_two_views_at_distinct_patches():
    features = _features(30, 3)
    images = multiview_images(
        500, features, noise_std=0.0, generator=torch.Generator().manual_seed(1), **VIEW
    )
    x, y = images["x"], images["y"]
    easy, hard = images["easy_patch"], images["hard_patch"]
    assert x.shape == (500, 8, 30)
    assert bool((easy != hard).all()) and bool((easy >= 0).all())
    rows = torch.arange(500)
    assert torch.equal(x[rows, easy], 1.0 * features[y])
    assert torch.equal(x[rows, hard], 0.6 * features[3 + y])
    others = torch.ones(500, 8, dtype=torch.bool)
    others[rows, easy] = others[rows, hard] = False
    assert bool((x[others] == 0).all()), "every other patch is pure (here: zero) noise"


def test_hard_only_images_carry_the_hard_view_alone():
    features = _features(30, 2)
    images = multiview_images(
        200,
        features,
        noise_std=0.0,
        generator=torch.Generator().manual_seed(2),
        easy_fraction=0.0,
        **VIEW,
    )
    x, y, hard = images["x"], images["y"], images["hard_patch"]
    assert bool((images["easy_patch"] == -1).all())
    rows = torch.arange(200)
    assert torch.equal(x[rows, hard], 0.6 * features[2 + y])
    assert float(x.abs().sum()) == pytest.approx(float(x[rows, hard].abs().sum()))


def test_noise_law_label_balance_and_uniform_distinct_positions():
    n, patches, dim, std = 2000, 8, 100, 0.15
    features = _features(dim, 2)
    images = multiview_images(
        n, features, noise_std=std, generator=torch.Generator().manual_seed(3), **VIEW
    )
    x, y = images["x"].clone(), images["y"]
    rows = torch.arange(n)
    x[rows, images["easy_patch"]] -= features[y]
    x[rows, images["hard_patch"]] -= 0.6 * features[2 + y]
    # 1.6e6 N(0, std^2) coordinates: the sample variance's relative standard error is
    # sqrt(2 / 1.6e6) = 0.11%, so 1% is ~9 standard errors; the mean's is 1.2e-4, bound 1e-3.
    assert float(x.var()) == pytest.approx(std**2, rel=0.01)
    assert abs(float(x.mean())) < 1e-3
    # Labels Bernoulli(1/2): standard error 0.011, bound 0.05 (4.5 standard errors).
    assert float(y.double().mean()) == pytest.approx(0.5, abs=0.05)
    # Positions uniform over 8 patches: 250 expected per patch, standard error 14.8, bound 75.
    for key in ("easy_patch", "hard_patch"):
        counts = torch.bincount(images[key], minlength=patches)
        assert int((counts - n // patches).abs().max()) < 75
    # The hard view's offset from the easy one is uniform over 1..7.
    offsets = torch.bincount((images["hard_patch"] - images["easy_patch"]) % patches)
    assert int(offsets[0]) == 0 and int((offsets[1:] - n // 7).abs().max()) < 80


def test_easy_fraction_omits_the_easy_view_at_that_rate():
    images = multiview_images(
        4000,
        _features(20, 2),
        noise_std=0.1,
        generator=torch.Generator().manual_seed(4),
        easy_fraction=0.9,
        **VIEW,
    )
    # Bernoulli(0.1) over 4000 images: standard error 0.0047, bound 0.025.
    missing = float((images["easy_patch"] == -1).double().mean())
    assert missing == pytest.approx(0.1, abs=0.025)


def test_datamodule_splits_and_seeding():
    data = MultiViewData(n_train=300, n_test=500, n_hard_only=400, seed=0)
    data.prepare()
    assert {s: len(t["x"]) for s, t in data.splits.items()} == {
        "train": 300,
        "test": 500,
        "hard_only": 400,
    }
    assert bool((data.splits["train"]["easy_patch"] >= 0).all())
    assert bool((data.splits["hard_only"]["easy_patch"] == -1).all())
    assert data.splits["train"]["x"].dtype == torch.float32
    assert data.feature_directions().shape == (4, 100)
    again = MultiViewData(n_train=300, n_test=500, n_hard_only=400, seed=0)
    again.prepare()
    assert torch.equal(again.splits["train"]["x"], data.splits["train"]["x"])
    other = MultiViewData(n_train=300, n_test=500, n_hard_only=400, seed=3)
    assert not torch.allclose(other.feature_directions(), data.feature_directions())
    with pytest.raises(ConfigError, match="easy_fraction"):
        MultiViewData(easy_fraction=1.5)
    with pytest.raises(ConfigError, match="patches"):
        MultiViewData(patches=1, n_train=4, n_test=0, n_hard_only=0).prepare()

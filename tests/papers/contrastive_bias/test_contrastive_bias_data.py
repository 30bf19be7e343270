"""The hypercube data and the multiplicative augmentation of Example 1."""

from __future__ import annotations

import pytest
import torch

from dlt_runner.core.errors import ConfigError
from dlt_runner.data.transforms import TwoViews
from dlt_runner.papers.contrastive_bias.data import HypercubeData, HypercubeScaling


def _cube(n: int, dim: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return 2.0 * torch.randint(0, 2, (n, dim), generator=generator).float() - 1.0


def test_augmentation_scales_only_the_spurious_coordinates_by_uniform_factors():
    x = _cube(20_000, 12)
    view = HypercubeScaling(k=4)(x, torch.Generator().manual_seed(0))
    assert torch.equal(view[:, :4], x[:, :4])
    factors = view[:, 4:] / x[:, 4:]
    assert factors.min() > 0 and factors.max() <= 1
    # U(0, 1]: mean 1/2, variance 1/12; 160,000 draws give standard errors ~7e-4 and ~2e-4.
    assert factors.mean().item() == pytest.approx(0.5, abs=0.005)
    assert factors.var().item() == pytest.approx(1 / 12, abs=0.002)
    # Independent per coordinate: neighbouring factors are uncorrelated.
    correlation = torch.corrcoef(torch.stack([factors[:, 0], factors[:, 1]]))[0, 1]
    assert abs(correlation.item()) < 0.03


def test_augmentations_are_disjoint_and_reproducible():
    x = _cube(256, 10)
    views = TwoViews(HypercubeScaling(k=3))
    first, second = views(x, torch.Generator().manual_seed(5))
    assert torch.equal(torch.sign(first), x) and torch.equal(torch.sign(second), x)
    assert not torch.equal(first, second)  # two independent draws
    again = views(x, torch.Generator().manual_seed(5))
    assert torch.equal(again[0], first) and torch.equal(again[1], second)


def test_augmentation_rejects_wrong_shapes():
    with pytest.raises(ValueError, match="D > k"):
        HypercubeScaling(k=5)(torch.ones(3, 5), torch.Generator())


def test_hypercube_splits_are_balanced_linear_labels_on_the_cube():
    data = HypercubeData(dim=20, k=4, n_train=4000, n_val=512, n_probe=300, n_test=200, seed=3)
    data.prepare()
    sizes = {split: len(tensors["x"]) for split, tensors in data.splits.items()}
    assert sizes == {"train": 4000, "val": 512, "probe": 300, "test": 200}
    train = data.tensors("train")
    assert set(train["x"].unique().tolist()) == {-1.0, 1.0}
    assert 0.45 < train["y"].float().mean().item() < 0.55
    # The label depends on the first k coordinates only: equal heads, equal labels.
    heads = {}
    for head, label in zip(train["x"][:, :4].tolist(), train["y"].tolist(), strict=True):
        assert heads.setdefault(tuple(head), label) == label
    other = HypercubeData(dim=20, k=4, n_train=4000, n_val=512, n_probe=300, n_test=200, seed=3)
    assert torch.equal(other.tensors("test")["x"], data.tensors("test")["x"])


def test_hypercube_rejects_k_not_below_dim():
    with pytest.raises(ConfigError, match="data.k"):
        HypercubeData(dim=10, k=10)

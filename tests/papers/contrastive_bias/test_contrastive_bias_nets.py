"""Encoders and the constructed minimisers f and g of the paper's Table 1."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from dlt_runner.data.transforms import TwoViews
from dlt_runner.nn.resnet import ResNet
from dlt_runner.papers.contrastive_bias.analysis import (
    heldout_contrastive_loss,
    linear_probe_accuracy,
    representations,
)
from dlt_runner.papers.contrastive_bias.data import HypercubeScaling, hypercube_points
from dlt_runner.papers.contrastive_bias.losses import nt_xent
from dlt_runner.papers.contrastive_bias.nets import (
    LinearEncoder,
    MLPEncoder,
    MLPMixer,
    PerfectEncoder,
    SimCLREncoder,
    SpuriousEncoder,
    involution,
)


def _whole_cube(dim: int) -> torch.Tensor:
    return torch.tensor(list(itertools.product([-1.0, 1.0], repeat=dim)))


def test_sigma_is_an_involution_and_a_permutation_of_the_hypercube():
    dim, k = 9, 3
    cube = _whole_cube(dim)
    mixing = torch.randn(k, dim - k, generator=torch.Generator().manual_seed(0))
    image = involution(cube, k, mixing)
    assert torch.equal(involution(image, k, mixing), cube)
    assert set(map(tuple, image.tolist())) == set(map(tuple, cube.tolist()))
    assert torch.equal(image[:, k:], cube[:, k:])
    assert not torch.equal(image, cube)  # it moves points (flips some label coordinates)


def test_f_and_g_ignore_the_augmentation():
    x = _cube(64, 12)
    views = TwoViews(HypercubeScaling(k=4))(x, torch.Generator().manual_seed(1))
    f, g = PerfectEncoder(), SpuriousEncoder(input_dim=12, k=4, seed=0)
    for encoder in (f, g):
        assert torch.equal(encoder(views[0]), encoder(views[1]))
        assert torch.equal(encoder(views[0]), encoder(x))


def _cube(n: int, dim: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return 2.0 * torch.randint(0, 2, (n, dim), generator=generator).float() - 1.0


def test_g_on_a_batch_has_f_s_loss_on_the_sigma_image_with_identical_augmentations():
    dim, k = 30, 5
    x = _cube(128, dim)
    g = SpuriousEncoder(input_dim=dim, k=k, seed=2)
    f = PerfectEncoder()
    views = TwoViews(HypercubeScaling(k=k))
    first, second = views(x, torch.Generator().manual_seed(3))
    moved = involution(x, k, g.mixing)
    moved_first, moved_second = views(moved, torch.Generator().manual_seed(3))
    loss_g = nt_xent(g(first), g(second))
    loss_f = nt_xent(f(moved_first), f(moved_second))
    assert loss_g.item() == pytest.approx(loss_f.item(), rel=1e-6)


def test_f_and_g_equal_held_out_loss_and_opposite_transfer():
    dim, k = 60, 6
    generator = torch.Generator().manual_seed(0)
    weights = torch.randn(k, generator=generator, dtype=torch.float64)
    heldout = hypercube_points(4096, dim, weights, generator)["x"].float()
    fit, score = (hypercube_points(1500, dim, weights, generator) for _ in range(2))
    views = TwoViews(HypercubeScaling(k=k))
    f, g = PerfectEncoder(), SpuriousEncoder(input_dim=dim, k=k, seed=0)
    losses = [heldout_contrastive_loss(e, heldout, views, 512, seed=7) for e in (f, g)]
    # Same distribution of losses; with 8 batches the means agree far closer than 0.5%.
    assert abs(losses[1] - losses[0]) / losses[0] < 0.005
    accuracy = [
        linear_probe_accuracy(
            representations(e, fit["x"].float()),
            fit["y"].numpy(),
            representations(e, score["x"].float()),
            score["y"].numpy(),
        )
        for e in (f, g)
    ]
    # 1,500 scored points: chance level is 0.5 +- 0.013 (one standard error).
    assert accuracy[0] > 0.95 and accuracy[1] < 0.6


def test_heldout_loss_draws_the_same_views_for_every_encoder():
    x = _cube(1000, 20)
    views = TwoViews(HypercubeScaling(k=4))
    seen = []

    def spy(batch: torch.Tensor) -> torch.Tensor:
        seen.append(batch.clone())
        return batch

    heldout_contrastive_loss(spy, x, views, 300, seed=11)
    first = list(seen)
    seen.clear()
    heldout_contrastive_loss(spy, x, views, 300, seed=11)
    assert len(first) == 6  # 3 full batches of 300, two views each; the last 100 dropped
    assert all(torch.equal(a, b) for a, b in zip(first, seen, strict=True))


def test_probe_handles_a_single_class_and_constant_features():
    features = np.ones((10, 3))
    assert linear_probe_accuracy(features, np.zeros(10), features, np.zeros(10)) == 1.0
    mixed = np.c_[np.ones(20), np.r_[np.zeros(10), np.ones(10)]]
    labels = np.r_[np.zeros(10), np.ones(10)]
    assert linear_probe_accuracy(mixed, labels, mixed, labels) == 1.0


def test_encoder_shapes():
    x = torch.randn(7, 50)
    assert LinearEncoder(50, 10)(x).shape == (7, 10)
    mlp = MLPEncoder(50, 10, width=32, depth=3)
    assert mlp(x).shape == (7, 10)
    assert sum(isinstance(m, torch.nn.Linear) for m in mlp.modules()) == 4
    assert not list(PerfectEncoder().parameters())
    assert not list(SpuriousEncoder(50, 10).parameters())
    encoder = SimCLREncoder(ResNet(width=4, blocks=1), hidden=32, out_features=16)
    assert encoder(torch.randn(3, 3, 32, 32)).shape == (3, 16)


def test_mlp_mixer_backbone_mixes_tokens_and_feeds_the_projector():
    torch.manual_seed(0)
    mixer = MLPMixer(image_size=16, patch_size=4, channels=24, depth=2, token_hidden=8)
    x = torch.randn(2, 3, 16, 16)
    assert mixer.features(x).shape == (2, 24)
    # Token mixing: changing one patch changes every token before pooling, so the pooled
    # feature moves even when that patch's own embedding is averaged away.
    # One channel of token 0 moves (a shift of all its channels alike would be removed by the
    # block's layer norm): every other token must move by far more than rounding.
    block = mixer.blocks[0]
    tokens = torch.randn(1, 16, 24)
    changed = tokens.clone()
    changed[0, 0, 0] += 1.0
    difference = (block(changed) - block(tokens))[0, 1:].abs().sum(dim=1)
    assert (difference > 1e-3).all()
    encoder = SimCLREncoder(mixer, hidden=32, out_features=16)
    assert encoder(x).shape == (2, 16)
    with pytest.raises(ValueError, match="multiple"):
        MLPMixer(image_size=30, patch_size=4)

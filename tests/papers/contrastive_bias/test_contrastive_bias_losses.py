"""NT-Xent against a hand computation and at the configurations whose value is known."""

from __future__ import annotations

import math

import pytest
import torch

from dlt_runner.papers.contrastive_bias.losses import (
    nt_xent,
    nt_xent_minimum,
    nt_xent_orthogonal,
)


def test_nt_xent_matches_a_hand_computation_on_two_inputs():
    # B = 2, views a1, a2 (input 1) and b1, b2 (input 2) in R^2, tau = 0.5.
    a1, b1 = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 2.0])
    a2, b2 = torch.tensor([1.0, 1.0]), torch.tensor([-3.0, 0.0])
    views = [a1, b1, a2, b2]  # order of the concatenation [z1; z2]
    positive = {0: 2, 1: 3, 2: 0, 3: 1}

    def cosine(u, v):
        return float(u @ v / (u.norm() * v.norm()))

    expected = 0.0
    for i, anchor in enumerate(views):
        scores = {j: math.exp(cosine(anchor, other) / 0.5) for j, other in enumerate(views)}
        denominator = sum(score for j, score in scores.items() if j != i)
        expected -= math.log(scores[positive[i]] / denominator)
    expected /= 4
    loss = nt_xent(torch.stack([a1, b1]), torch.stack([a2, b2]), temperature=0.5)
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_aligned_orthogonal_views_reach_the_closed_form():
    # log(e^{1/tau} + 2B - 2) - 1/tau: B = 512, tau = 0.5 gives log(e^2 + 1022) - 2 = 4.937, the
    # paper's Table 1 value for the constructed minimisers (4.939).
    assert nt_xent_orthogonal(512, 0.5) == pytest.approx(math.log(math.e**2 + 1022) - 2)
    assert nt_xent_orthogonal(512, 0.5) == pytest.approx(4.9367, abs=1e-4)
    for batch, temperature in ((4, 0.5), (16, 0.2)):
        z = torch.eye(batch, dtype=torch.float64) * 3.0  # norms do not matter (cosine)
        loss = nt_xent(z, z.clone(), temperature)
        assert loss.item() == pytest.approx(nt_xent_orthogonal(batch, temperature), rel=1e-12)


def _simplex(batch: int) -> torch.Tensor:
    """Vertices of a regular simplex: centred standard basis vectors (in R^batch, rank B - 1)."""
    eye = torch.eye(batch, dtype=torch.float64)
    return eye - eye.mean(dim=0)


def test_simplex_reaches_the_minimum_and_random_representations_stay_above_it():
    for batch in (3, 8):
        z = _simplex(batch)
        loss = nt_xent(z, z.clone(), 0.5).item()
        assert loss == pytest.approx(nt_xent_minimum(batch, 0.5), rel=1e-12)
        assert loss < nt_xent_orthogonal(batch, 0.5)
    generator = torch.Generator().manual_seed(0)
    floor = nt_xent_minimum(8, 0.5)
    for _ in range(50):
        z1 = torch.randn(8, 5, generator=generator, dtype=torch.float64)
        z2 = z1 + 0.3 * torch.randn(8, 5, generator=generator, dtype=torch.float64)
        assert nt_xent(z1, z2, 0.5).item() > floor


def test_nt_xent_is_scale_invariant_and_symmetric_in_the_views():
    generator = torch.Generator().manual_seed(1)
    z1, z2 = torch.randn(6, 4, generator=generator), torch.randn(6, 4, generator=generator)
    loss = nt_xent(z1, z2)
    assert nt_xent(5.0 * z1, 0.1 * z2).item() == pytest.approx(loss.item(), rel=1e-5)
    assert nt_xent(z2, z1).item() == pytest.approx(loss.item(), rel=1e-5)


def test_nt_xent_rejects_mismatched_views():
    with pytest.raises(ValueError, match="one shape"):
        nt_xent(torch.zeros(4, 3), torch.zeros(5, 3))

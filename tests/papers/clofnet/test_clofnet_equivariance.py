"""Random rotations/reflections and the equivariance error (papers/clofnet/equivariance.py)."""

import pytest
import torch

from dlt_runner.papers.clofnet.equivariance import (
    equivariance_error,
    random_orthogonal,
    random_rotation,
    reflection,
)


def _generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("dim", [2, 3, 5])
def test_random_rotation_is_proper_orthogonal(dim):
    generator = _generator()
    for _ in range(20):
        q = random_rotation(generator, dim=dim)
        assert q.dtype == torch.float64
        torch.testing.assert_close(q.T @ q, torch.eye(dim, dtype=torch.float64), atol=1e-13, rtol=0)
        assert torch.linalg.det(q).item() == pytest.approx(1.0, abs=1e-12)


def test_random_rotation_is_reproducible_and_respects_dtype():
    first = random_rotation(_generator(7), dtype=torch.float32)
    second = random_rotation(_generator(7), dtype=torch.float32)
    assert first.dtype == torch.float32
    assert torch.equal(first, second)
    assert not torch.equal(first, random_rotation(_generator(8), dtype=torch.float32))


def test_random_rotation_is_haar_distributed():
    # Under the Haar measure every column is uniform on the sphere, so (Archimedes) each entry
    # is Uniform[-1, 1]: mean 0 and second moment 1/3. 4000 samples give standard errors 0.009
    # and 0.005; the tolerances are ~5 of them. Plain QR without the sign fix fails the mean
    # (its Q_11 is always <= 0, mean ~ -0.5).
    generator = _generator(1)
    samples = torch.stack([random_rotation(generator) for _ in range(4000)])
    assert samples.mean(dim=0).abs().max().item() < 0.05
    assert (samples.square().mean(dim=0) - 1 / 3).abs().max().item() < 0.025


def test_random_orthogonal_has_both_determinants():
    generator = _generator(2)
    signs = {round(torch.linalg.det(random_orthogonal(generator)).item()) for _ in range(50)}
    assert signs == {-1, 1}


def test_reflection_is_an_orthogonal_involution_with_det_minus_one():
    q = reflection(_generator(3))
    eye = torch.eye(3, dtype=torch.float64)
    torch.testing.assert_close(q @ q, eye, atol=1e-14, rtol=0)
    torch.testing.assert_close(q, q.T, atol=0, rtol=0)
    assert torch.linalg.det(q).item() == pytest.approx(-1.0, abs=1e-12)


def _centre_attraction(x, v):
    """E(3)-equivariant: moves points towards their centroid, plus a velocity term."""
    centred = x - x.mean(dim=-2, keepdim=True)
    return x - 0.1 * centred * centred.square().sum(dim=-1, keepdim=True) + 0.5 * v


def _chiral(x, v):
    """SE(3)- but not reflection-equivariant: adds the cross product of two centred points."""
    centred = x - x.mean(dim=-2, keepdim=True)
    twist = torch.linalg.cross(centred[..., 0, :], centred[..., 1, :], dim=-1)
    return x + 0.5 * v + twist.unsqueeze(-2)


def _inputs(dtype=torch.float64):
    generator = _generator(4)
    x = torch.randn(6, 5, 3, generator=generator, dtype=dtype)
    v = torch.randn(6, 5, 3, generator=generator, dtype=dtype)
    return x, v


def test_equivariant_function_has_round_off_error_only():
    x, v = _inputs()
    generator = _generator(5)
    translation = torch.randn(3, generator=generator, dtype=torch.float64)
    for transform in (random_rotation(generator), reflection(generator)):
        assert equivariance_error(_centre_attraction, x, v, (), transform, translation) < 1e-13


def test_chiral_function_is_rotation_but_not_reflection_equivariant():
    x, v = _inputs()
    generator = _generator(6)
    translation = torch.randn(3, generator=generator, dtype=torch.float64)
    assert equivariance_error(_chiral, x, v, (), random_rotation(generator), translation) < 1e-13
    assert equivariance_error(_chiral, x, v, (), reflection(generator), translation) > 1e-2


def test_a_fixed_offset_breaks_rotation_equivariance():
    x, v = _inputs()
    offset = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
    error = equivariance_error(lambda x, v: x + offset, x, v, (), random_rotation(_generator(7)))
    assert error > 1e-2


def test_translate_output_false_for_direction_outputs():
    x, v = _inputs()
    generator = _generator(8)
    rotation = random_rotation(generator)
    translation = torch.randn(3, generator=generator, dtype=torch.float64)

    def velocity_like(x, v):
        return 2 * v + (x - x.mean(dim=-2, keepdim=True))

    assert (
        equivariance_error(velocity_like, x, v, (), rotation, translation, translate_output=False)
        < 1e-13
    )
    assert equivariance_error(velocity_like, x, v, (), rotation, translation) > 1e-2


def test_extras_are_passed_through_untransformed():
    x, v = _inputs()
    charges = torch.ones(6, 5, 1, dtype=torch.float64)
    seen = []

    def fn(x, v, charges):
        seen.append(charges)
        return x + charges * v

    equivariance_error(fn, x, v, (charges,), random_rotation(_generator(9)))
    assert len(seen) == 2 and all(c is charges for c in seen)


def test_float32_error_is_at_round_off_level():
    x, v = _inputs(torch.float32)
    error = equivariance_error(
        _centre_attraction, x, v, (), random_rotation(_generator(10)), torch.ones(3)
    )
    assert error < 1e-5

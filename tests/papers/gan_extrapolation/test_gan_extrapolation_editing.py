"""PKD steps and the naive baseline on linear generators, where the answers are exact."""

from __future__ import annotations

import pytest
import torch

from dlt_runner.papers.gan_extrapolation.editing import (
    knowledge_and_jacobian,
    minimum_norm_step,
    mmd_witness_gradient,
    naive_ascent,
    pkd_edit,
)


def _linear(seed: int = 0, latent: int = 6, knowledge: int = 3):
    generator = torch.Generator().manual_seed(seed)
    mixing = torch.randn(latent, 10, generator=generator, dtype=torch.float64)
    readout = torch.randn(10, knowledge, generator=generator, dtype=torch.float64)
    z = 1e-3 * torch.randn(50, latent, generator=generator, dtype=torch.float64)
    return (lambda z: z @ mixing), (lambda x: x @ readout), z, mixing @ readout


def test_jacobian_of_a_linear_map_is_its_matrix_for_every_sample():
    decode, heads, z, matrix = _linear()
    knowledge, jacobian = knowledge_and_jacobian(decode, heads, z)
    torch.testing.assert_close(knowledge, z @ matrix)
    torch.testing.assert_close(jacobian, matrix.T.expand(len(z), -1, -1))


def test_minimum_norm_step_realises_the_request_with_the_least_norm():
    generator = torch.Generator().manual_seed(1)
    jacobian = torch.randn(20, 3, 6, generator=generator, dtype=torch.float64)
    request = 1e-3 * torch.randn(20, 3, generator=generator, dtype=torch.float64)
    step = minimum_norm_step(jacobian, request, damping=0.0, trust_region=10.0)
    torch.testing.assert_close((jacobian @ step[:, :, None])[:, :, 0], request)
    # least norm: the step lies in the row space of J (no component in J's null space)
    projector = jacobian.transpose(1, 2) @ torch.linalg.pinv(jacobian.transpose(1, 2))
    torch.testing.assert_close((projector @ step[:, :, None])[:, :, 0], step)
    clipped = minimum_norm_step(jacobian, 1e3 * request, damping=0.0, trust_region=0.05)
    torch.testing.assert_close(clipped.norm(dim=1), torch.full((20,), 0.05, dtype=torch.float64))


def test_proj_raises_the_target_and_holds_the_rest_exactly_on_a_linear_generator():
    decode, heads, z, _ = _linear()
    start = heads(decode(z))
    target = float(start[:, 1].max()) + 0.02
    result = pkd_edit(
        decode, heads, z, 1, target, "proj", iterations=100, step_request=1e-3,
        trust_region=100.0, damping=0.0, record_every=20,
    )  # fmt: skip
    assert bool((result.knowledge[:, 1] >= target).all())
    # at most 1.01 x target, since the last request is min(step, 1.01 target - width)
    assert bool((result.knowledge[:, 1] <= 1.01 * target + 1e-12).all())
    torch.testing.assert_close(result.knowledge[:, [0, 2]], start[:, [0, 2]])
    assert [i for i, _ in result.history] == [0, 20, 40, 60, 80, 100]


def test_pull_retracts_the_rest_toward_the_start():
    decode, heads, z, _ = _linear()
    start = heads(decode(z))
    # the request on the rest is pull_rate x (start - now): zero drift stays zero
    result = pkd_edit(
        decode, heads, z, 1, float(start[:, 1].max()) + 0.01, "pull", iterations=30,
        trust_region=100.0, damping=0.0,
    )  # fmt: skip
    torch.testing.assert_close(result.knowledge[:, [0, 2]], start[:, [0, 2]])


def test_witness_gradient_is_the_gradient_of_the_closed_form_critic():
    generator = torch.Generator().manual_seed(2)
    original = torch.randn(40, 2, generator=generator, dtype=torch.float64)
    edited = torch.randn(30, 2, generator=generator, dtype=torch.float64) + 1.0
    points = torch.randn(5, 2, generator=generator, dtype=torch.float64).requires_grad_(True)
    bandwidth = 0.7

    def kernel_mean(sample):
        squared = ((points[:, None, :] - sample[None]) ** 2).sum(2)
        return torch.exp(-squared / (2 * bandwidth**2)).mean(1)

    critic = kernel_mean(original) - kernel_mean(edited)
    (expected,) = torch.autograd.grad(critic.sum(), points)
    got = mmd_witness_gradient(points.detach(), original, edited, bandwidth)
    torch.testing.assert_close(got, expected)


def test_naive_ascent_stops_when_every_sample_reached():
    decode, heads, z, matrix = _linear()
    start = heads(decode(z))
    target = float(start[:, 1].max()) + 0.1
    result = naive_ascent(decode, heads, z, 1, target, iterations=10_000, step=0.05)
    assert bool((result.knowledge[:, 1] >= target).all())
    # each step raises the width by step x |grad|; the slowest sample sets the count
    gain = 0.05 * float(matrix[:, 1].norm())
    needed = int(((target - start[:, 1]) / gain).ceil().max())
    assert result.iterations == needed


def test_unknown_variant_is_refused():
    decode, heads, z, _ = _linear()
    with pytest.raises(ValueError, match="choose one of: proj, pull, witness"):
        pkd_edit(decode, heads, z, 1, 1.0, "project")

"""Scale invariance, its gradient identities and the clipping optimiser, exactly (float64)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from dlt_runner.core.errors import ConfigError
from dlt_runner.papers.scale_invariant.analysis import (
    clip_threshold,
    global_norm,
    scale_invariance_error,
    scale_parameters,
)
from dlt_runner.papers.scale_invariant.data import SortingData
from dlt_runner.papers.scale_invariant.module import ScaleInvariantModule
from dlt_runner.papers.scale_invariant.nets import (
    ScaleInvariantMLP,
    ScaleInvariantTransformer,
    StandardMLP,
    StandardTransformer,
)
from dlt_runner.papers.scale_invariant.optim import NormClippedSGD


def _si_net(eps: float = 0.0) -> ScaleInvariantMLP:
    torch.manual_seed(0)
    return ScaleInvariantMLP(6, 16, 2, 3, temperature=4.0, eps=eps).double()


def _batch():
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(32, 6, generator=generator, dtype=torch.float64)
    return x, torch.randint(0, 3, (32,), generator=generator)


def _grads(net, x, y) -> list[torch.Tensor]:
    loss = F.cross_entropy(net(x), y)
    return list(torch.autograd.grad(loss, list(net.parameters())))


def test_scale_invariant_net_ignores_a_common_rescaling():
    x, _ = _batch()
    assert scale_invariance_error(_si_net(), x, [1e-2, 0.5, 3.0, 1e2]) < 1e-12
    # The default variance floor keeps it to rounding over the sweep's scales.
    assert scale_invariance_error(_si_net(eps=1e-12), x, [1e-2, 1e2]) < 1e-6
    torch.manual_seed(0)
    standard = StandardMLP(6, 16, 2, 3).double()
    assert scale_invariance_error(standard, x, [0.5, 3.0]) > 1e-2


def test_gradient_is_orthogonal_to_the_weights():
    # d/dc L(cθ) = <∇L(θ), θ> = 0 at c = 1 for a scale-invariant L.
    net = _si_net()
    x, y = _batch()
    grads = _grads(net, x, y)
    inner = sum(float((g * p).sum()) for g, p in zip(grads, net.parameters(), strict=True))
    scale = float(global_norm(grads)) * float(global_norm(net.parameters()))
    assert abs(inner) < 1e-12 * scale


def test_gradient_scales_inversely_with_the_weights():
    # L(cθ) = L(θ) for all c gives ∇L(cθ) = ∇L(θ) / c.
    net = _si_net()
    x, y = _batch()
    grads = _grads(net, x, y)
    scale_parameters(net, 10.0)
    scaled = _grads(net, x, y)
    for g, g_scaled in zip(grads, scaled, strict=True):
        torch.testing.assert_close(g_scaled, g / 10.0, rtol=1e-10, atol=1e-14)


def _optimizer_after_backward(clip: bool, lr: float = 0.5, weight_decay: float = 2e-3):
    net = _si_net()
    x, y = _batch()
    F.cross_entropy(net(x), y).mul(1e3).backward()  # a large loss scale: the clip must fire
    return net, NormClippedSGD(net.parameters(), lr=lr, weight_decay=weight_decay, clip=clip)


def test_clip_bounds_the_gradient_norm_to_the_rule():
    net, optimizer = _optimizer_after_backward(clip=True)
    norm = float(global_norm(net.parameters()))
    before = [p.detach().clone() for p in net.parameters()]
    grads = [p.grad.clone() for p in net.parameters()]
    optimizer.step()
    threshold = clip_threshold(norm, 0.5, 2e-3)
    assert optimizer.clipped and optimizer.grad_norm > threshold
    assert threshold == pytest.approx(norm * math.sqrt(2 * 2e-3 / 0.5))
    factor = threshold / (optimizer.grad_norm + 1e-12)
    for p, p0, g in zip(net.parameters(), before, grads, strict=True):
        expected = p0 - 0.5 * (g * factor + 2e-3 * p0)
        torch.testing.assert_close(p.detach(), expected, rtol=1e-12, atol=1e-15)


def test_without_clip_it_is_plain_sgd():
    net, optimizer = _optimizer_after_backward(clip=False)
    reference_net, _ = _optimizer_after_backward(clip=False)
    reference = torch.optim.SGD(reference_net.parameters(), lr=0.5, weight_decay=2e-3)
    optimizer.step()
    reference.step()
    assert not optimizer.clipped
    for p, q in zip(net.parameters(), reference_net.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=0)


def test_clip_without_weight_decay_is_refused():
    with pytest.raises(ConfigError, match="weight_decay"):
        NormClippedSGD(_si_net().parameters(), lr=0.1, weight_decay=0.0, clip=True)


def test_module_applies_initial_scale_and_loss_scale():
    torch.manual_seed(0)
    net = StandardMLP(6, 16, 2, 3).double()
    norm = float(global_norm(net.parameters()))
    module = ScaleInvariantModule(
        net, init_scale=100.0, loss_scale=1e-3, optimizer=lambda p: torch.optim.SGD(p, lr=0.1)
    )
    assert float(global_norm(module.net.parameters())) == pytest.approx(100.0 * norm)
    x, y = _batch()
    loss, extras = module.loss({"x": x, "y": y})
    assert float(loss) == pytest.approx(1e-3 * float(extras["unscaled_loss"]))


def test_scale_invariant_transformer_ignores_a_common_rescaling():
    torch.manual_seed(0)
    net = ScaleInvariantTransformer(11, 7, 16, 2, 4, temperature=4.0, eps=0.0).double()
    tokens = torch.randint(0, 11, (5, 7), generator=torch.Generator().manual_seed(2))
    assert scale_invariance_error(net, tokens, [1e-2, 3.0, 1e2]) < 1e-10
    torch.manual_seed(0)
    standard = StandardTransformer(11, 7, 16, 2, 4).double()
    assert scale_invariance_error(standard, tokens, [3.0]) > 1e-2


def test_sorting_data_targets_are_the_sorted_inputs():
    data = SortingData(vocab=5, length=6, n_train=50, n_val=10, n_test=10, seed=3)
    splits = data.build()
    for split in splits.values():
        assert torch.equal(split["y"], split["x"].sort(dim=1).values)
        assert int(split["x"].max()) < 5
    again = SortingData(vocab=5, length=6, n_train=50, n_val=10, n_test=10, seed=3).build()
    assert torch.equal(again["test"]["x"], splits["test"]["x"])

"""PGD / FGSM: inside the eps-ball and the box, exact on a linear model, raise the loss of a
trained net, leave parameter gradients and the model's mode alone, reproducible."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dlt_runner.attacks import fgsm, pgd

EPS = 0.1


@pytest.fixture(scope="module")
def trained():
    """A small MLP fitted to a 3-class problem on [0, 1]^16 (near-perfect clean accuracy)."""
    generator = torch.Generator().manual_seed(0)
    centres = torch.rand(3, 16, generator=generator)
    y = torch.randint(0, 3, (300,), generator=generator)
    x = (centres[y] + 0.15 * torch.randn(300, 16, generator=generator)).clamp(0, 1)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 3))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(200):
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
    return model, x, y


def test_stays_in_ball_and_box(trained):
    model, x, y = trained
    for attack in (
        lambda: pgd(model, x, y, eps=EPS, steps=5, alpha=0.05),
        lambda: fgsm(model, x, y, eps=EPS),
        lambda: pgd(model, x, y, eps=EPS, steps=0, alpha=0.05),
    ):
        x_adv = attack()
        assert x_adv.shape == x.shape and not x_adv.requires_grad
        assert (x_adv - x).abs().max() <= EPS + 1e-6
        assert x_adv.min() >= 0 and x_adv.max() <= 1
    # Points on the box boundary: the box, not the ball, binds.
    corner = torch.zeros_like(x[:4])
    x_adv = pgd(model, corner, y[:4], eps=EPS, steps=3, alpha=0.05)
    assert x_adv.min() >= 0 and x_adv.max() <= EPS + 1e-6


def test_increases_the_loss(trained):
    model, x, y = trained
    clean = F.cross_entropy(model(x), y).item()
    generator = torch.Generator().manual_seed(1)
    one = F.cross_entropy(model(fgsm(model, x, y, eps=EPS, generator=generator)), y).item()
    ten = F.cross_entropy(
        model(pgd(model, x, y, eps=EPS, steps=10, alpha=EPS / 4, generator=generator)), y
    ).item()
    assert one > 1.5 * clean
    assert ten > one  # more steps find a higher loss on this model
    random = (x + EPS * (2 * torch.rand(x.shape, generator=generator) - 1)).clamp(0, 1)
    assert ten > 1.5 * F.cross_entropy(model(random), y).item()


def test_exact_on_a_two_class_linear_model():
    """For logits W x + b with two classes the loss grows with (w_other - w_y)·x, so the
    optimum over the ball ∩ box moves each coordinate by eps towards sign(w_other - w_y),
    clipped to the box; one step of alpha >= eps from x reaches it exactly."""
    generator = torch.Generator().manual_seed(0)
    model = nn.Linear(12, 2)
    x = torch.rand(8, 12, generator=generator)
    y = torch.randint(0, 2, (8,), generator=generator)
    direction = (model.weight[1 - y] - model.weight[y]).detach().sign()
    expected = (x + EPS * direction).clamp(0, 1)
    for steps in (1, 4):
        x_adv = pgd(model, x, y, eps=EPS, steps=steps, alpha=EPS, random_start=False)
        torch.testing.assert_close(x_adv, expected)
    unclamped = pgd(model, x, y, eps=EPS, steps=1, alpha=2 * EPS, random_start=False, clamp=None)
    torch.testing.assert_close(unclamped, x + EPS * direction)


def test_no_parameter_gradients_and_mode_restored(trained):
    model, x, y = trained
    model.train()
    bn_model = nn.Sequential(nn.Linear(16, 8), nn.BatchNorm1d(8), nn.Linear(8, 3)).train()
    running = bn_model[1].running_mean.clone()
    for net in (model, bn_model):
        for p in net.parameters():
            p.grad = None
        pgd(net, x, y, eps=EPS, steps=2, alpha=0.05)
        assert all(p.grad is None for p in net.parameters())
        assert net.training
    # eval mode by default: the attack's forward passes leave BatchNorm statistics alone
    torch.testing.assert_close(bn_model[1].running_mean, running)
    model.eval()
    fgsm(model, x, y, eps=EPS)
    assert not model.training


def test_works_under_no_grad_and_refuses_inference_mode(trained):
    model, x, y = trained
    with torch.no_grad():
        x_adv = pgd(model, x, y, eps=EPS, steps=2, alpha=0.05, random_start=False)
    assert (x_adv != x).any()
    with torch.inference_mode(), pytest.raises(RuntimeError, match="inference_mode"):
        pgd(model, x, y, eps=EPS, steps=1, alpha=0.05)


def test_reproducible_with_a_generator(trained):
    model, x, y = trained
    first = fgsm(model, x, y, eps=EPS, generator=torch.Generator().manual_seed(5))
    second = fgsm(model, x, y, eps=EPS, generator=torch.Generator().manual_seed(5))
    other = fgsm(model, x, y, eps=EPS, generator=torch.Generator().manual_seed(6))
    torch.testing.assert_close(first, second)
    assert not torch.equal(first, other)

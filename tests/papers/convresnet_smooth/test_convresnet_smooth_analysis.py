"""Robustness measurements: input-gradient norms against closed forms, robust <= clean accuracy,
eps = 0 is clean accuracy, the piecewise schedule's milestones."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dlt_runner.core.errors import ConfigError
from dlt_runner.papers.convresnet_smooth.analysis import (
    accuracy,
    input_gradient_norms,
    robust_accuracy,
    robust_accuracy_curve,
)
from dlt_runner.papers.convresnet_smooth.module import piecewise_decay


def test_input_gradient_norm_of_a_linear_model_is_closed_form():
    """For logits W x + b: grad_x CE = W^T (softmax(Wx + b) - onehot(y))."""
    torch.manual_seed(0)
    model = nn.Linear(10, 4).double()
    x = torch.rand(7, 10, dtype=torch.float64)
    y = torch.randint(0, 4, (7,))
    residual = torch.softmax(model(x), dim=1) - F.one_hot(y, 4).double()
    expected = (residual @ model.weight).norm(dim=1)
    for batch_size in (None, 3):
        norms = input_gradient_norms(model, x, y, batch_size)
        torch.testing.assert_close(norms, expected.detach())


def test_input_gradient_norms_match_one_example_at_a_time():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.Tanh(), nn.Flatten(), nn.Linear(48, 5))
    x, y = torch.rand(5, 1, 4, 4), torch.randint(0, 5, (5,))
    one_by_one = []
    for i in range(5):
        xi = x[i : i + 1].clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(F.cross_entropy(model(xi), y[i : i + 1]), xi)
        one_by_one.append(grad.norm())
    torch.testing.assert_close(input_gradient_norms(model, x, y), torch.stack(one_by_one))


def test_robust_accuracy_is_at_most_clean_and_equals_it_at_eps_zero():
    torch.manual_seed(2)
    centres = torch.rand(3, 12)
    y = torch.arange(60) % 3
    x = (centres[y] + 0.05 * torch.randn(60, 12)).clamp(0, 1)
    model = nn.Linear(12, 3)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(100):
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
    clean = accuracy(model, x, y)
    assert clean > 0.9
    assert robust_accuracy(model, x, y, eps=0.0, steps=5, alpha=0.01) == clean
    curve = robust_accuracy_curve(model, x, y, [0.0, 0.05, 0.2, 0.5], steps=10, batch_size=16)
    assert curve[0] == clean
    assert all(a >= b for a, b in zip(curve, curve[1:], strict=False)), curve
    assert curve[-1] < clean


def test_piecewise_decay_milestones():
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1)
    scheduler = piecewise_decay(optimizer, steps=100)
    rates = []
    for _ in range(100):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert rates[49] == pytest.approx(0.1) and rates[50] == pytest.approx(0.01)
    assert rates[74] == pytest.approx(0.01) and rates[75] == pytest.approx(0.001)
    with pytest.raises(ConfigError, match="fractions in"):
        piecewise_decay(optimizer, steps=100, milestones=[0.5, 75])

"""GroupRMSprop: the step against a hand computation; batched models step independently."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from dlt_runner.core.errors import ConfigError
from dlt_runner.papers.tensor_factorization.optim import GroupRMSprop


def test_two_steps_match_the_hand_computation():
    lr, alpha, eps = 0.1, 0.9, 1e-6
    a = torch.nn.Parameter(torch.tensor([1.0, 2.0], dtype=torch.float64))
    b = torch.nn.Parameter(torch.tensor(3.0, dtype=torch.float64))
    optimizer = GroupRMSprop([a, b], lr=lr, alpha=alpha, eps=eps)

    a.grad = torch.tensor([3.0, 0.0], dtype=torch.float64)
    b.grad = torch.tensor(4.0, dtype=torch.float64)  # ||g||^2 = 25
    optimizer.step()
    # a_1 = (1 - alpha) 25, bias-corrected: 25; step lr / (5 + eps).
    step = lr / (5.0 + eps)
    assert a.tolist() == pytest.approx([1.0 - step * 3.0, 2.0])
    assert b.item() == pytest.approx(3.0 - step * 4.0)

    a_before, b_before = a.detach().clone(), b.item()
    a.grad = torch.tensor([0.0, 1.0], dtype=torch.float64)
    b.grad = torch.tensor(0.0, dtype=torch.float64)  # ||g||^2 = 1
    optimizer.step()
    average = (alpha * (1 - alpha) * 25.0 + (1 - alpha) * 1.0) / (1 - alpha**2)
    step = lr / (math.sqrt(average) + eps)
    assert a.tolist() == pytest.approx([a_before[0].item(), a_before[1].item() - step])
    assert b.item() == pytest.approx(b_before)


def test_stacked_models_step_as_if_trained_alone():
    torch.manual_seed(0)
    start = [torch.randn(3, 4, 5), torch.randn(3, 2)]
    grads = [[torch.randn(3, 4, 5), torch.randn(3, 2)] for _ in range(4)]
    stacked = [torch.nn.Parameter(t.clone()) for t in start]
    together = GroupRMSprop(stacked, lr=0.05, n_models=3)
    for step_grads in grads:
        for p, g in zip(stacked, step_grads, strict=True):
            p.grad = g.clone()
        together.step()
    for model in range(3):
        alone = [torch.nn.Parameter(t[model].clone()) for t in start]
        optimizer = GroupRMSprop(alone, lr=0.05)
        for step_grads in grads:
            for p, g in zip(alone, step_grads, strict=True):
                p.grad = g[model].clone()
            optimizer.step()
        for p, q in zip(alone, stacked, strict=True):
            assert torch.allclose(p, q[model], atol=1e-6)


def test_state_survives_a_state_dict_round_trip():
    torch.manual_seed(1)
    grads = [torch.randn(2, 3) for _ in range(3)]
    p = torch.nn.Parameter(torch.zeros(2, 3))
    optimizer = GroupRMSprop([p], lr=0.1, n_models=2)
    p.grad = grads[0]
    optimizer.step()
    q = torch.nn.Parameter(p.detach().clone())
    resumed = GroupRMSprop([q], lr=0.1, n_models=2)
    # A checkpoint is a serialised copy (state_dict() itself shares the state's tensors).
    resumed.load_state_dict(copy.deepcopy(optimizer.state_dict()))
    for g in grads[1:]:
        p.grad, q.grad = g.clone(), g.clone()
        optimizer.step()
        resumed.step()
    assert torch.equal(p, q)


def test_a_parameter_without_the_model_axis_is_refused():
    with pytest.raises(ConfigError, match="first axis"):
        GroupRMSprop([torch.nn.Parameter(torch.zeros(4, 2))], n_models=3)
    with pytest.raises(ConfigError, match="alpha"):
        GroupRMSprop([torch.nn.Parameter(torch.zeros(1))], alpha=1.0)

"""The CFNN objectives on the mean vote, against their closed forms."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from dlt_runner.papers.coin_flipping.losses import (
    LOSSES,
    per_pass_loss,
    soft_vote_loss,
    vote_margin,
    vote_margin_loss,
)


def test_binary_vote_margin_is_the_mean_probability_minus_one_half():
    torch.manual_seed(0)
    logits = torch.randn(32, 10, 1, dtype=torch.float64)
    labels = torch.randint(0, 2, (10,))
    p_bar = torch.sigmoid(logits[..., 0]).mean(0)
    expected = (2 * labels - 1) * (p_bar - 0.5)
    assert torch.allclose(vote_margin(logits, labels), expected, atol=1e-12)
    assert torch.allclose(
        vote_margin_loss(logits, labels, 10.0), F.softplus(-10.0 * expected).mean(), atol=1e-12
    )


def test_multiclass_vote_margin_and_soft_vote():
    torch.manual_seed(1)
    logits = torch.randn(16, 6, 4, dtype=torch.float64)
    labels = torch.randint(0, 4, (6,))
    p_bar = torch.softmax(logits, -1).mean(0)
    label_prob = p_bar[torch.arange(6), labels]
    others = p_bar.clone()
    others[torch.arange(6), labels] = -1.0
    expected = (label_prob - others.max(1).values) / 2
    assert torch.allclose(vote_margin(logits, labels), expected, atol=1e-12)
    assert torch.allclose(soft_vote_loss(logits, labels), -label_prob.log().mean(), atol=1e-12)


def test_per_pass_loss_is_the_mean_single_pass_cross_entropy():
    torch.manual_seed(2)
    logits = torch.randn(5, 7, 1, dtype=torch.float64)
    labels = torch.randint(0, 2, (7,))
    expected = torch.stack(
        [F.binary_cross_entropy_with_logits(p[:, 0], labels.double()) for p in logits]
    ).mean()
    assert torch.allclose(per_pass_loss(logits, labels), expected, atol=1e-12)
    assert set(LOSSES) == {"vote_margin", "soft_vote", "per_pass"}


def test_vote_margin_gradient_moves_the_mean_vote_toward_the_label():
    logits = torch.zeros(8, 2, 1, requires_grad=True)
    labels = torch.tensor([1, 0])
    vote_margin_loss(logits, labels).backward()
    # Descent raises the logits of the label-1 input and lowers those of the label-0 input.
    assert (logits.grad[:, 0] < 0).all() and (logits.grad[:, 1] > 0).all()

"""Nets, data, module and verdict of lottery_conv (no Lightning trainer: tier 1)."""

import functools
from pathlib import Path

import pytest
import torch
from torch import nn

from dlt_runner.core.errors import ConfigError
from dlt_runner.data.digits import DigitsImages
from dlt_runner.nn.masked import MaskedConv2d, MaskedLinear, supermask_layers
from dlt_runner.papers.lottery_conv import claim
from dlt_runner.papers.lottery_conv.analysis import (
    conv_stack,
    nonzero_params,
    source_params,
    ticket_report,
    unmasked,
)
from dlt_runner.papers.lottery_conv.module import LotteryModule
from dlt_runner.papers.lottery_conv.nets import (
    NetGrid,
    conv_n,
    conv_target,
    residual_target,
    resnet_target,
)
from dlt_runner.sweeps.runs import Run


def test_digits_images_split():
    data = DigitsImages(batch_size=64)
    data.prepare()
    train, test = data.splits["train"], data.splits["test"]
    assert train["x"].shape == (1203, 1, 8, 8) and test["x"].shape == (594, 1, 8, 8)
    assert float(train["x"].min()) >= 0.0 and float(train["x"].max()) <= 1.0
    # stratified: every class holds ~1/3 of its images out
    counts = torch.bincount(test["y"], minlength=10).float()
    assert counts.min() >= 55 and counts.max() <= 62
    assert set(data.splits) == {"train", "test"}


def test_target_and_masked_architectures():
    torch.manual_seed(0)
    dense = conv_target(width=8, n_convs=2, image_size=8)
    assert [type(c) for c in dense.convs] == [nn.Conv2d, nn.Conv2d]
    assert dense(torch.zeros(2, 1, 8, 8)).shape == (2, 10)
    masked = conv_target(width=8, n_convs=2, image_size=8, masked=True)
    assert len(supermask_layers(masked)) == 3
    assert all(layer.bias is None for layer in supermask_layers(masked))
    # the residual net asks for biases (no norm), edge-popup layers have none
    residual = residual_target(width=8, masked=True)
    assert all(layer.bias is None for layer in supermask_layers(residual))
    assert isinstance(residual.fc, MaskedLinear)
    assert residual(torch.zeros(2, 1, 8, 8)).shape == (2, 10)
    assert all(name.endswith("_scores") for name, _ in masked.named_parameters())
    conv4 = conv_n(width=2, depth=4, masked=True)
    assert [c.out_channels for c in conv4.convs] == [128, 128, 256, 256]
    assert isinstance(conv4.convs[0], MaskedConv2d)
    with pytest.raises(ConfigError, match="depth"):
        conv_n(depth=5)
    assert resnet_target(width=4, blocks=1).depth == 8


def test_net_grid_members_depend_on_seed_and_offset_only():
    build = functools.partial(conv_target, n_convs=1, image_size=8, masked=True)
    grid = NetGrid(build, widths=[4, 8], seed_offsets=[1, 2], seed=5)
    assert list(grid.members) == ["w4_s1", "w4_s2", "w8_s1", "w8_s2"]
    state = torch.get_rng_state()
    again = NetGrid(build, widths=[8], seed_offsets=[2], seed=5)
    assert torch.equal(torch.get_rng_state(), state)  # the global RNG is left alone
    torch.testing.assert_close(
        again.members["w8_s2"].convs[0].weight, grid.members["w8_s2"].convs[0].weight
    )
    shifted = NetGrid(build, widths=[8], seed_offsets=[1], seed=6)
    torch.testing.assert_close(
        shifted.members["w8_s1"].convs[0].weight, grid.members["w8_s2"].convs[0].weight
    )
    assert grid(torch.zeros(3, 1, 8, 8)).shape == (4, 3, 10)


def test_members_train_independently():
    """The summed loss gives each member the gradient of its own loss."""
    torch.manual_seed(1)
    build = functools.partial(conv_target, n_convs=1, image_size=8)
    module = LotteryModule(
        NetGrid(build, widths=[4], seed_offsets=[0, 1]), optimizer=torch.optim.Adam
    )
    batch = {"x": torch.randn(5, 1, 8, 8), "y": torch.randint(0, 10, (5,))}
    total, extras = module.loss(batch)
    total.backward()
    member = module.net.members["w4_s1"]
    alone = nn.functional.cross_entropy(member(batch["x"]), batch["y"])
    grad = torch.autograd.grad(alone, member.classifier.weight)[0]
    torch.testing.assert_close(member.classifier.weight.grad, grad)
    assert extras["loss_per_net"].item() == pytest.approx(total.item() / 2)


def test_parameter_counts_and_the_unmasked_source():
    torch.manual_seed(2)
    net = conv_target(width=4, n_convs=1, image_size=4, masked=True)
    total = 4 * 1 * 9 + 4 * 16 * 10
    assert source_params(net) == total
    assert nonzero_params(net) == 18 + 320
    x = torch.randn(3, 1, 4, 4)
    with unmasked(net):
        full = net(x)
    expected = (
        net.classifier.weight
        @ torch.relu(nn.functional.conv2d(x, net.convs[0].weight, padding=1)).flatten(1).T
    )
    torch.testing.assert_close(full, expected.T)
    assert all(layer.keep == 0.5 for layer in supermask_layers(net))


def test_ticket_report_on_a_conv_target_and_the_wrong_net():
    torch.manual_seed(3)
    target = conv_target(width=3, n_convs=2, image_size=6)
    x, y = torch.rand(40, 1, 6, 6), torch.randint(0, 10, (40,))
    report = ticket_report(target, "l_plus_1", x, y, repeats=2, seed=0)
    assert report["ticket_agreement_l_plus_1"] >= 0.9
    assert report["ticket_nonzero_params_l_plus_1"] > report["target_nonzero_params_l_plus_1"]
    assert report["ticket_acc_ci_l_plus_1"] >= 0
    with pytest.raises(ConfigError, match="per_parameter"):
        conv_stack(residual_target(width=3))
    with pytest.raises(ConfigError, match="construction"):
        ticket_report(target, "l_plus_2", x, y)


def test_module_refuses_tickets_of_masked_nets():
    build = functools.partial(conv_target, n_convs=1, image_size=8, masked=True)
    with pytest.raises(ConfigError, match="tickets"):
        LotteryModule(NetGrid(build), optimizer=torch.optim.Adam, tickets=["l_plus_1"])


def _run(model: str, metrics: dict, curves: dict | None = None) -> Run:
    return Run("digits", {"model": model, "seed": "0"}, "ok", metrics, curves or {}, Path("x"))


def _runs(conv_wide: float, residual_narrow: float, hit_rate: float = 0.99) -> list[Run]:
    widths = [8.0, 32.0, 64.0]
    return [
        _run(
            "lottery_conv/conv_popup",
            {},
            {"analysis/widths": widths, "analysis/acc_vs_width": [0.90, 0.95, conv_wide]},
        ),
        _run(
            "lottery_conv/residual_popup",
            {},
            {"analysis/widths": widths, "analysis/acc_vs_width": [residual_narrow, 0.96, 0.96]},
        ),
        _run(
            "lottery_conv/conv_target",
            {
                "analysis/target_acc": 0.95,
                "analysis/ssa_hit_rate": hit_rate,
                "analysis/ssa_median_abs_err": 0.003,
            },
        ),
        _run("lottery_conv/residual_target", {"analysis/target_acc": 0.95}),
    ]


def test_verdict_holds_and_fails_on_each_statement():
    assert claim.verdict(_runs(0.96, 0.90)).holds
    fails = [
        check.statement for check in claim.verdict(_runs(0.91, 0.90)).checks if not check.holds
    ]
    assert fails == [claim.verdict(_runs(0.91, 0.90)).checks[0].statement]
    fails = [c for c in claim.verdict(_runs(0.96, 0.97)).checks if not c.holds]
    assert len(fails) == 1 and "residual" in fails[0].statement and "grows" in fails[0].statement
    assert not claim.verdict(_runs(0.96, 0.90, hit_rate=0.9)).holds
    assert not claim.verdict(_runs(0.96, 0.90)[:2]).holds  # targets missing

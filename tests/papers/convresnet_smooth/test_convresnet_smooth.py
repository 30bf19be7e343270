"""Wiring: the digits images, adversarial training on every batch, robust evaluation through
the runner (gradients in test), the analysis, the verdict."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from dlt_runner.core.errors import ConfigError
from dlt_runner.data.digits import DigitsImages
from dlt_runner.nn.resnet import ConvResNet
from dlt_runner.papers.convresnet_smooth.claim import verdict
from dlt_runner.papers.convresnet_smooth.module import AdversarialTraining
from dlt_runner.sweeps.runs import Run


@pytest.fixture(scope="module")
def digits() -> DigitsImages:
    data = DigitsImages(batch_size=64)
    data.prepare()
    return data


def _module(**kwargs) -> AdversarialTraining:
    torch.manual_seed(0)
    return AdversarialTraining(
        ConvResNet(width=4, blocks=1), optimizer=lambda p: torch.optim.Adam(p, lr=3e-3), **kwargs
    )


def test_digits_split_is_stratified_and_on_the_unit_scale(digits):
    train, test = digits.splits["train"], digits.splits["test"]
    assert train["x"].shape == (1203, 1, 8, 8) and test["x"].shape == (594, 1, 8, 8)
    assert float(train["x"].min()) == 0.0 and float(train["x"].max()) == 1.0
    # stratified: every class keeps its share of the 1,797 images within one image
    share = torch.bincount(test["y"], minlength=10) / torch.bincount(
        torch.cat([train["y"], test["y"]]), minlength=10
    )
    assert ((share - 0.33).abs() * 180 < 1.0).all()
    held_out = DigitsImages(n_val=200, n_train=500)
    held_out.prepare()
    assert {k: len(v["y"]) for k, v in held_out.splits.items()} == {
        "train": 500,
        "val": 200,
        "test": 594,
    }
    torch.testing.assert_close(held_out.splits["val"]["x"], train["x"][:200])
    torch.testing.assert_close(held_out.splits["train"]["x"], train["x"][200:700])


def test_training_uses_adversarial_examples(digits):
    module = _module(eps=0.1)
    batch = {name: t[:64] for name, t in digits.splits["train"].items()}
    module.step_generator = lambda stream=0: torch.Generator().manual_seed(stream)
    x_adv = module.adversarial_examples(batch["x"], batch["y"], torch.Generator().manual_seed(0))
    assert 0 < (x_adv - batch["x"]).abs().max() <= 0.1 + 1e-6
    loss, extras = module.loss(batch)
    clean = F.cross_entropy(module.net(batch["x"]), batch["y"])
    assert loss > clean and 0 <= float(extras["adv_acc"]) <= 1
    clean_module = _module(train_attack="none")
    clean_module.step_generator = module.step_generator
    torch.testing.assert_close(clean_module.loss(batch)[0], clean)


def test_bad_values_are_config_errors():
    with pytest.raises(ConfigError, match="unknown train attack 'cw'; choose one of: fgsm, pgd"):
        _module(train_attack="cw")
    with pytest.raises(ConfigError, match="eps must be >= 0"):
        _module(eps=-0.1)
    with pytest.raises(ConfigError, match="clamp must be"):
        _module(clamp=[0.0])


def test_runner_trains_and_evaluates_with_gradients(compose, tmp_path):
    """A short run through dlt-run's lifecycle: PGD in the test loop needs a Trainer without
    inference mode (eval_needs_grad); analysis metrics and the eps curve are recorded."""
    from dlt_runner.run import Runtime, run

    cfg = compose(
        "experiment=convresnet_smooth/digits",
        "logger=none",
        "trainer.max_steps=38",
        "model.net.width=4",
        "model.curve_eps=[0.0,0.1,0.3]",
    )
    record = run(cfg, Runtime(run_dir=tmp_path / "run"))
    assert record["status"] == "ok"
    metrics = json.loads((Path(tmp_path) / "run" / "metrics.json").read_text())["metrics"]
    curves = record["curves"]
    assert (
        metrics["analysis/n_params"] == 4 * 9 + 4 + 2 * 2 * (16 * 9 + 4) + 64 * 10 + 10
    )  # 2 blocks
    assert 0.2 < metrics["analysis/clean_acc"] <= 1.0  # 2 epochs: well above chance (0.1)
    robust = metrics["analysis/robust_acc_pgd10"]
    assert robust < metrics["analysis/clean_acc"]
    assert abs(metrics["test/robust_acc_pgd10"] - robust) < 0.05  # same attack, other starts
    assert metrics["test/acc"] == pytest.approx(metrics["analysis/clean_acc"])
    assert metrics["analysis/mean_input_grad_l2"] > 0
    assert curves["analysis/curve_eps"] == [0.0, 0.1, 0.3]
    assert curves["analysis/robust_acc_vs_eps"][0] == pytest.approx(metrics["analysis/clean_acc"])
    assert curves["analysis/robust_acc_vs_eps"][2] < curves["analysis/robust_acc_vs_eps"][1]


def _run(sweep: str, width: int, blocks: int, robust: float, grad: float) -> Run:
    overrides = {"model.net.width": str(width), "seed": "0"}
    if sweep == "depth":
        overrides["model.net.blocks"] = str(blocks)
    metrics = {
        "analysis/robust_acc_pgd10": robust,
        "analysis/mean_input_grad_l2": grad,
        "analysis/clean_acc": 0.9,
        "analysis/n_params": 1000.0,
    }
    return Run(sweep, overrides, "ok", metrics, {}, Path("."))


def _runs(r4: float, r8: float, r32: float) -> list[Run]:
    return [
        _run("width", 4, 2, r4, 1.3),
        _run("width", 8, 2, r8, 0.7),
        _run("width", 32, 2, r32, 0.4),
        _run("depth", 8, 1, 0.70, 0.8),
        _run("depth", 8, 4, 0.72, 0.7),
    ]


def test_verdict_thresholds():
    assert verdict(_runs(0.55, 0.71, 0.85)).holds
    small_gain = verdict(_runs(0.81, 0.82, 0.85))
    assert not small_gain.checks[0].holds and small_gain.checks[1].holds
    reversal = verdict(_runs(0.55, 0.90, 0.85))
    assert reversal.checks[0].holds and not reversal.checks[1].holds
    notes = " ".join(verdict(_runs(0.55, 0.71, 0.85)).notes)
    assert "falls monotonically" in notes and "+0.020" in notes
    assert "collapsed" not in notes
    dead = _runs(0.10, 0.71, 0.85)
    dead[0].metrics["analysis/clean_acc"] = 0.1
    assert "collapsed run (model.net.width=4, seed=0)" in " ".join(verdict(dead).notes)

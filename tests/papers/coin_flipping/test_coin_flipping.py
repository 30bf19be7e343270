"""Wiring: the modules through the runner, their config errors, and the claim's verdict."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from dlt_runner.core.errors import ConfigError
from dlt_runner.papers.coin_flipping.claim import verdict
from dlt_runner.papers.coin_flipping.data import ball_points
from dlt_runner.papers.coin_flipping.module import BaselineModule, CFNNModule
from dlt_runner.papers.coin_flipping.nets import GeneratedWeightsCFNN, ReLUBaseline
from dlt_runner.run import Runtime, run
from dlt_runner.sweeps.runs import Run

from helpers import train_full_batch

VOTES = (1, 11, 101, 1001)


def adam(params):
    return torch.optim.Adam(params, lr=0.01)


def test_analytic_cfnn_runs_without_training_and_measures_its_vote_curve(compose, tmp_path):
    cfg = compose(
        "experiment=coin_flipping/ball",
        "model=coin_flipping/analytic_cfnn",
        "logger=none",
        "data.n_train=256",
        "data.n_test=2000",
        "data.n_val=0",
    )
    record = run(cfg, Runtime(run_dir=tmp_path / "run"))
    assert record["status"] == "ok" and record["timing"]["steps"] == 0
    metrics, curves = record["metrics"], record["curves"]
    assert curves["analysis/votes"] == list(VOTES)
    sampled = curves["analysis/acc_vs_votes"]
    expected = curves["analysis/expected_acc_vs_votes"]
    assert sampled == [metrics[f"analysis/acc_vote@{n}"] for n in VOTES]
    assert expected == sorted(expected) and expected[-1] > 0.95
    # One shared noise draw per pass makes the sampled accuracies dependent across inputs;
    # 0.03 is more than 5 times the spread seen over seeds (<= 0.006 at 1001 votes).
    assert max(abs(a - b) for a, b in zip(sampled, expected, strict=True)) < 0.03
    assert metrics["analysis/parameters"] == 0 and metrics["analysis/hidden_neurons"] == 2
    written = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert written["curves"]["analysis/acc_vs_votes"] == sampled


@pytest.mark.parametrize("experiment", ["coin_flipping/ball", "coin_flipping/ball_baseline"])
def test_ball_experiments_log_the_claims_metrics(compose, tmp_path, experiment):
    cfg = compose(
        f"experiment={experiment}", "debug=fast", "trainer=cpu", "model.log_every_n_steps=1"
    )
    record = run(cfg, Runtime(run_dir=tmp_path / "run"))
    assert record["status"] == "ok" and record["timing"]["steps"] >= 1
    metrics = record["metrics"]
    if experiment == "coin_flipping/ball":
        for n in VOTES:
            assert 0.0 <= metrics[f"analysis/acc_vote@{n}"] <= 1.0
        assert {"train/pass_acc", "test/acc", "test/pass_acc"} <= set(metrics)
    else:
        assert metrics["analysis/hidden_neurons"] == 2 and "analysis/acc" in metrics


def test_learned_cfnn_training_raises_the_vote_margin():
    torch.manual_seed(0)
    batch = ball_points(512, 10, torch.Generator().manual_seed(0))
    batch = {"x": batch["x"].float(), "y": batch["y"]}
    module = CFNNModule(GeneratedWeightsCFNN(input_dim=10), adam, train_passes=32)
    losses = train_full_batch(module, batch, steps=150)
    assert losses[-1] < 0.95 * losses[0]
    # The readout learns the sign that makes "inside" mean small |<w,x>|: both entries negative.
    assert (module.net.readout < 0).all()


def test_baseline_training_lowers_the_cross_entropy():
    torch.manual_seed(0)
    batch = ball_points(512, 10, torch.Generator().manual_seed(0))
    batch = {"x": batch["x"].float(), "y": batch["y"]}
    module = BaselineModule(ReLUBaseline(input_dim=10, width=64), optimizer=adam)
    losses = train_full_batch(module, batch, steps=100)
    assert losses[-1] < 0.8 * losses[0]


def test_modules_reject_the_wrong_kind_of_net_and_bad_settings():
    with pytest.raises(ConfigError, match="StochasticNet"):
        CFNNModule(ReLUBaseline(input_dim=3, width=2), adam)
    with pytest.raises(ConfigError, match="CFNNModule"):
        BaselineModule(GeneratedWeightsCFNN(input_dim=3), optimizer=adam)
    with pytest.raises(ConfigError, match="vote_margin, soft_vote, per_pass"):
        CFNNModule(GeneratedWeightsCFNN(input_dim=3), adam, loss="hinge")
    with pytest.raises(ConfigError, match="optimizer is required"):
        CFNNModule(GeneratedWeightsCFNN(input_dim=3), None)


# --------------------------------------------------------------------------- claim verdict
def _run(sweep: str, overrides: dict[str, str], metrics: dict[str, float]) -> Run:
    return Run(sweep, overrides, "ok", metrics, {}, Path("."))


def _cfnn(model: str, seed: int, curve: list[float]) -> Run:
    metrics = {f"analysis/acc_vote@{n}": acc for n, acc in zip(VOTES, curve, strict=True)}
    return _run("cfnn", {"model": f"coin_flipping/{model}", "seed": str(seed)}, metrics)


def _baseline(width: int, seed: int, accuracy: float) -> Run:
    overrides = {"model.net.width": str(width), "seed": str(seed)}
    return _run("baseline", overrides, {"analysis/acc": accuracy})


def _claim_runs(det2: tuple[float, float] = (0.6, 0.55), learned_last: float = 0.93) -> list[Run]:
    runs = []
    for seed in (0, 1):
        runs.append(_cfnn("analytic_cfnn", seed, [0.6, 0.72, 0.88, 0.965]))
        runs.append(_cfnn("learned_cfnn", seed, [0.58, 0.7, 0.87, learned_last]))
        for width, accuracy in ((2, det2[seed]), (8, 0.8), (64, 0.96)):
            runs.append(_baseline(width, seed, accuracy))
    return runs


def test_verdict_holds_on_amplifying_cfnns():
    result = verdict(_claim_runs())
    assert result.holds, [(c.statement, c.measured) for c in result.checks if not c.holds]
    assert len(result.checks) == 6


def test_verdict_fails_when_any_width_2_net_is_close_or_the_vote_is_weak():
    # One width-2 net collapsed (0.5), the other reached 0.8: the bar is the best one.
    close = verdict(_claim_runs(det2=(0.5, 0.8)))
    failed = [c.statement for c in close.checks if not c.holds]
    assert len(failed) == 2 and all("width-2" in s for s in failed)
    weak = verdict(_claim_runs(learned_last=0.86))
    failed = [c.statement for c in weak.checks if not c.holds]
    assert any("learned CFNN (2 neurons)" in s for s in failed)
    assert any("amplifies" in s for s in failed)  # 0.87 at 101 votes is not below 0.86


def test_verdict_fails_when_a_run_is_missing():
    runs = [r for r in _claim_runs() if r.overrides.get("model") != "coin_flipping/learned_cfnn"]
    result = verdict(runs)
    assert not result.holds
    assert all(not c.holds for c in result.checks if c.statement.startswith("learned"))
    # A missing width-2 baseline could have been the best one: no gain can be claimed.
    no_baseline = [
        r
        for r in _claim_runs()
        if r.overrides.get("model.net.width") != "2" or r.overrides["seed"] != "1"
    ]
    gains = [c for c in verdict(no_baseline).checks if "width-2" in c.statement]
    assert gains and not any(c.holds for c in gains)

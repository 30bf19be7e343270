"""Wiring: the module through the runner, training, and the claim's verdict."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from dlt_runner.core.errors import ConfigError
from dlt_runner.data.transforms import TwoViews
from dlt_runner.papers.contrastive_bias.claim import verdict
from dlt_runner.papers.contrastive_bias.data import HypercubeScaling, hypercube_points
from dlt_runner.papers.contrastive_bias.module import ContrastiveModule
from dlt_runner.papers.contrastive_bias.nets import MLPEncoder, PerfectEncoder
from dlt_runner.run import Runtime, run
from dlt_runner.sweeps.runs import Run

from helpers import train_full_batch

SMALL_DATA = ["data.n_train=1024", "data.n_val=1024"]


def adam(params):
    return torch.optim.Adam(params, lr=5e-3)


def test_constructed_minimiser_is_measured_without_training(compose, tmp_path):
    cfg = compose(
        "experiment=contrastive_bias/hypercube",
        "model=contrastive_bias/perfect",
        "logger=none",
        *SMALL_DATA,
    )
    record = run(cfg, Runtime(run_dir=tmp_path / "run"))
    assert record["status"] == "ok" and record["timing"]["steps"] == 0
    metrics = record["metrics"]
    assert metrics["analysis/heldout_loss"] == pytest.approx(
        metrics["analysis/loss_floor"], abs=0.05
    )
    assert metrics["analysis/probe_acc"] > 0.9


def test_trained_encoder_records_its_curves(compose, tmp_path):
    cfg = compose(
        "experiment=contrastive_bias/hypercube",
        "model=contrastive_bias/mlp",
        "model.net.width=32",
        "logger=none",
        "trainer.max_steps=8",
        "trainer.check_val_every_n_epoch=1",
        "data.steps_per_call=2",
        *SMALL_DATA,
    )
    record = run(cfg, Runtime(run_dir=tmp_path / "run"))
    assert record["status"] == "ok" and record["timing"]["steps"] == 8
    curves = record["curves"]
    assert curves["analysis/steps"] == [2.0, 4.0, 6.0, 8.0]
    assert len(curves["analysis/heldout_loss_vs_step"]) == 4
    assert curves["analysis/heldout_loss_vs_step"][-1] == pytest.approx(
        record["metrics"]["analysis/heldout_loss"]
    )


@pytest.mark.parametrize("model", ["linear", "mlp_wd", "spurious"])
def test_hypercube_experiment_runs_with_debug_fast(compose, tmp_path, model):
    cfg = compose(
        "experiment=contrastive_bias/hypercube",
        f"model=contrastive_bias/{model}",
        "debug=fast",
        "trainer=cpu",
    )
    record = run(cfg, Runtime(run_dir=tmp_path / "run"))
    assert record["status"] == "ok"
    assert 0.0 <= record["metrics"]["analysis/probe_acc"] <= 1.0


def test_training_lowers_the_contrastive_loss():
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    batch = hypercube_points(256, 40, torch.randn(5, dtype=torch.float64), generator)
    batch = {"x": batch["x"].float(), "y": batch["y"]}
    module = ContrastiveModule(
        MLPEncoder(40, 8, width=64), TwoViews(HypercubeScaling(5)), optimizer=adam
    )
    losses = train_full_batch(module, batch, steps=60)
    assert losses[-1] < 0.9 * losses[0]


def test_module_needs_an_optimiser_for_a_trainable_net():
    with pytest.raises(ConfigError, match="optimizer"):
        ContrastiveModule(MLPEncoder(10, 2), HypercubeScaling(2))
    ContrastiveModule(PerfectEncoder(), HypercubeScaling(2))  # nothing to train: fine


# ----------------------------------------------------------------- verdict
TABLE = {
    # model: (held-out loss, probe accuracy), as measured at seed 0 of the CPU experiment
    "perfect": (4.956, 0.975),
    "spurious": (4.957, 0.500),
    "linear": (5.135, 0.981),
    "mlp": (5.142, 0.935),
}


def _runs(seeds=(0, 1, 2), **changes) -> list[Run]:
    runs = []
    for seed in seeds:
        for name, (loss, acc) in {**TABLE, **changes}.items():
            metrics = {"analysis/heldout_loss": loss, "analysis/probe_acc": acc}
            overrides = {"model": f"contrastive_bias/{name}", "seed": str(seed)}
            runs.append(Run("hypercube", overrides, "ok", metrics, {}, Path(".")))
    return runs


def test_verdict_holds_on_table_1_like_numbers_and_reports_the_trained_rows():
    result = verdict(_runs())
    assert result.holds, [(c.statement, c.measured) for c in result.checks if not c.holds]
    assert len(result.checks) == 3
    assert any("met on 3 of 3 seeds" in note for note in result.notes)


def test_verdict_fails_on_unequal_losses_or_transferring_g():
    unequal = verdict(_runs(spurious=(4.990, 0.5)))
    assert [c.holds for c in unequal.checks] == [False, True, True]
    transferring = verdict(_runs(spurious=(4.957, 0.7)))
    assert [c.holds for c in transferring.checks] == [True, False, True]
    worse = verdict(_runs(perfect=(5.2, 0.975), spurious=(5.2, 0.5)))
    assert [c.holds for c in worse.checks] == [True, True, False]


def test_trained_rows_do_not_gate_the_claim():
    result = verdict(_runs(mlp=(5.140, 0.975)))
    assert result.holds
    assert any("met on 0 of 3 seeds" in note for note in result.notes)


def test_verdict_fails_when_a_run_is_missing():
    runs = [
        r
        for r in _runs()
        if not (r.overrides["seed"] == "1" and "spurious" in r.overrides["model"])
    ]
    result = verdict(runs)
    assert not result.holds and all(not c.holds for c in result.checks)

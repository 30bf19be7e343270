"""IMDE wiring: the flow-pair data, the Neural ODE module's loss and analysis, the claim verdict."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from dlt_runner.core.errors import ConfigError
from dlt_runner.nn import MLP
from dlt_runner.papers.imde.claim import verdict
from dlt_runner.papers.imde.data import FlowPairData
from dlt_runner.papers.imde.integrators import RK4
from dlt_runner.papers.imde.module import NeuralODEModule
from dlt_runner.papers.imde.systems import Pendulum
from dlt_runner.sweeps.runs import Run

from helpers import train_full_batch


class TrueField(nn.Module):
    """The pendulum's own vector field, as a 'learned' field with nothing left to learn."""

    def __init__(self) -> None:
        super().__init__()
        self.unused = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return Pendulum().field(x)


def _module(net: nn.Module, integrator: str = "euler", **kwargs) -> NeuralODEModule:
    return NeuralODEModule(
        net, lambda params: torch.optim.Adam(params, lr=1e-2), integrator=integrator, **kwargs
    )


def _data(**kwargs) -> FlowPairData:
    sizes = {"n_train": 64, "n_val": 16, "n_test": 32}
    data = FlowPairData(**{**sizes, **kwargs}, dtype="float64")
    data.prepare()
    return data


def test_flow_pairs_are_the_exact_flow_and_reproducible():
    data = _data(seed=4)
    x0, x1 = data.splits["train"]["x0"], data.splits["train"]["x1"]
    reference = RK4().predict(Pendulum().field, x0, 0.1 / 2000, 2000)
    assert torch.allclose(x1, reference, atol=1e-10)
    assert torch.equal(_data(seed=4).splits["test"]["x0"], data.splits["test"]["x0"])
    assert not torch.equal(_data(seed=5).splits["test"]["x0"], data.splits["test"]["x0"])
    assert {split: len(t["x0"]) for split, t in data.splits.items()} == {
        "train": 64,
        "val": 16,
        "test": 32,
    }


@pytest.mark.parametrize("integrator", ["euler", "midpoint", "implicit_midpoint", "rk4"])
def test_training_loss_decreases(integrator):
    torch.manual_seed(0)
    module = _module(MLP([2, 32, 32, 2], activation="tanh", init="orthogonal").double(), integrator)
    losses = train_full_batch(module, _data().splits["train"], 60)
    assert losses[-1] < 0.2 * losses[0]


def test_analysis_of_the_true_field_measures_only_the_integrators_bias():
    module = _module(TrueField(), "euler", energy_horizon=5.0)
    results = module.analysis(_data())
    assert results["err_true"] == 0.0
    # f - f_h = -(h/2 f'f + ...): the IMDE is O(h) away from f for Euler.
    assert 0.05 < results["err_imde"] < 1.0
    assert results["energy_drift"] < 1e-5, "RK4 at dt=0.01 conserves the true pendulum's energy"


def test_bad_values_are_config_errors():
    net = MLP([2, 8, 2])
    with pytest.raises(ConfigError, match="unknown integrator 'rk5'; choose one of"):
        _module(net, "rk5")
    with pytest.raises(ConfigError, match="unknown system 'spring'"):
        _module(net, system="spring")
    with pytest.raises(ConfigError, match="substeps"):
        _module(net, substeps=0)


def _run(sweep: str, integrator: str, seed: int, step: float = 0.1, **metrics: float) -> Run:
    overrides = {"model.integrator": integrator, "seed": str(seed), "data.step_size": str(step)}
    return Run(
        sweep, overrides, "ok", {f"analysis/{k}": v for k, v in metrics.items()}, {}, Path(".")
    )


def _runs(drift_symplectic: float, midpoint_order: float) -> list[Run]:
    runs = []
    for seed in range(3):
        runs.append(_run("main", "euler", seed, err_true=0.78, err_imde=0.02, energy_drift=4.6))
        runs.append(
            _run(
                "main",
                "implicit_midpoint",
                seed,
                err_true=0.03,
                err_imde=0.02,
                energy_drift=drift_symplectic,
            )
        )
    for step in (0.1, 0.2):
        runs.append(_run("order", "euler", 0, step, err_true=7.8 * step))
        runs.append(_run("order", "midpoint", 0, step, err_true=7.0 * step**midpoint_order))
    return runs


def test_verdict_holds_on_the_papers_picture():
    result = verdict(_runs(drift_symplectic=0.2, midpoint_order=2.0))
    assert result.holds, [c for c in result.checks if not c.holds]
    assert len(result.checks) == 4


def test_verdict_fails_when_energy_is_not_conserved_or_the_order_is_wrong():
    result = verdict(_runs(drift_symplectic=3.0, midpoint_order=1.0))
    failed = [check.statement for check in result.checks if not check.holds]
    assert len(failed) == 2
    assert any("energy" in s for s in failed) and any("midpoint" in s for s in failed)

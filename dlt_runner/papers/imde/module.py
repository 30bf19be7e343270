"""Neural ODE trained on flow data through a fixed-step integrator (paper §2)."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from dlt_runner.core.datamodule import Batch
from dlt_runner.core.errors import positive_int
from dlt_runner.core.module import OptimizerFactory, RunnerModule
from dlt_runner.papers.imde.analysis import energy_drift, max_abs_error, trajectory_gap
from dlt_runner.papers.imde.integrators import get_integrator
from dlt_runner.papers.imde.modified_equation import imde_field
from dlt_runner.papers.imde.systems import get_system


class NeuralODEModule(RunnerModule):
    """Learn f_theta so that ``substeps`` integrator steps of size T/S map x0 to x1.

    Loss: MSE(Psi_{T/S}^S[f_theta](x0), x1) (implicit midpoint: residual form, no solve).
    Analysis (test points): ``err_true`` = Error(f_theta, f), ``err_imde`` = Error(f_theta,
    f_h) with f_h the integrator's truncated IMDE, their ratio, and — for Hamiltonian systems —
    ``energy_drift`` along a long rollout of f_theta; and the baselines as trajectories:
    ``traj_gap_true`` / ``traj_gap_imde``, how far f_theta's flow strays from the true flow
    and from the IMDE flow (paper Fig. 1, 3) over ``trajectory_horizon``.

    Args:
        net: the vector field f_theta (e.g. ``dlt_runner.nn.MLP``).
        integrator: a name from the table in ``integrators.py``.
        substeps: S, integrator steps per data step.
        step_size: T, the data step (bind to ``${data.step_size}``).
        system: the data-generating system (bind to ``${data.system}``), for the analysis.
        energy_x0, energy_horizon, energy_dt: rollout for ``energy_drift`` (x0 = (p, q));
            ``energy_horizon: 0`` skips it.
        trajectory_horizon, trajectory_dt, trajectory_points: the trajectory comparison, from
            the first test points (the IMDE costs milliseconds per evaluation, so keep it
            short); ``trajectory_horizon: 0`` skips it.
        **kwargs: the base module's options (``scheduler``, ``log_every_n_steps``, ...;
            see ``dlt_runner.core.module.RunnerModule``).
    """

    def __init__(
        self,
        net: nn.Module,
        optimizer: OptimizerFactory,
        integrator: str = "euler",
        substeps: int = 1,
        step_size: float = 0.1,
        system: str = "pendulum",
        energy_x0: tuple[float, ...] = (0.0, 1.0),
        energy_horizon: float = 50.0,
        energy_dt: float = 0.01,
        trajectory_horizon: float = 1.0,
        trajectory_dt: float = 0.025,
        trajectory_points: int = 16,
        **kwargs: Any,
    ) -> None:
        super().__init__(net, optimizer, **kwargs)
        self.integrator_name = integrator
        self.integrator = get_integrator(integrator)
        self.substeps = positive_int("model.substeps", substeps)
        self.step_size = float(step_size)
        self.system = get_system(system)
        self.energy_x0 = tuple(float(v) for v in energy_x0)
        self.energy_horizon = float(energy_horizon)
        self.energy_dt = float(energy_dt)
        self.trajectory_horizon = float(trajectory_horizon)
        self.trajectory_dt = float(trajectory_dt)
        self.trajectory_points = int(trajectory_points)

    @property
    def substep(self) -> float:
        """h = T / S: the step the integrator takes, and the h of the IMDE series."""
        return self.step_size / self.substeps

    def loss(self, batch: Batch) -> Tensor:
        x0, x1 = batch["x0"], batch["x1"]
        predicted = self.integrator.training_prediction(
            self.net, x0, x1, self.substep, self.substeps
        )
        return torch.mean((predicted - x1) ** 2)

    def analysis(self, datamodule: Any) -> dict[str, float]:
        x = datamodule.tensors("test")["x0"].to(self.device)
        true_field = self.system.field
        results = {"step_size": self.substep, "err_true": max_abs_error(self.net, true_field, x)}
        modified = imde_field(true_field, self.integrator, self.substep)
        results["err_imde"] = max_abs_error(self.net, modified, x)
        results["imde_ratio"] = (
            results["err_imde"] / results["err_true"] if results["err_true"] else math.inf
        )
        if self.trajectory_horizon > 0:
            starts = x[: self.trajectory_points]
            span = (starts, self.trajectory_horizon, self.trajectory_dt)
            results["traj_gap_true"] = trajectory_gap(self.net, true_field, *span)
            results["traj_gap_imde"] = trajectory_gap(self.net, modified, *span)
        if self.system.has_hamiltonian and self.energy_horizon > 0:
            x0 = torch.tensor(self.energy_x0, dtype=x.dtype, device=x.device)
            drift = energy_drift(
                self.net, self.system.hamiltonian, x0, self.energy_horizon, self.energy_dt
            )
            results["energy_drift"] = float(drift)
        return results

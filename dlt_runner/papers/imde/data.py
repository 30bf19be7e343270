"""Flow-map pairs (x0, x1 = phi_T(x0)) of a known system, generated in float64."""

from __future__ import annotations

import torch

from dlt_runner.core.datamodule import Batch, TensorDataModule
from dlt_runner.papers.imde.systems import flow_pairs, get_system


class FlowPairData(TensorDataModule):
    """Uniform initial points on the system's domain and their exact flow over ``step_size``.

    Args:
        system: ``pendulum``, ``damped_cubic`` or ``lorenz``.
        step_size: the data time step T (the integrator's sub-step is T / model.substeps).
        flow_substeps: RK4 sub-steps that make the "exact" flow (50 keeps its error ~1e-12).
        n_train, n_val, n_test: points per split, drawn from one generator seeded by ``seed``.
    """

    def __init__(
        self,
        system: str = "pendulum",
        step_size: float = 0.1,
        n_train: int = 1000,
        n_val: int = 200,
        n_test: int = 1000,
        flow_substeps: int = 50,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.system = get_system(system)
        self.step_size = float(step_size)
        self.sizes = {"train": int(n_train), "val": int(n_val), "test": int(n_test)}
        self.flow_substeps = int(flow_substeps)

    def build(self) -> dict[str, Batch]:
        generator = torch.Generator().manual_seed(self.seed)
        splits = {}
        for split, n in self.sizes.items():
            if n > 0:
                x0, x1 = flow_pairs(self.system, n, self.step_size, self.flow_substeps, generator)
                splits[split] = {"x0": x0, "x1": x1}
        return splits

"""The data-generating ODEs of the paper's experiments and exact-flow training pairs.

Each system is a small class with its dimension, its batched vector field (float32 or float64,
any device), the box its training points are drawn from, and a reference initial state used for
trajectory plots and the energy-drift metric.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor

from dlt_runner.core.errors import choose
from dlt_runner.papers.imde.integrators import RK4


class System:
    """An autonomous ODE x' = field(x) with a box-shaped sampling domain."""

    name: ClassVar[str]
    dim: ClassVar[int]
    domain: ClassVar[tuple[tuple[float, float], ...]]
    reference_x0: ClassVar[tuple[float, ...]]
    has_hamiltonian: ClassVar[bool] = False

    def field(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def hamiltonian(self, x: Tensor) -> Tensor:
        raise NotImplementedError(f"the {self.name} system is not Hamiltonian")

    def sample(
        self, n: int, generator: torch.Generator | None = None, dtype: torch.dtype = torch.float64
    ) -> Tensor:
        """n points drawn uniformly from the domain box, shape (n, dim)."""
        low = torch.tensor([bounds[0] for bounds in self.domain], dtype=dtype)
        high = torch.tensor([bounds[1] for bounds in self.domain], dtype=dtype)
        unit = torch.rand(n, self.dim, generator=generator, dtype=dtype)
        return low + (high - low) * unit


class Pendulum(System):
    """Pendulum (PD): H(p, q) = p^2/2 - 10 cos q, state (p, q), f = (-10 sin q, p).

    Points are drawn from p in [-3.8, 3.8], q in [-1.2, 1.2] (official PD.py).
    """

    name, dim, has_hamiltonian = "pendulum", 2, True
    domain = ((-3.8, 3.8), (-1.2, 1.2))
    reference_x0 = (0.0, 1.0)

    def field(self, x: Tensor) -> Tensor:
        p, q = x[..., 0], x[..., 1]
        return torch.stack([-10.0 * torch.sin(q), p], dim=-1)

    def hamiltonian(self, x: Tensor) -> Tensor:
        p, q = x[..., 0], x[..., 1]
        return 0.5 * p**2 - 10.0 * torch.cos(q)


class DampedCubicOscillator(System):
    """Damped cubic oscillator (DO): x' = (x**3) A with A = [[-0.1, -2], [2, -0.1]].

    Row-vector convention as in the official DO_data.py; points from [-2.2, 2.2]^2.
    """

    name, dim = "damped_cubic", 2
    domain = ((-2.2, 2.2), (-2.2, 2.2))
    reference_x0 = (2.0, 0.0)
    matrix: ClassVar[tuple[tuple[float, float], ...]] = ((-0.1, -2.0), (2.0, -0.1))

    def field(self, x: Tensor) -> Tensor:
        matrix = torch.tensor(self.matrix, dtype=x.dtype, device=x.device)
        return x**3 @ matrix


class Lorenz(System):
    """Lorenz system (LS), sigma=10, rho=28, beta=8/3, on the state scaled by 1/10.

    With y = 10 x the original Lorenz state, x' = lorenz(10 x) / 10 (official LS_data.py). The
    official data are one trajectory from `reference_x0`; the sampling box covers the scaled
    attractor (|y_1| < 20, |y_2| < 27, 0 < y_3 < 50).
    """

    name, dim = "lorenz", 3
    domain = ((-2.0, 2.0), (-2.7, 2.7), (0.0, 5.0))
    reference_x0 = (-0.8, 0.7, 2.6)
    sigma, rho, beta = 10.0, 28.0, 8.0 / 3.0

    def field(self, x: Tensor) -> Tensor:
        y1, y2, y3 = (10.0 * x).unbind(dim=-1)
        rates = torch.stack(
            [
                self.sigma * (y2 - y1),
                y1 * (self.rho - y3) - y2,
                y1 * y2 - self.beta * y3,
            ],
            dim=-1,
        )
        return rates / 10.0


SYSTEMS: dict[str, type[System]] = {
    "pendulum": Pendulum,
    "damped_cubic": DampedCubicOscillator,
    "lorenz": Lorenz,
}


def get_system(name: str) -> System:
    """A system instance by its config name."""
    return choose("system", name, SYSTEMS)()


def flow_pairs(
    system: System,
    n: int,
    T: float,
    substeps: int = 50,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """Training pairs (x0, x1 = phi_T(x0)) in float64, x0 uniform on the system's domain.

    The exact flow is approximated by `substeps` RK4 steps of size T/substeps. With the
    default 50 the error is ~1e-11 for the pendulum at T = 0.1 (1e-10 damped cubic at T = 0.02,
    2e-9 Lorenz at T = 0.04), far below any learning error.
    """
    x0 = system.sample(n, generator=generator, dtype=torch.float64)
    x1 = RK4().predict(system.field, x0, T / substeps, substeps)
    return x0, x1

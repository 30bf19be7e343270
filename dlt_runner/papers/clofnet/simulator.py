"""The charged-particle N-body simulator of the ClofNet benchmark, vectorised over trajectories.

Kipf et al.'s (NRI) charged-particle system as modified by EGNN and extended by ClofNet
(official ``newtonian/dataset/synthetic_sim.py``; paper §7.1, "Newtonian many-body system"):

- N particles with charges q in {-1, +1} (probability 1/2 each) and unit mass;
- x_0 ~ N(0, s^2 I_3) per particle with s = (N / 5)^(1/3) (so ES(20) keeps the density of ES(5)),
  reflected once into the box [-5, 5]^3 (the official code's ``_clamp`` at t = 0 only; there is
  no box afterwards); v_0 ~ N(0, I_3) rescaled to speed 0.5 per particle;
- softened Coulomb force F_i = sum_{j != i} q_i q_j (x_i - x_j) / (|x_i - x_j|^2 + 1e-6)^(3/2)
  (like charges repel), plus an optional external field (:data:`FIELDS`), each component clipped
  to +-0.1 / dt = +-100;
- leapfrog with dt = 1e-3 in the official "kick, then drift-kick" form: v += dt F(x_0), then for
  every step x += dt v, record, v += dt F(x). The recorded v is thus the velocity that moved x
  to the recorded position (half a step behind it). The first kick is a full step (the official
  comment says "half step"): a one-off O(dt) change of the initial velocity.

The official sampler keeps every 100th step; its frames 30 and 40 are steps 3100 and 4100, the
model's input and target (1000 steps = 1.0 time unit ahead). Same maths as the official code,
but not its random streams: it reseeds numpy's global generator per trajectory inside a process
pool, so its trajectories' order is not reproducible anyway.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Protocol

import numpy as np

from dlt_runner.core.errors import choose

SOFTENING = 1e-6
DT = 1e-3
INPUT_STEP = 3100
TARGET_STEP = 4100
BOX_SIZE = 5.0


class ExternalField(Protocol):
    """A force field acting on every particle in addition to the Coulomb interaction."""

    official_name: ClassVar[str]

    def force(self, x: np.ndarray, v: np.ndarray, charges: np.ndarray) -> np.ndarray | float:
        """Force on each particle, ``(T, N, 3)`` or anything that broadcasts to it."""
        ...

    def potential(self, x: np.ndarray, charges: np.ndarray) -> np.ndarray:
        """``(T,)`` potential energy of the field (0 for a field that does no work)."""
        ...


@dataclass(frozen=True)
class NoField:
    """Electrostatics only: the ES(5) / ES(20) settings (official simulation ``charged``)."""

    official_name: ClassVar[str] = "charged"

    def force(self, x: np.ndarray, v: np.ndarray, charges: np.ndarray) -> float:
        return 0.0

    def potential(self, x: np.ndarray, charges: np.ndarray) -> np.ndarray:
        return np.zeros(x.shape[0])


@dataclass(frozen=True)
class GravityField:
    """Constant field g e_z on every particle, whatever its charge: G+ES(20) (official
    ``static``, ``GravitySim``). The official force points along +z with g = 0.098."""

    strength: float = 0.098
    official_name: ClassVar[str] = "static"

    def force(self, x: np.ndarray, v: np.ndarray, charges: np.ndarray) -> np.ndarray:
        return np.array([0.0, 0.0, self.strength])

    def potential(self, x: np.ndarray, charges: np.ndarray) -> np.ndarray:
        return -self.strength * x[..., 2].sum(axis=-1)


@dataclass(frozen=True)
class LorentzField:
    """Velocity-dependent force q_i v_i x B with B = (0.5, 0.5, 0.5): L+ES(20) (official
    ``dynamic``, ``DynamicSim``). Perpendicular to v, so it does no work."""

    strength: float = 0.5
    official_name: ClassVar[str] = "dynamic"

    def force(self, x: np.ndarray, v: np.ndarray, charges: np.ndarray) -> np.ndarray:
        return charges * np.cross(v, np.full(3, self.strength))

    def potential(self, x: np.ndarray, charges: np.ndarray) -> np.ndarray:
        return np.zeros(x.shape[0])


FIELDS: dict[str, type[ExternalField]] = {
    "none": NoField,
    "gravity": GravityField,
    "lorentz": LorentzField,
}

# The paper's four Newtonian settings (its Newtonian many-body table).
PAPER_SETTINGS: dict[str, dict[str, int | str]] = {
    "es5": {"n_particles": 5, "field": "none"},
    "es20": {"n_particles": 20, "field": "none"},
    "g_es20": {"n_particles": 20, "field": "gravity"},
    "l_es20": {"n_particles": 20, "field": "lorentz"},
}


def make_field(name: str) -> ExternalField:
    """The external field registered as ``name`` (see :data:`FIELDS`)."""
    return choose("field", name, FIELDS)()


class PairwiseCoulomb:
    """Softened Coulomb forces of fixed charges, evaluated over the N (N - 1) / 2 unordered pairs.

    F_i = sum_{j != i} q_i q_j (x_i - x_j) / (|x_i - x_j|^2 + eps)^(3/2). Differences and the
    scatter of the pair forces back onto particles are two small matmuls with the pairs' +-1
    incidence matrix (exact in floating point: every product is by 0 or +-1), so one step costs
    a few passes over T N (N - 1) / 2 numbers, ~8x faster than broadcasting over all N^2 pairs.
    """

    def __init__(self, charges: np.ndarray, softening: float = SOFTENING) -> None:
        n_particles = charges.shape[1]
        first, second = np.triu_indices(n_particles, k=1)
        pairs = np.arange(first.size)
        incidence = np.zeros((n_particles, first.size))
        incidence[first, pairs], incidence[second, pairs] = 1.0, -1.0
        self.incidence = incidence
        self.incidence_t = np.ascontiguousarray(incidence.T)
        self.pair_charges = (charges[:, first, 0] * charges[:, second, 0])[:, None, :]
        self.softening = softening

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """``(T, N, 3) -> (T, N, 3)`` forces."""
        n_trajectories, n_particles, dim = x.shape
        n_pairs = self.incidence.shape[1]
        coordinates = x.transpose(0, 2, 1).reshape(n_trajectories * dim, n_particles)
        differences = (coordinates @ self.incidence).reshape(n_trajectories, dim, n_pairs)
        squared = np.einsum("tdp,tdp->tp", differences, differences)[:, None, :]
        squared += self.softening
        differences *= self.pair_charges / (squared * np.sqrt(squared))
        forces = differences.reshape(n_trajectories * dim, n_pairs) @ self.incidence_t
        return forces.reshape(n_trajectories, dim, n_particles).transpose(0, 2, 1)


def coulomb_forces(x: np.ndarray, charges: np.ndarray, softening: float = SOFTENING) -> np.ndarray:
    """F_i = sum_{j != i} q_i q_j (x_i - x_j) / (|x_i - x_j|^2 + eps)^(3/2): ``(T, N, 3)``."""
    return PairwiseCoulomb(charges, softening)(x)


def charge_products(charges: np.ndarray) -> np.ndarray:
    """q_i q_j with a zero diagonal (no self interaction): ``(T, N, 1) -> (T, N, N)``."""
    products = charges * np.swapaxes(charges, 1, 2)
    n_particles = charges.shape[1]
    products[:, np.arange(n_particles), np.arange(n_particles)] = 0.0
    return products


def clipped(force: np.ndarray, max_force: float | None) -> np.ndarray:
    """Each component clipped to +-max_force in place (None: unchanged). The official bound is
    0.1 / dt, i.e. 100 at dt = 1e-3; it only acts in close encounters."""
    if max_force is not None:
        np.clip(force, -max_force, max_force, out=force)
    return force


def energy(
    x: np.ndarray,
    v: np.ndarray,
    charges: np.ndarray,
    field: str = "none",
    softening: float = SOFTENING,
) -> np.ndarray:
    """Total energy per trajectory, ``(T,)``: sum_i |v_i|^2 / 2 + sum_{i<j} q_i q_j /
    sqrt(|x_i - x_j|^2 + eps) + the field's potential.

    The softened Coulomb potential is the exact potential of :func:`coulomb_forces`, so (without
    clipping and for the conservative fields) the dynamics conserve it; the official ``_energy``
    drops the softening. The Lorentz force does no work and adds no term.
    """
    differences = x[:, :, None, :] - x[:, None, :, :]
    distances = np.sqrt(np.einsum("tijd,tijd->tij", differences, differences) + softening)
    coulomb = 0.5 * (charge_products(charges) / distances).sum(axis=(1, 2))
    kinetic = 0.5 * np.einsum("tnd,tnd->t", v, v)
    return kinetic + coulomb + make_field(field).potential(x, charges)


def sample_initial_state(
    rng: np.random.Generator,
    n_trajectories: int,
    n_particles: int = 5,
    loc_std: float = 1.0,
    speed: float = 0.5,
    box_size: float = BOX_SIZE,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Charges ``(T, N, 1)`` in {-1, +1}, positions and velocities ``(T, N, 3)`` at t = 0.

    Positions have std ``loc_std (N / 5)^(1/3)`` and are reflected once into [-box, box]^3,
    with the reflected velocity components pointing back inwards (official ``_clamp``);
    every velocity has norm ``speed``.
    """
    charges = rng.choice(np.array([-1.0, 1.0]), size=(n_trajectories, n_particles, 1))
    scale = loc_std * (n_particles / 5.0) ** (1.0 / 3.0)
    x = rng.standard_normal((n_trajectories, n_particles, 3)) * scale
    v = rng.standard_normal((n_trajectories, n_particles, 3))
    v *= speed / np.linalg.norm(v, axis=-1, keepdims=True)
    reflect_into_box(x, v, box_size)
    return charges, x, v


def reflect_into_box(x: np.ndarray, v: np.ndarray, box_size: float = BOX_SIZE) -> None:
    """In place: mirror coordinates beyond +-box at the wall and point those velocity components
    back inside (official ``_clamp``; one reflection, enough for |x| < 3 box)."""
    over, under = x > box_size, x < -box_size
    x[over] = 2 * box_size - x[over]
    v[over] = -np.abs(v[over])
    x[under] = -2 * box_size - x[under]
    v[under] = np.abs(v[under])


def leapfrog(
    x0: np.ndarray,
    v0: np.ndarray,
    charges: np.ndarray,
    record_steps: Sequence[int],
    dt: float = DT,
    field: str = "none",
    max_force: float | None = 100.0,
    softening: float = SOFTENING,
) -> tuple[np.ndarray, np.ndarray]:
    """Integrate all trajectories at once; return positions and velocities at ``record_steps``.

    The official scheme: v <- v0 + dt F(x0, v0), then for step = 1, 2, ...:
    x <- x + dt v; record (x, v) if step is in record_steps; v <- v + dt F(x, v).
    Returns two ``(len(record_steps), T, N, 3)`` arrays, in the order of ``record_steps``.
    """
    if not record_steps or min(record_steps) < 1:
        raise ValueError(f"record_steps must be positive step numbers, got {list(record_steps)}")
    external = make_field(field)
    coulomb = PairwiseCoulomb(charges, softening)
    x, v = x0.astype(np.float64, copy=True), v0.astype(np.float64, copy=True)

    def force(x: np.ndarray, v: np.ndarray) -> np.ndarray:
        return clipped(coulomb(x) + external.force(x, v, charges), max_force)

    slot = {step: k for k, step in enumerate(record_steps)}
    positions = np.empty((len(record_steps), *x.shape))
    velocities = np.empty((len(record_steps), *x.shape))
    v += dt * force(x, v)
    for step in range(1, max(record_steps) + 1):
        x += dt * v
        if step in slot:
            positions[slot[step]], velocities[slot[step]] = x, v
        v += dt * force(x, v)
    return positions, velocities


def simulate(
    n_trajectories: int,
    n_particles: int = 5,
    field: str = "none",
    seed: int | np.random.Generator = 0,
    dt: float = DT,
    input_step: int = INPUT_STEP,
    target_step: int = TARGET_STEP,
    max_force: float | None = 100.0,
) -> dict[str, np.ndarray]:
    """Input/target pairs of the Newtonian benchmark (float64 arrays).

    Returns ``x_input``, ``v_input``, ``x_target``, ``v_target`` ``(T, N, 3)`` at steps
    ``input_step`` and ``target_step`` (official frames 30 and 40), and ``charges`` ``(T, N, 1)``.
    ``seed`` is an int or a ``numpy.random.Generator``; the same seed gives the same arrays.
    """
    make_field(field)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    charges, x0, v0 = sample_initial_state(rng, n_trajectories, n_particles)
    positions, velocities = leapfrog(
        x0, v0, charges, [input_step, target_step], dt, field, max_force
    )
    return {
        "x_input": positions[0],
        "v_input": velocities[0],
        "x_target": positions[1],
        "v_target": velocities[1],
        "charges": charges,
    }

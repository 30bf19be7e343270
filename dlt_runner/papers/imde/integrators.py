"""One-step integrators Psi_h that train and roll out Neural ODEs.

They are the pluggable step maps of the one-step integrator loss MSE(Psi_{T/S}^S(x0), x1).

Each integrator is a tiny class in the spirit of torchdiffeq's fixed-grid solvers: it declares its
`order`, whether it is `symplectic`, one `step(f, y, h)`, and the coefficients of its **inverse
modified differential equation** (IMDE, the paper's central object)

    f_h = f + sum_k h^k sum_tau c_tau F_tau(f),

the vector field that the integrator must be given so that one step reproduces the exact flow of
`f` (Psi_h[f_h] = phi_h[f]). `h` is always the *sub-step* T/S. The elementary differentials
F_tau are named in the paper's notation ("f'f", "f''(f,f)", ...) and evaluated generically by
`modified_equation.py`. The series are exact through `imde_exact_through` powers of h.

`f` is any callable on batched states of shape (..., dim): a plain function or an `nn.Module`.
Every step is built from differentiable tensor operations, so training backpropagates through it.
"""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from typing import ClassVar

import torch
from torch import Tensor

from dlt_runner.core.errors import choose, positive_int

VectorField = Callable[[Tensor], Tensor]
IMDESeries = dict[int, dict[str, Fraction]]


class Integrator:
    """A one-step map y_{n+1} = Psi_h(y_n) for the autonomous ODE y' = f(y)."""

    order: ClassVar[int]
    symplectic: ClassVar[bool]
    imde_series: ClassVar[IMDESeries]
    imde_exact_through: ClassVar[int] = 3

    def step(self, f: VectorField, y: Tensor, h: float) -> Tensor:
        raise NotImplementedError

    def predict(self, f: VectorField, x0: Tensor, h: float, substeps: int = 1) -> Tensor:
        """Psi_h^S(x0): `substeps` steps of size `h` (h is the sub-step T/S)."""
        positive_int("substeps", substeps)
        y = x0
        for _ in range(substeps):
            y = self.step(f, y, h)
        return y

    def training_prediction(
        self, f: VectorField, x0: Tensor, x1: Tensor, h: float, substeps: int = 1
    ) -> Tensor:
        """x1_hat whose squared distance to x1 is the training loss.

        Explicit integrators ignore the data x1 and simply roll out `substeps` steps of size h.
        """
        return self.predict(f, x0, h, substeps)


class Euler(Integrator):
    """Explicit Euler, y + h f(y): order 1, not symplectic.

    IMDE: f_h = (phi_h - id)/h, i.e. the Taylor series of the exact flow divided by h.
    """

    order, symplectic = 1, False
    imde_series: ClassVar[IMDESeries] = {
        1: {"f'f": Fraction(1, 2)},
        2: {"f''(f,f)": Fraction(1, 6), "f'f'f": Fraction(1, 6)},
        3: {
            "f'''(f,f,f)": Fraction(1, 24),
            "f''(f'f,f)": Fraction(1, 8),
            "f'f''(f,f)": Fraction(1, 24),
            "f'f'f'f": Fraction(1, 24),
        },
    }

    def step(self, f: VectorField, y: Tensor, h: float) -> Tensor:
        return y + h * f(y)


class ExplicitMidpoint(Integrator):
    """Explicit midpoint rule, y + h f(y + h/2 f(y)): order 2, not symplectic."""

    order, symplectic = 2, False
    imde_series: ClassVar[IMDESeries] = {
        2: {"f''(f,f)": Fraction(1, 24), "f'f'f": Fraction(1, 6)},
        3: {"f'f''(f,f)": Fraction(-1, 16), "f'f'f'f": Fraction(-1, 8)},
    }

    def step(self, f: VectorField, y: Tensor, h: float) -> Tensor:
        return y + h * f(y + 0.5 * h * f(y))


class RK4(Integrator):
    """Classical fourth-order Runge-Kutta: order 4, not symplectic. Its IMDE is f + O(h^4)."""

    order, symplectic = 4, False
    imde_series: ClassVar[IMDESeries] = {}

    def step(self, f: VectorField, y: Tensor, h: float) -> Tensor:
        k1 = f(y)
        k2 = f(y + 0.5 * h * k1)
        k3 = f(y + 0.5 * h * k2)
        k4 = f(y + h * k3)
        return y + (h / 6.0) * (k1 + 2.0 * k2 + 2.0 * k3 + k4)


class ImplicitMidpoint(Integrator):
    """Implicit midpoint rule y1 = y + h f((y + y1)/2): order 2, symplectic, symmetric.

    Symmetry makes every odd power of h vanish from its IMDE, so the h^2 truncation below is
    exact through h^3.

    `step` solves the implicit equation by fixed-point iteration from an explicit Euler guess;
    the iteration contracts when h * Lip(f) / 2 < 1. It stops once successive iterates agree to
    `tolerance` relative to (1 + max|y1|) (default: 16 machine epsilons of the dtype), and raises
    after `max_iterations` rather than return an unconverged state.
    """

    order, symplectic = 2, True
    imde_series: ClassVar[IMDESeries] = {
        2: {"f''(f,f)": Fraction(1, 24), "f'f'f": Fraction(-1, 12)},
    }

    def __init__(self, tolerance: float | None = None, max_iterations: int = 100) -> None:
        self.tolerance = tolerance
        self.max_iterations = max_iterations

    def step(self, f: VectorField, y: Tensor, h: float) -> Tensor:
        tolerance = self.tolerance
        if tolerance is None:
            tolerance = 16 * torch.finfo(y.dtype).eps
        y_next = y + h * f(y)
        for _ in range(self.max_iterations):
            y_new = self.residual_step(f, y, y_next, h)
            change = (y_new - y_next).abs().max()
            y_next = y_new
            if change <= tolerance * (1 + y_next.abs().max()):
                return y_next
        raise RuntimeError(
            f"implicit midpoint fixed-point iteration did not converge in {self.max_iterations} "
            f"iterations (h={h}); it needs h * Lip(f) / 2 < 1: reduce h or raise max_iterations"
        )

    @staticmethod
    def residual_step(f: VectorField, x0: Tensor, x1: Tensor, h: float) -> Tensor:
        """x0 + h f((x0 + x1)/2): the implicit equation's right-hand side at a given x1.

        With x1 the data this is the training prediction without a nonlinear solve:
        it equals x1 exactly when x1 is the implicit-midpoint step of f from x0.
        """
        return x0 + h * f(0.5 * (x0 + x1))

    def training_prediction(
        self, f: VectorField, x0: Tensor, x1: Tensor, h: float, substeps: int = 1
    ) -> Tensor:
        """Residual form x0 + h f((x0 + x1)/2) for one sub-step; a solved rollout for S > 1.

        With S > 1 the intermediate states are not in the data, so the residual trick does not
        apply: each sub-step is solved by fixed-point iteration and the loss backpropagates
        through the iterations (costlier, but the same map that rollouts use).
        """
        if substeps == 1:
            return self.residual_step(f, x0, x1, h)
        return self.predict(f, x0, h, substeps)


class Leapfrog(Integrator):
    """Störmer-Verlet / leapfrog, kick-drift-kick on a state split into halves (p, q).

    With f = (a, b) (a drives p, b drives q) the step is the Strang splitting

        p_half = kick(p, q, h/2),  q1 = drift(p_half, q, h),  p1 = kick(p_half, q1, h/2),

    where a kick moves p along a with q frozen and a drift moves q along b with p frozen. For a
    separable field a = a(q), b = b(p) (the pendulum, f = (-10 sin q, p)) these sub-flows are exact
    single evaluations and the step is the classic symplectic, order-2 Störmer-Verlet method.

    A learned field is not separable, so each sub-flow is integrated with one explicit-midpoint
    step. That keeps the method second order for every field (a plain Euler kick would drop to
    order 1) and changes nothing when the field is separable, at the cost of 6 evaluations of f per
    step instead of 2. Symplecticity is exact only for separable Hamiltonians.

    IMDE (separable f, from the symmetric BCH formula for log(e^{X/2} e^Y e^{X/2})): with the
    kick field A = (a, 0), the drift field B = (0, b) and the Lie bracket [X, Y] = Y'X - X'Y,

        f_h = f + h^2 ( 1/24 [A,[A,B]] + 1/12 [B,[A,B]] ) + O(h^4),

    named "[A,[A,B]]" and "[B,[A,B]]" below. The method is symmetric, so there is no h^3 term.
    """

    order, symplectic = 2, True
    imde_series: ClassVar[IMDESeries] = {
        2: {"[A,[A,B]]": Fraction(1, 24), "[B,[A,B]]": Fraction(1, 12)},
    }

    def step(self, f: VectorField, y: Tensor, h: float) -> Tensor:
        if y.shape[-1] % 2:
            raise ValueError(
                f"leapfrog needs a state split into halves (p, q); got odd dimension {y.shape[-1]}"
            )
        p, q = y.chunk(2, dim=-1)
        p = self._kick(f, p, q, 0.5 * h)
        q = self._drift(f, p, q, h)
        p = self._kick(f, p, q, 0.5 * h)
        return torch.cat([p, q], dim=-1)

    @staticmethod
    def _kick(f: VectorField, p: Tensor, q: Tensor, t: float) -> Tensor:
        def rate(p_: Tensor) -> Tensor:
            return f(torch.cat([p_, q], dim=-1)).chunk(2, dim=-1)[0]

        return p + t * rate(p + 0.5 * t * rate(p))

    @staticmethod
    def _drift(f: VectorField, p: Tensor, q: Tensor, t: float) -> Tensor:
        def rate(q_: Tensor) -> Tensor:
            return f(torch.cat([p, q_], dim=-1)).chunk(2, dim=-1)[1]

        return q + t * rate(q + 0.5 * t * rate(q))


INTEGRATORS: dict[str, type[Integrator]] = {
    "euler": Euler,
    "midpoint": ExplicitMidpoint,
    "rk4": RK4,
    "implicit_midpoint": ImplicitMidpoint,
    "leapfrog": Leapfrog,
}


def get_integrator(name: str, **kwargs: float) -> Integrator:
    """An integrator instance by its config name; kwargs go to its constructor."""
    return choose("integrator", name, INTEGRATORS)(**kwargs)

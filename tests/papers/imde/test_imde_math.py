"""Exact checks of the IMDE paper's maths: integrator orders, IMDE series, systems, metrics."""

from __future__ import annotations

import math

import pytest
import scipy.linalg
import torch

from dlt_runner.papers.imde.analysis import empirical_order, energy_drift, max_abs_error
from dlt_runner.papers.imde.integrators import (
    INTEGRATORS,
    RK4,
    ImplicitMidpoint,
    get_integrator,
)
from dlt_runner.papers.imde.modified_equation import (
    ELEMENTARY_DIFFERENTIALS,
    elementary_differentials,
    imde_field,
)
from dlt_runner.papers.imde.systems import SYSTEMS, flow_pairs, get_system

F64 = torch.float64
PENDULUM = get_system("pendulum")
# Points inside the pendulum's training box, away from special values of sin and cos.
PENDULUM_POINTS = torch.tensor([[1.0, 0.5], [-2.0, 1.0], [3.0, -0.8]], dtype=F64)


def exact_flow(field, x, t, substeps=200):
    """phi_t(x) by RK4 with sub-steps <= 5e-4 here: error ~1e-13, far below what is measured."""
    return RK4().predict(field, x, t / substeps, substeps)


def tiny_mlp(dtype, seed=0):
    torch.manual_seed(seed)
    layers = [torch.nn.Linear(2, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2)]
    return torch.nn.Sequential(*layers).to(dtype)


# --- registry -------------------------------------------------------------------------------


def test_registry_has_exactly_the_config_names():
    assert list(INTEGRATORS) == ["euler", "midpoint", "rk4", "implicit_midpoint", "leapfrog"]
    for cls in INTEGRATORS.values():
        assert isinstance(cls.order, int) and isinstance(cls.symplectic, bool)
    symplectic = {name for name, cls in INTEGRATORS.items() if cls.symplectic}
    assert symplectic == {"implicit_midpoint", "leapfrog"}


def test_unknown_integrator_message_lists_valid_names():
    with pytest.raises(ValueError) as error:
        get_integrator("lepfrog")
    assert str(error.value) == (
        "unknown integrator 'lepfrog'; choose one of: "
        "euler, midpoint, rk4, implicit_midpoint, leapfrog"
    )


def test_unknown_system_message_lists_valid_names():
    with pytest.raises(ValueError, match="choose one of: pendulum, damped_cubic, lorenz"):
        get_system("pendlum")


def test_every_declared_imde_term_can_be_evaluated():
    for cls in INTEGRATORS.values():
        for power, terms in cls.imde_series.items():
            assert 1 <= power <= cls.imde_exact_through
            assert set(terms) <= set(ELEMENTARY_DIFFERENTIALS)


# --- orders and conservation ------------------------------------------------------------------


@pytest.mark.parametrize("name", list(INTEGRATORS))
def test_declared_order_by_step_halving_on_the_pendulum(name):
    """Global error at t = 1 shrinks by 2^p per halving; 0.15 covers the pre-asymptotic drift
    (measured: Euler 1.09 and 1.05, every other method within 0.02 of its order)."""
    integrator = get_integrator(name)
    reference = exact_flow(PENDULUM.field, PENDULUM_POINTS, 1.0, substeps=4000)
    step_counts = (20, 40, 80)
    errors = [
        (integrator.predict(PENDULUM.field, PENDULUM_POINTS, 1.0 / n, n) - reference).abs().max()
        for n in step_counts
    ]
    orders = empirical_order([1.0 / n for n in step_counts], [e.item() for e in errors]).pairwise
    assert orders == pytest.approx([integrator.order] * 2, abs=0.15)


def test_symplectic_integrators_keep_pendulum_energy_bounded_while_euler_drifts():
    """1000 steps of h = 0.1 (t = 100, ~50 periods) from two states. The symplectic methods'
    energy error is O(h^2) and does not grow: its maximum over the whole run is within 20% of its
    maximum over the first 10 time units (measured: 0.0086 implicit midpoint, 0.106 leapfrog, the
    same to 3 digits in both windows). Explicit Euler's error grows until the pendulum swings
    over the top."""
    x0 = torch.tensor([[0.0, 1.0], [2.0, -0.5]], dtype=F64)

    def energy_errors(name):
        integrator, states = get_integrator(name), [x0]
        for _ in range(1000):
            states.append(integrator.step(PENDULUM.field, states[-1], 0.1))
        energies = PENDULUM.hamiltonian(torch.stack(states))
        return (energies - energies[0]).abs()

    for name in ("implicit_midpoint", "leapfrog"):
        errors = energy_errors(name)
        assert errors.max() < 0.2, name
        assert errors.max() <= 1.2 * errors[:100].max(), name
    assert energy_errors("euler").max() > 10.0


def test_quadratic_invariants_of_the_harmonic_oscillator_are_conserved_to_round_off():
    """Implicit midpoint conserves every quadratic invariant, here H = p^2/2 + k q^2/2; leapfrog
    conserves the modified H~ = p^2 / (2 (1 - h^2 k/4)) + k q^2/2 (its map M has M^T S M = S)."""
    k, h = 4.0, 0.1
    oscillator = lambda x: torch.stack([-k * x[..., 1], x[..., 0]], dim=-1)
    x0 = torch.tensor([[0.0, 1.0], [2.0, -0.5]], dtype=F64)
    invariants = {
        "implicit_midpoint": lambda p, q: p**2 / 2 + k * q**2 / 2,
        "leapfrog": lambda p, q: p**2 / (2 * (1 - h**2 * k / 4)) + k * q**2 / 2,
    }
    for name, invariant in invariants.items():
        states = [x0]
        for _ in range(500):
            states.append(get_integrator(name).step(oscillator, states[-1], h))
        trajectory = torch.stack(states)
        values = invariant(trajectory[..., 0], trajectory[..., 1])
        assert (values - values[0]).abs().max() < 1e-11, name


# --- implicit midpoint: solve and residual form ------------------------------------------------


def test_implicit_midpoint_step_solves_its_equation():
    x0 = PENDULUM_POINTS
    x1 = ImplicitMidpoint().step(PENDULUM.field, x0, 0.1)
    residual = x1 - (x0 + 0.1 * PENDULUM.field((x0 + x1) / 2))
    assert residual.abs().max() < 1e-13


def test_training_residual_is_zero_on_exact_implicit_midpoint_data():
    integrator = get_integrator("implicit_midpoint")
    x0 = PENDULUM.sample(64, torch.Generator().manual_seed(1))
    x1 = integrator.step(PENDULUM.field, x0, 0.1)
    prediction = integrator.training_prediction(PENDULUM.field, x0, x1, 0.1, substeps=1)
    assert (prediction - x1).abs().max() < 1e-13
    # ...and not on exact-flow data: the method's O(h^3) local error remains.
    x1_exact = exact_flow(PENDULUM.field, x0, 0.1)
    prediction = integrator.training_prediction(PENDULUM.field, x0, x1_exact, 0.1)
    assert (prediction - x1_exact).abs().max() > 1e-4


def test_implicit_midpoint_with_substeps_rolls_out_solved_steps():
    integrator = get_integrator("implicit_midpoint")
    x0 = PENDULUM_POINTS
    two_steps = integrator.step(PENDULUM.field, integrator.step(PENDULUM.field, x0, 0.05), 0.05)
    ignored_data = torch.zeros_like(x0)
    prediction = integrator.training_prediction(PENDULUM.field, x0, ignored_data, 0.05, 2)
    torch.testing.assert_close(prediction, two_steps, rtol=0, atol=1e-13)


def test_implicit_midpoint_refuses_to_return_an_unconverged_state():
    with pytest.raises(RuntimeError, match="did not converge"):
        ImplicitMidpoint(max_iterations=5).step(PENDULUM.field, PENDULUM_POINTS, 2.0)


def test_leapfrog_rejects_a_state_without_halves():
    with pytest.raises(ValueError, match="odd dimension 3"):
        get_integrator("leapfrog").step(get_system("lorenz").field, torch.zeros(1, 3), 0.1)


# --- differentiability and dtypes ----------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", list(INTEGRATORS))
def test_training_prediction_backpropagates_to_the_field_parameters(name, dtype):
    net = tiny_mlp(dtype)
    x0 = PENDULUM.sample(16, torch.Generator().manual_seed(2), dtype=dtype)
    x1 = exact_flow(PENDULUM.field, x0.double(), 0.1).to(dtype)
    prediction = get_integrator(name).training_prediction(net, x0, x1, 0.05, substeps=2)
    assert prediction.dtype == dtype and prediction.shape == x0.shape
    ((prediction - x1) ** 2).mean().backward()
    gradients = [p.grad for p in net.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in gradients)
    assert sum(g.abs().sum() for g in gradients) > 0


@pytest.mark.parametrize(
    "name,substeps",
    [("implicit_midpoint", 1), ("implicit_midpoint", 2), ("leapfrog", 1), ("midpoint", 3)],
)
def test_loss_gradient_matches_finite_differences(name, substeps):
    """Directional derivative of the loss along a random parameter direction, float64: central
    differences with step 1e-6 are accurate to ~1e-9 relative."""
    net = tiny_mlp(F64, seed=3)
    x0 = PENDULUM.sample(8, torch.Generator().manual_seed(4))
    x1 = exact_flow(PENDULUM.field, x0, 0.1)
    integrator = get_integrator(name)
    loss = lambda: (
        (integrator.training_prediction(net, x0, x1, 0.1 / substeps, substeps) - x1) ** 2
    ).mean()
    loss().backward()
    generator = torch.Generator().manual_seed(5)
    direction = [torch.randn(p.shape, generator=generator, dtype=F64) for p in net.parameters()]
    analytic = sum((p.grad * d).sum() for p, d in zip(net.parameters(), direction, strict=True))
    step, values = 1e-6, []
    with torch.no_grad():
        for sign in (1, -1):
            for p, d in zip(net.parameters(), direction, strict=True):
                p.add_(sign * step * d)
            values.append(loss())
            for p, d in zip(net.parameters(), direction, strict=True):
                p.sub_(sign * step * d)
    numeric = (values[0] - values[1]) / (2 * step)
    assert analytic.item() == pytest.approx(numeric.item(), rel=1e-6)


# --- elementary differentials --------------------------------------------------------------------


def test_elementary_differentials_of_a_polynomial_field_match_hand_derivatives():
    """f(x) = (x1^3, x0 x1): f'v = (3 x1^2 v1, x1 v0 + x0 v1), f''(u,v) = (6 x1 u1 v1,
    u0 v1 + u1 v0), f'''(u,v,w) = (6 u1 v1 w1, 0); composed by hand into each tree."""
    field = lambda x: torch.stack([x[..., 1] ** 3, x[..., 0] * x[..., 1]], dim=-1)
    x = torch.tensor([[0.7, -1.3], [2.0, 0.4], [-0.5, 1.1]], dtype=F64)
    x0, x1 = x[..., 0], x[..., 1]
    d1 = lambda v: torch.stack([3 * x1**2 * v[..., 1], x1 * v[..., 0] + x0 * v[..., 1]], -1)
    d2 = lambda u, v: torch.stack(
        [6 * x1 * u[..., 1] * v[..., 1], u[..., 0] * v[..., 1] + u[..., 1] * v[..., 0]], -1
    )
    d3 = lambda u, v, w: torch.stack(
        [6 * u[..., 1] * v[..., 1] * w[..., 1], torch.zeros_like(x0)], -1
    )
    f = field(x)
    expected = {
        "f": f,
        "f'f": d1(f),
        "f''(f,f)": d2(f, f),
        "f'f'f": d1(d1(f)),
        "f'''(f,f,f)": d3(f, f, f),
        "f''(f'f,f)": d2(d1(f), f),
        "f'f''(f,f)": d1(d2(f, f)),
        "f'f'f'f": d1(d1(d1(f))),
    }
    computed = elementary_differentials(field, x, list(expected))
    for name, value in expected.items():
        torch.testing.assert_close(computed[name], value, rtol=1e-12, atol=1e-12, msg=name)


def test_pendulum_differentials_match_the_official_hand_derived_ones():
    """The closed forms of Aiqing-Zhu/IMDE imde.py (IE_PD, c1 = 1, c2 = 10), re-derived here,
    plus the leapfrog brackets: with A = (a(q), 0), B = (0, b(p)), [A,[A,B]] = (-2 a a' b', b'' a^2)
    and [B,[A,B]] = (-a'' b^2, 2 a' b' b), for a = -10 sin q and b = p."""
    p, q = PENDULUM_POINTS[:, 0], PENDULUM_POINTS[:, 1]
    sin, cos, zero = torch.sin(q), torch.cos(q), torch.zeros_like(q)
    expected = {
        "f'f": (-10 * p * cos, -10 * sin),
        "f''(f,f)": (10 * p**2 * sin, zero),
        "f'f'f": (100 * sin * cos, -10 * p * cos),
        "f'''(f,f,f)": (10 * p**3 * cos, zero),
        "f''(f'f,f)": (-100 * p * sin**2, zero),
        "f'f''(f,f)": (zero, 10 * p**2 * sin),
        "f'f'f'f": (100 * p * cos**2, 100 * sin * cos),
        "[A,[A,B]]": (-200 * sin * cos, zero),
        "[B,[A,B]]": (-10 * p**2 * sin, -20 * p * cos),
    }
    computed = elementary_differentials(PENDULUM.field, PENDULUM_POINTS, list(expected))
    for name, (first, second) in expected.items():
        torch.testing.assert_close(
            computed[name], torch.stack([first, second], -1), rtol=1e-12, atol=1e-12, msg=name
        )


def test_derivatives_of_a_network_match_nested_forward_mode_and_stay_plain_tensors():
    """The double-backward derivatives equal torch.func.jvp's, nested to third order, on a net
    whose parameters require gradients; the results carry no graph and leave .grad alone."""
    from torch.func import jvp

    from dlt_runner.papers.imde.modified_equation import (
        first_derivative,
        second_derivative,
        third_derivative,
    )

    net = tiny_mlp(F64, seed=3)
    x, u, v, w = torch.randn(4, 5, 2, dtype=F64, generator=torch.Generator().manual_seed(1))
    d1 = lambda f, y, a: jvp(f, (y,), (a,))[1]
    expected = {
        "first": d1(net, x, u),
        "second": d1(lambda y: d1(net, y, v), x, u),
        "third": d1(lambda y: d1(lambda z: d1(net, z, w), y, v), x, u),
    }
    computed = {
        "first": first_derivative(net, x, u),
        "second": second_derivative(net, x, u, v),
        "third": third_derivative(net, x, u, v, w),
    }
    for name, value in expected.items():
        torch.testing.assert_close(computed[name], value, rtol=1e-12, atol=1e-12, msg=name)
        assert not computed[name].requires_grad, name
    assert all(parameter.grad is None for parameter in net.parameters())
    constant = lambda y: torch.ones_like(y) * 2.0
    linear = lambda y: y @ torch.tensor([[0.0, 1.0], [-1.0, 0.0]], dtype=F64)
    assert torch.equal(first_derivative(constant, x, u), torch.zeros_like(x))
    assert torch.equal(second_derivative(linear, x, u, v), torch.zeros_like(x))


def test_unknown_elementary_differential_is_refused():
    with pytest.raises(ValueError, match="choose from: f, f'f"):
        elementary_differentials(PENDULUM.field, PENDULUM_POINTS, ["f'f'"])


# --- IMDE: linear closed forms ----------------------------------------------------------------


def closed_form_imde(name, matrix, h):
    """B with Psi_h[x -> B x] = exp(h A): the exact IMDE of a linear field (no truncation)."""
    identity = torch.eye(2, dtype=F64)
    flow = torch.linalg.matrix_exp(h * matrix)
    if name == "euler":
        return (flow - identity) / h
    if name == "midpoint":  # (I + hB)^2 = 2 exp(hA) - I, principal square root
        root = torch.from_numpy(scipy.linalg.sqrtm((2 * flow - identity).numpy()).real)
        return (root - identity) / h
    if name == "implicit_midpoint":  # Cayley: (I - hB/2)^-1 (I + hB/2) = exp(hA)
        return 2 / h * torch.linalg.solve(flow + identity, flow - identity)
    if name == "rk4":  # R(hB) = exp(hA) with R(z) = sum_{k<=4} z^k/k!, by Newton from B = A

        def residual(b):
            z = h * b.reshape(2, 2)
            powers = [identity, z, z @ z, z @ z @ z, z @ z @ z @ z]
            series = sum(power / math.factorial(k) for k, power in enumerate(powers))
            return (series - flow).reshape(-1)

        solution = matrix.reshape(-1).clone()
        for _ in range(20):
            jacobian = torch.autograd.functional.jacobian(residual, solution)
            solution = solution - torch.linalg.solve(jacobian, residual(solution))
        return solution.reshape(2, 2)
    if name == "leapfrog":  # harmonic oscillator A = [[0, -w^2], [1, 0]], derived by hand
        omega = math.sqrt(-matrix[0, 1].item())
        return torch.tensor(
            [
                [0.0, -2 * omega * math.tan(h * omega / 2) / h],
                [math.sin(h * omega) / (h * omega), 0.0],
            ],
            dtype=F64,
        )
    raise AssertionError(name)


@pytest.mark.parametrize("name", list(INTEGRATORS))
def test_imde_series_on_a_linear_field_matches_the_closed_form(name):
    """The truncated series (through h^3) misses the closed form by O(h^4): 2^4 = 16 per halving
    (measured 15.9-16.3), and each closed form is checked against the integrator itself."""
    if name == "leapfrog":  # leapfrog's series needs a separable field: the harmonic oscillator
        matrix = torch.tensor([[0.0, -4.0], [1.0, 0.0]], dtype=F64)
    else:  # a generic, non-normal matrix with complex eigenvalues
        matrix = torch.tensor([[-0.3, 1.0], [-2.0, 0.1]], dtype=F64)
    integrator = get_integrator(name)
    identity = torch.eye(2, dtype=F64)
    errors = []
    for h in (0.1, 0.05):
        exact = closed_form_imde(name, matrix, h)
        one_step = integrator.step(lambda x, b=exact: x @ b.T, identity, h).T
        torch.testing.assert_close(
            one_step, torch.linalg.matrix_exp(h * matrix), rtol=0, atol=1e-13
        )
        series = imde_field(lambda x: x @ matrix.T, integrator, h)(identity).T
        errors.append((series - exact).abs().max().item())
    assert errors[0] < 1e-3
    assert errors[0] / errors[1] == pytest.approx(16, rel=0.1)


# --- IMDE: generic nonlinear check --------------------------------------------------------------


@pytest.mark.parametrize(
    "name,order,local_error_order",
    [
        ("euler", 0, 2),
        ("euler", 1, 3),
        ("euler", 2, 4),
        ("euler", 3, 5),
        ("midpoint", 3, 5),
        ("rk4", 3, 5),
        # Symmetric methods: the h^3 term vanishes, so the h^2 truncation is already O(h^5).
        ("implicit_midpoint", 2, 5),
        ("leapfrog", 2, 5),
    ],
)
def test_one_step_on_the_truncated_imde_reproduces_the_exact_flow(name, order, local_error_order):
    """If the truncated series is exact through h^J (J = K, the highest power kept, or K + 1 when
    the next term vanishes, as for the symmetric methods), the neglected remainder is O(h^{J+1})
    and one step multiplies it by h: Psi_h[f_h^(K)] - phi_h[f] = O(h^{J+2}). Measured orders at
    h = 0.1, 0.05, 0.025 are within 0.12 of J + 2 (worst: Euler K = 0, 2.12 then 2.06)."""
    integrator = get_integrator(name)
    step_sizes = (0.1, 0.05, 0.025)
    errors = []
    for h in step_sizes:
        modified = imde_field(PENDULUM.field, integrator, h, order=order)
        one_step = integrator.step(modified, PENDULUM_POINTS, h)
        errors.append((one_step - exact_flow(PENDULUM.field, PENDULUM_POINTS, h)).abs().max())
    orders = empirical_order(step_sizes, [e.item() for e in errors]).pairwise
    assert orders == pytest.approx([local_error_order] * 2, abs=0.2)


def test_imde_of_a_symplectic_integrator_is_hamiltonian_and_of_others_is_not():
    """Paper's corollary. A planar field is (locally) Hamiltonian iff it is divergence-free. For
    the pendulum div f_h = -10 h cos q (Euler), 5/2 h^2 p sin q (midpoint) and exactly 0 for
    implicit midpoint and leapfrog. Divergence by central differences, error ~1e-9."""
    points = PENDULUM.sample(32, torch.Generator().manual_seed(6))
    h, eps = 0.1, 1e-5

    def divergence(field):
        total = torch.zeros(len(points), dtype=F64)
        for i in range(2):
            shift = torch.zeros(2, dtype=F64)
            shift[i] = eps
            total += (field(points + shift)[:, i] - field(points - shift)[:, i]) / (2 * eps)
        return total

    p, q = points[:, 0], points[:, 1]
    euler = divergence(imde_field(PENDULUM.field, "euler", h, order=1))
    torch.testing.assert_close(euler, -10 * h * torch.cos(q), rtol=0, atol=1e-8)
    midpoint = divergence(imde_field(PENDULUM.field, "midpoint", h, order=2))
    torch.testing.assert_close(midpoint, 2.5 * h**2 * p * torch.sin(q), rtol=0, atol=1e-8)
    for name in ("implicit_midpoint", "leapfrog"):
        assert divergence(imde_field(PENDULUM.field, name, h)).abs().max() < 1e-8, name


def test_imde_order_beyond_the_known_series_is_refused():
    with pytest.raises(ValueError, match="order must be in 0..3, got 4"):
        imde_field(PENDULUM.field, "euler", 0.1, order=4)


def test_imde_field_does_not_track_parameter_gradients():
    net = tiny_mlp(F64)
    value = imde_field(net, "euler", 0.1)(PENDULUM_POINTS)
    assert not value.requires_grad and value.shape == PENDULUM_POINTS.shape


# --- systems and data -------------------------------------------------------------------------


def test_systems_fields_and_hamiltonian():
    x = torch.tensor([[1.0, 0.5]], dtype=F64, requires_grad=True)
    torch.testing.assert_close(
        PENDULUM.field(x), torch.tensor([[-10 * math.sin(0.5), 1.0]], dtype=F64)
    )
    # Hamilton's equations: f = (-dH/dq, dH/dp).
    (grad,) = torch.autograd.grad(PENDULUM.hamiltonian(x).sum(), x)
    torch.testing.assert_close(PENDULUM.field(x), torch.stack([-grad[:, 1], grad[:, 0]], -1))
    cubic = get_system("damped_cubic").field(torch.tensor([[1.0, 2.0]], dtype=F64))
    torch.testing.assert_close(cubic, torch.tensor([[-0.1 + 16.0, -2.0 - 0.8]], dtype=F64))
    # Lorenz acts on the state scaled by 1/10: x' = lorenz(10 x) / 10.
    lorenz = get_system("lorenz").field(torch.tensor([[0.1, 0.2, 0.3]], dtype=F64))
    torch.testing.assert_close(lorenz, torch.tensor([[10.0, 23.0, -6.0]], dtype=F64) / 10)
    with pytest.raises(NotImplementedError, match="not Hamiltonian"):
        get_system("lorenz").hamiltonian(torch.zeros(1, 3))


@pytest.mark.parametrize("name", list(SYSTEMS))
def test_flow_pairs_are_reproducible_in_domain_and_accurate(name):
    """RK4 with 50 sub-steps against 2000 sub-steps, at each system's official T: measured max
    errors (3 seeds) 1e-11 (pendulum), 1e-10 (damped cubic), 2.4e-9 (Lorenz, whose box holds fast
    states); the tolerances leave a factor ~4, and all are far below any learning error."""
    system = get_system(name)
    T = {"pendulum": 0.1, "damped_cubic": 0.02, "lorenz": 0.04}[name]
    x0, x1 = flow_pairs(system, 200, T, generator=torch.Generator().manual_seed(0))
    again = flow_pairs(system, 200, T, generator=torch.Generator().manual_seed(0))
    other = flow_pairs(system, 200, T, generator=torch.Generator().manual_seed(1))
    assert x0.dtype == x1.dtype == F64 and x0.shape == x1.shape == (200, system.dim)
    assert torch.equal(x0, again[0]) and torch.equal(x1, again[1])
    assert not torch.equal(x0, other[0])
    low = torch.tensor([b[0] for b in system.domain], dtype=F64)
    high = torch.tensor([b[1] for b in system.domain], dtype=F64)
    assert ((x0 >= low) & (x0 <= high)).all()
    reference = exact_flow(system.field, x0, T, substeps=2000)
    tolerance = {"pendulum": 5e-11, "damped_cubic": 5e-10, "lorenz": 1e-8}[name]
    assert (x1 - reference).abs().max() < tolerance


# --- analysis -------------------------------------------------------------------------------------


def test_max_abs_error_is_the_mean_of_per_point_max_components():
    points = torch.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=F64)
    shifted = lambda x: x + torch.tensor([[0.5, -2.0], [1.0, 0.25]], dtype=F64)
    assert max_abs_error(lambda x: x, shifted, points) == pytest.approx((2.0 + 1.0) / 2)


def test_energy_drift_is_tiny_for_the_true_pendulum_and_large_for_a_damped_one():
    x0 = torch.tensor([0.0, 1.0], dtype=F64)
    drift = energy_drift(PENDULUM.field, PENDULUM.hamiltonian, x0)
    assert drift.shape == () and drift < 1e-6  # measured 2.4e-7: RK4's own error at dt = 0.01
    # The Euler IMDE's first-order term damps the pendulum: dH/dt = -5h(p^2 cos q + 10 sin^2 q).
    damped = lambda x: (
        PENDULUM.field(x)
        + 0.05
        * torch.stack([-10 * x[..., 0] * torch.cos(x[..., 1]), -10 * torch.sin(x[..., 1])], -1)
    )
    batch = torch.tensor([[0.0, 1.0], [2.0, 0.5]], dtype=F64)
    drifts = energy_drift(damped, PENDULUM.hamiltonian, batch, t_end=10.0, dt=0.02)
    assert drifts.shape == (2,) and (drifts > 1.0).all()  # measured 4.6, 3.2


def test_empirical_order_recovers_a_power_law():
    step_sizes = [0.12, 0.06, 0.04, 0.03]
    result = empirical_order(step_sizes, [3.0 * h**2 for h in step_sizes])
    assert result.pairwise == pytest.approx([2.0] * 3, abs=1e-12)
    assert result.slope == pytest.approx(2.0, abs=1e-12)
    with pytest.raises(ValueError, match="at least two"):
        empirical_order([0.1], [0.2])
    with pytest.raises(ValueError, match="positive"):
        empirical_order([0.1, 0.05], [0.0, 1.0])

"""The charged-particle simulator (dlt_runner.papers.clofnet.simulator) and the generated-data
cache it is used through (dlt_runner.data.cache)."""

import numpy as np
import pytest

from dlt_runner.data.cache import cache_path, cached_arrays, params_key
from dlt_runner.papers.clofnet.simulator import (
    FIELDS,
    PAPER_SETTINGS,
    coulomb_forces,
    energy,
    leapfrog,
    make_field,
    reflect_into_box,
    sample_initial_state,
    simulate,
)


def _state(n_trajectories=6, n_particles=5, seed=0):
    return sample_initial_state(np.random.default_rng(seed), n_trajectories, n_particles)


# --- initial state ------------------------------------------------------------------------


def test_initial_state_shapes_charges_and_speeds():
    charges, x, v = _state(200, 5)
    assert charges.shape == (200, 5, 1) and x.shape == v.shape == (200, 5, 3)
    assert set(np.unique(charges)) == {-1.0, 1.0}
    assert abs(charges.mean()) < 0.1  # +-1 with probability 1/2: std of the mean 0.014
    np.testing.assert_allclose(np.linalg.norm(v, axis=-1), 0.5, rtol=1e-14)


@pytest.mark.parametrize("n_particles", [5, 20])
def test_position_spread_scales_with_the_cube_root_of_the_particle_count(n_particles):
    _, x, _ = _state(2000, n_particles, seed=1)
    expected = (n_particles / 5) ** (1 / 3)
    # >= 30k samples: the sample std is within 1% of the truth (the rare box reflections
    # at 5 = 3.1 std for N = 20 shrink it by < 0.1%).
    assert x.std() == pytest.approx(expected, rel=0.02)
    assert np.abs(x).max() <= 5.0


def test_reflection_mirrors_at_the_walls_and_turns_velocities_inward():
    x = np.array([[[6.0, -7.5, 1.0]]])
    v = np.array([[[0.3, -0.2, 0.4]]])
    reflect_into_box(x, v, box_size=5.0)
    np.testing.assert_array_equal(x, [[[4.0, -2.5, 1.0]]])
    np.testing.assert_array_equal(v, [[[-0.3, 0.2, 0.4]]])


# --- forces and energy --------------------------------------------------------------------


def _coulomb_by_loops(x, charges, softening=1e-6):
    forces = np.zeros_like(x)
    for t in range(x.shape[0]):
        for i in range(x.shape[1]):
            for j in range(x.shape[1]):
                if i != j:
                    d = x[t, i] - x[t, j]
                    forces[t, i] += (
                        charges[t, i, 0] * charges[t, j, 0] * d / (d @ d + softening) ** 1.5
                    )
    return forces


@pytest.mark.parametrize("n_particles", [2, 5, 20])
def test_coulomb_forces_match_the_pairwise_sum(n_particles):
    charges, x, _ = _state(3, n_particles)
    forces = coulomb_forces(x, charges)
    np.testing.assert_allclose(forces, _coulomb_by_loops(x, charges), rtol=1e-12, atol=1e-12)
    # Newton's third law: internal forces sum to zero
    np.testing.assert_allclose(forces.sum(axis=1), 0.0, atol=1e-12)


def test_like_charges_repel_and_opposite_charges_attract():
    x = np.array([[[0.0, 0.0, 0.0], [2.0, 0.0, 0.0]]])
    like = coulomb_forces(x, np.array([[[1.0], [1.0]]]))
    opposite = coulomb_forces(x, np.array([[[1.0], [-1.0]]]))
    magnitude = 2.0 / (4.0 + 1e-6) ** 1.5
    np.testing.assert_allclose(like[0, 1], [magnitude, 0, 0], rtol=1e-14)
    np.testing.assert_allclose(opposite[0, 1], [-magnitude, 0, 0], rtol=1e-14)


@pytest.mark.parametrize("field", ["none", "gravity"])
def test_forces_are_minus_the_gradient_of_the_potential(field):
    charges, x, v = _state(2, 4, seed=2)
    external = make_field(field)
    forces = coulomb_forces(x, charges) + external.force(x, v, charges)
    step = 1e-6
    gradient = np.zeros_like(x)
    for index in np.ndindex(x.shape[1:]):
        shifted_up, shifted_down = x.copy(), x.copy()
        shifted_up[(slice(None), *index)] += step
        shifted_down[(slice(None), *index)] -= step
        # energy at zero velocity is the potential
        gradient[(slice(None), *index)] = (
            energy(shifted_up, 0 * v, charges, field) - energy(shifted_down, 0 * v, charges, field)
        ) / (2 * step)
    # central differences: truncation ~1e-12, round-off ~1e-16 / 1e-6 = 1e-10
    np.testing.assert_allclose(forces, -gradient, atol=1e-8)


def test_field_forces():
    charges, x, v = _state(3, 5)
    gravity = np.broadcast_to(make_field("gravity").force(x, v, charges), x.shape)
    np.testing.assert_array_equal(gravity[..., :2], 0.0)
    np.testing.assert_array_equal(gravity[..., 2], 0.098)
    lorentz = make_field("lorentz").force(x, v, charges)
    np.testing.assert_allclose(lorentz, charges * np.cross(v, [0.5, 0.5, 0.5]), rtol=1e-15)
    np.testing.assert_allclose((lorentz * v).sum(axis=-1), 0.0, atol=1e-15)  # does no work
    assert make_field("none").force(x, v, charges) == 0.0


def test_unknown_field_lists_the_valid_names():
    with pytest.raises(
        ValueError, match="unknown field 'magnetic'; choose one of: none, gravity, lorentz"
    ):
        make_field("magnetic")
    with pytest.raises(ValueError, match="choose one of"):
        simulate(2, field="electric")


def test_paper_settings_name_registered_fields():
    assert {setting["field"] for setting in PAPER_SETTINGS.values()} <= set(FIELDS)
    assert PAPER_SETTINGS["es5"] == {"n_particles": 5, "field": "none"}


# --- integration --------------------------------------------------------------------------


def test_clipping_bounds_every_force_component():
    charges = np.array([[[1.0], [-1.0]]])
    x = np.array([[[0.0, 0.0, 0.0], [0.01, 0.01, 0.0]]])
    positions, _ = leapfrog(x, np.zeros_like(x), charges, [1], dt=1e-3, max_force=100.0)
    # one step from rest: x1 = x0 + dt * (dt * F(x0)), so |x1 - x0| <= dt^2 * 100 per component
    assert np.abs(positions[0] - x).max() <= 1e-6 * 100 * (1 + 1e-12)
    unclipped, _ = leapfrog(x, np.zeros_like(x), charges, [1], dt=1e-3, max_force=None)
    assert np.abs(unclipped[0] - x).max() > 1e-6 * 1000


def test_recorded_velocity_is_the_one_that_moved_the_particles_there():
    charges, x, v = _state(4, 5)
    positions, velocities = leapfrog(x, v, charges, [10, 11], dt=1e-3)
    np.testing.assert_allclose(positions[1] - positions[0], 1e-3 * velocities[1], atol=1e-15)


@pytest.mark.parametrize("field", ["none", "gravity"])
def test_leapfrog_conserves_energy_to_second_order(field):
    """Without clipping, the leapfrog energy change from t = 0.5 to t = 1 falls ~4x when dt
    halves. Energies use the synchronised velocity v_n = v_{n-1/2} + dt/2 F(x_n) (the recorded
    one lags half a step, which would add an O(dt) term). Close encounters leave the asymptotic
    regime at these dt, so the median over 16 random systems is tested (each ~4.0 otherwise)."""
    charges, x, v = _state(16, 5, seed=0)
    external = make_field(field)
    errors = []
    for dt in (4e-3, 2e-3, 1e-3):
        n_steps = round(1.0 / dt)
        positions, velocities = leapfrog(
            x, v, charges, [n_steps // 2, n_steps], dt=dt, field=field, max_force=None
        )
        energies = []
        for pos, vel in zip(positions, velocities, strict=True):
            forces = coulomb_forces(pos, charges) + external.force(pos, vel, charges)
            energies.append(energy(pos, vel + dt / 2 * forces, charges, field))
        errors.append(np.abs(energies[1] - energies[0]))
    for coarse, fine in zip(errors, errors[1:], strict=False):
        assert np.median(coarse / fine) == pytest.approx(4.0, rel=0.1)
    assert np.median(errors[-1]) < 1e-4


def test_trajectories_are_independent_of_their_batch():
    charges, x, v = _state(6, 5, seed=3)
    together, _ = leapfrog(x, v, charges, [200], field="lorentz")
    alone, _ = leapfrog(x[2:3], v[2:3], charges[2:3], [200], field="lorentz")
    np.testing.assert_allclose(alone[0, 0], together[0, 2], atol=1e-12)


def test_simulate_defaults_give_frames_30_and_40():
    data = simulate(3, 5, seed=5)
    assert {k: a.shape for k, a in data.items()} == {
        "x_input": (3, 5, 3),
        "v_input": (3, 5, 3),
        "x_target": (3, 5, 3),
        "v_target": (3, 5, 3),
        "charges": (3, 5, 1),
    }
    charges, x, v = sample_initial_state(np.random.default_rng(5), 3, 5)
    positions, velocities = leapfrog(x, v, charges, [3100, 4100])
    np.testing.assert_array_equal(data["x_input"], positions[0])
    np.testing.assert_array_equal(data["v_input"], velocities[0])
    np.testing.assert_array_equal(data["x_target"], positions[1])
    np.testing.assert_array_equal(data["charges"], charges)


def test_simulate_is_reproducible_by_seed():
    first = simulate(4, 5, seed=11, input_step=50, target_step=80)
    again = simulate(4, 5, seed=np.random.default_rng(11), input_step=50, target_step=80)
    other = simulate(4, 5, seed=12, input_step=50, target_step=80)
    for name in first:
        np.testing.assert_array_equal(first[name], again[name])
    assert not np.array_equal(first["x_input"], other["x_input"])


@pytest.mark.parametrize("field", list(FIELDS))
def test_every_field_runs_with_twenty_particles(field):
    data = simulate(2, 20, field=field, seed=0, input_step=20, target_step=40)
    assert all(np.isfinite(a).all() for a in data.values())
    assert data["x_target"].shape == (2, 20, 3)


def test_gravity_accelerates_the_centre_of_mass_along_z():
    # Coulomb forces cancel in the sum, so the centroid moves exactly as under gravity alone
    # (when no clipping acts): z_c(t) = z_c(0) + v_c t + g t^2 / 2 in the discrete scheme.
    charges, x, v = _state(4, 5, seed=4)
    positions, _ = leapfrog(x, v, charges, [500], field="gravity", max_force=None)
    plain, _ = leapfrog(x, v, charges, [500], field="none", max_force=None)
    shift = positions[0].mean(axis=1) - plain[0].mean(axis=1)
    steps, dt = 500, 1e-3
    expected_z = 0.098 * dt**2 * steps * (steps + 1) / 2  # sum of the kicks' displacements
    np.testing.assert_allclose(shift[:, :2], 0.0, atol=1e-10)
    np.testing.assert_allclose(shift[:, 2], expected_z, rtol=1e-8)


# --- the data cache -----------------------------------------------------------------------


def test_cache_builds_once_and_reloads(tmp_path):
    calls = []

    def build():
        calls.append(1)
        return {"a": np.arange(5.0), "b": np.ones((2, 3), dtype=np.float32)}

    params = {"n": 5, "seed": 0, "field": "none"}
    first = cached_arrays(tmp_path, params, build)
    second = cached_arrays(tmp_path, dict(reversed(params.items())), build)
    assert len(calls) == 1
    for name in first:
        np.testing.assert_array_equal(first[name], second[name])
        assert first[name].dtype == second[name].dtype
    assert [p.name for p in tmp_path.iterdir()] == [cache_path(tmp_path, params).name]


def test_cache_keys_differ_with_params_and_files_are_separate(tmp_path):
    calls = []

    def build():
        calls.append(1)
        return {"a": np.full(3, len(calls))}

    first = cached_arrays(tmp_path, {"seed": 0}, build)
    second = cached_arrays(tmp_path, {"seed": 1}, build)
    assert len(calls) == 2 and first["a"][0] == 1 and second["a"][0] == 2
    assert cache_path(tmp_path, {"seed": 0}) != cache_path(tmp_path, {"seed": 1})
    assert len(list(tmp_path.iterdir())) == 2


def test_params_key_is_stable_and_treats_numpy_scalars_as_numbers():
    assert params_key({"n": 5, "dt": 1e-3}) == params_key({"dt": 0.001, "n": np.int64(5)})
    assert params_key({"n": 5}) != params_key({"n": 6})
    with pytest.raises(TypeError, match="JSON-like"):
        params_key({"rng": np.random.default_rng(0)})


def test_failed_build_leaves_no_file(tmp_path):
    def broken():
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        cached_arrays(tmp_path, {"seed": 0}, broken)
    assert list(tmp_path.iterdir()) == []

"""The Newtonian many-body data (paper §7.1): simulated once, cached by its parameters.

Each split is its own batch of trajectories from :func:`~dlt_runner.papers.clofnet.simulator.
simulate`, seeded by ``(simulation_seed, split name)``: the splits are disjoint draws, and a split
does not change when another one is resized (the test set of ``splits.train=3000`` is the test
set of ``splits.train=1000``). The arrays are stored under ``cache_dir`` in an ``.npz`` named by a
hash of every generation parameter, so a second run, or another job of a sweep, loads them instead
of integrating 4,100 leapfrog steps again.

Tensors per split (float, cast to ``dtype``): ``x`` and ``v`` (B, N, 3) at the input step,
``charges`` (B, N, 1), ``target`` (B, N, 3), the positions ``target_step - input_step`` steps
later.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from typing import Any

import numpy as np

from dlt_runner.core.datamodule import Batch, TensorDataModule
from dlt_runner.core.errors import ConfigError, choose
from dlt_runner.data.cache import cached_arrays
from dlt_runner.papers.clofnet import simulator

# Under `debug=fast` every split is this small: enough for one batch of each loop, and the
# 4,100-step simulation of so few systems takes a fraction of a second even with 20 bodies.
SMOKE_TRAJECTORIES = 4
# Bumped when the simulator's output for equal parameters changes, so old cache files are unused.
SIMULATOR_VERSION = 1


def split_generator(seed: int, split: str) -> np.random.Generator:
    """The generator of one split: independent streams for (seed, split name) pairs."""
    return np.random.default_rng([int(seed), zlib.crc32(split.encode())])


class NBodyData(TensorDataModule):
    """Charged particles (ES), optionally in a gravity (G+ES) or Lorentz-like (L+ES) field.

    Args:
        n_bodies: particles per system (paper: 5 for ES(5), 20 for the others).
        field: external field, one of ``none``, ``gravity``, ``lorentz``
            (:data:`~dlt_runner.papers.clofnet.simulator.FIELDS`).
        splits: split name -> number of trajectories (paper 3000/2000/2000; CPU 1000/500/500).
        simulation_seed: seeds the trajectories (with each split's name).
        input_step, target_step: leapfrog steps (dt = 1e-3) of the input and the target
            (official frames 30 and 40: steps 3100 and 4100).
        cache_dir: where generated arrays are stored (``${paths.cache_dir}``); ``None``
            simulates every time.
    """

    def __init__(
        self,
        n_bodies: int = 5,
        field: str = "none",
        splits: Mapping[str, int] | None = None,
        simulation_seed: int = 0,
        input_step: int = simulator.INPUT_STEP,
        target_step: int = simulator.TARGET_STEP,
        cache_dir: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        choose("field", field, simulator.FIELDS)
        self.field = field
        self.n_bodies = int(n_bodies)
        if self.n_bodies < 2:
            raise ConfigError(f"data.n_bodies must be at least 2, got {n_bodies}")
        self.split_sizes = {
            str(name): int(size)
            for name, size in (splits or {"train": 1000, "val": 500, "test": 500}).items()
        }
        if self.split_sizes.get("train", 0) < 1:
            raise ConfigError(f"data.splits needs a non-empty train split, got {self.split_sizes}")
        if any(size < 0 for size in self.split_sizes.values()):
            raise ConfigError(f"data.splits sizes must be >= 0, got {self.split_sizes}")
        self.simulation_seed = int(simulation_seed)
        self.input_step, self.target_step = int(input_step), int(target_step)
        if not 1 <= self.input_step < self.target_step:
            raise ConfigError(
                f"need 1 <= data.input_step < data.target_step, got {input_step}, {target_step}"
            )
        self.cache_dir = cache_dir

    def simulation_params(self, split: str, n_trajectories: int) -> dict[str, Any]:
        """Everything that determines a split's arrays (the cache key)."""
        return {
            "paper": "clofnet",
            "version": SIMULATOR_VERSION,
            "split": split,
            "n_trajectories": n_trajectories,
            "n_bodies": self.n_bodies,
            "field": self.field,
            "seed": self.simulation_seed,
            "input_step": self.input_step,
            "target_step": self.target_step,
        }

    def simulate_split(self, split: str, n_trajectories: int) -> dict[str, np.ndarray]:
        """One split's arrays, from the cache when it holds them."""

        def build() -> dict[str, np.ndarray]:
            return simulator.simulate(
                n_trajectories,
                self.n_bodies,
                self.field,
                seed=split_generator(self.simulation_seed, split),
                input_step=self.input_step,
                target_step=self.target_step,
            )

        params = self.simulation_params(split, n_trajectories)
        if self.cache_dir is None:
            return build()
        return cached_arrays(self.cache_dir, params, build, prefix="clofnet-nbody")

    def build(self) -> dict[str, Batch]:
        splits = {}
        for split, size in self.split_sizes.items():
            n_trajectories = min(size, SMOKE_TRAJECTORIES) if self.smoke else size
            if n_trajectories == 0:
                continue
            arrays = self.simulate_split(split, n_trajectories)
            splits[split] = {
                "x": arrays["x_input"],
                "v": arrays["v_input"],
                "charges": arrays["charges"],
                "target": arrays["x_target"],
            }
        return splits

"""Tier 2: every experiment (and every option of the runner's groups) composes and instantiates.

Composition is in-process with Hydra's compose API; no Lightning import is needed to compose.
"""

from __future__ import annotations

import pytest
from hydra.utils import instantiate

from dlt_runner import CONFIG_DIR
from dlt_runner.core.config_checks import available_experiments
from dlt_runner.core.errors import DatasetUnavailable

EXPERIMENTS = available_experiments()


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml"))


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_composes_and_instantiates(compose, experiment):
    cfg = compose(f"experiment={experiment}")
    assert cfg.paper and experiment.split("/")[0] == cfg.paper, "experiment dirs are paper slugs"
    assert cfg.model._target_.startswith(f"dlt_runner.papers.{cfg.paper}.")
    module = instantiate(cfg.model)
    assert sum(p.numel() for p in module.parameters()) >= 0
    try:
        instantiate(cfg.data)
    except DatasetUnavailable as error:  # paper-scale presets on downloadable data
        assert "paths.data_dir" in str(error) or "pip install" in str(error)


@pytest.mark.parametrize("group", ["trainer", "logger", "callbacks", "debug"])
def test_every_runner_option_composes(compose, group):
    for option in _options(group):
        cfg = compose("experiment=imde/pendulum", f"{group}={option}")
        assert cfg.trainer._target_ == "pytorch_lightning.Trainer"


@pytest.mark.parametrize("space", _options("hparams_search"))
def test_hparams_search_spaces_compose(compose, space):
    paper = space.removesuffix("_optuna")
    experiment = next(e for e in EXPERIMENTS if e.startswith(f"{paper}/"))
    cfg = compose(f"experiment={experiment}", f"hparams_search={space}", return_hydra_config=True)
    assert cfg.optimized_metric
    assert "optuna" in cfg.hydra.sweeper._target_.lower()
    assert cfg.hydra.sweeper.params


def test_every_paper_has_a_claim_and_a_search_space():
    papers = {e.split("/")[0] for e in EXPERIMENTS}
    assert papers <= set(_options("claim"))
    assert {f"{p}_optuna" for p in papers} <= set(_options("hparams_search"))


def test_run_and_sweep_dirs_are_unique_per_launch(compose):
    cfg = compose("experiment=imde/pendulum", return_hydra_config=True)
    run_dir, sweep_dir = str(cfg.hydra.run.dir), str(cfg.hydra.sweep.dir)
    assert run_dir.startswith(str(cfg.paths.outputs_root)) and run_dir.endswith(sweep_dir[-8:])
    import subprocess
    import sys

    tokens = {
        subprocess.run(
            [
                sys.executable,
                "-c",
                "from dlt_runner.core.resolvers import LAUNCH_TOKEN;print(LAUNCH_TOKEN)",
            ],
            capture_output=True,
            text=True,
        ).stdout
        for _ in range(2)
    }
    assert len(tokens) == 2, "two launches in the same second must get different dirs"

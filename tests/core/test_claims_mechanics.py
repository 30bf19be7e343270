"""dlt-claims mechanics: grids become multirun overrides; seed=N shifts a seed grid."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from dlt_runner.core.errors import ConfigError
from dlt_runner.core.metrics_file import write_metrics
from dlt_runner.sweeps.claims import (
    Check,
    Sweep,
    Verdict,
    load_sweeps,
    render_markdown,
    run_claim,
)
from dlt_runner.sweeps.runs import Run, group_mean, load_runs, mean_metric, select

SWEEP = Sweep(
    "main",
    "imde/pendulum",
    {"model.integrator": ["euler", "rk4"], "seed": [0, 1, 2]},
    ["test=false"],
)


def test_grid_becomes_multirun_overrides():
    assert SWEEP.command_overrides([]) == [
        "experiment=imde/pendulum",
        "test=false",
        "model.integrator=euler,rk4",
        "seed=0,1,2",
    ]


def test_seed_override_moves_the_seed_grid_keeping_its_size():
    overrides = SWEEP.command_overrides(["seed=10", "trainer.max_steps=5"])
    assert "seed=10,11,12" in overrides and "trainer.max_steps=5" in overrides


def test_an_extra_override_of_a_swept_key_replaces_that_axis():
    assert "model.integrator=midpoint" in SWEEP.command_overrides(["model.integrator=midpoint"])


def test_unknown_paper_lists_the_claims():
    with pytest.raises(ConfigError, match="unknown paper 'nope'; choose one of: all, .*imde"):
        load_sweeps("nope")


def _run(sweep: str, integrator: str, seed: int, value: float, status: str = "ok") -> Run:
    return Run(
        sweep,
        {"model.integrator": integrator, "seed": str(seed)},
        status,
        {"analysis/x": value},
        {},
        Path("."),
    )


def test_selection_and_means_skip_failed_runs():
    runs = [
        _run("main", "euler", 0, 1.0),
        _run("main", "euler", 1, 3.0),
        _run("main", "euler", 2, 100.0, status="diverged"),
        _run("main", "rk4", 0, 5.0),
    ]
    euler = select(runs, sweep="main", **{"model.integrator": "euler"})
    assert len(euler) == 3 and mean_metric(euler, "analysis/x") == 2.0
    assert group_mean(runs, "model.integrator", "analysis/x") == {"euler": 2.0, "rk4": 5.0}


def test_load_runs_reads_job_dirs(tmp_path):
    for number, integrator in enumerate(["euler", "rk4"]):
        job = tmp_path / str(number)
        (job / ".hydra").mkdir(parents=True)
        OmegaConf.save(
            OmegaConf.create([f"model.integrator={integrator}", "seed=0"]),
            job / ".hydra" / "overrides.yaml",
        )
        write_metrics(job, {"status": "ok", "metrics": {"m": float(number)}})
    runs = load_runs(tmp_path, "main")
    assert [r.overrides["model.integrator"] for r in runs] == ["euler", "rk4"]
    assert [r.get("m") for r in runs] == [0.0, 1.0]


def test_run_claim_launches_each_sweep_and_judges(tmp_path, monkeypatch):
    launched = []

    def fake_launch(overrides, env):
        launched.append((overrides, env["WANDB_RUN_GROUP"]))
        return 0

    verdict = run_claim("imde", ["seed=7"], tmp_path / "stamp_imde", launch=fake_launch)
    assert len(launched) == 2
    assert all(
        any(o.startswith("hydra.sweep.dir=") for o in overrides) for overrides, _ in launched
    )
    assert all("seed=7,8,9" in o or "seed=7,8" in o for o, _ in launched)
    groups = [group for _, group in launched]
    assert len(set(groups)) == 2 and all(
        g.startswith("imde-") and "stamp_imde" in g for g in groups
    )
    assert not verdict.holds, "no runs were made, so nothing can hold"


def test_markdown_table_marks_failures():
    text = render_markdown(
        [Verdict("p", [Check("a < b", "a=1, b=2", True), Check("c", "d", False)])]
    )
    assert "| p | a < b | a=1, b=2 | holds |" in text and "**fails**" in text

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


def _fake_jobs(overrides: list[str], env: dict[str, str]) -> int:
    """Stands in for ``dlt-run -m``: writes the sweep's job dirs with IMDE-like metrics."""
    import itertools
    import json

    sweep_dir = Path(next(o for o in overrides if o.startswith("hydra.sweep.dir=")).split("=")[1])
    axes = [o.split("=", 1) for o in overrides if "," in o and not o.startswith("hydra")]
    order = {"euler": 1, "midpoint": 2, "implicit_midpoint": 2}
    sweep_dir.mkdir(parents=True)
    (sweep_dir / "multirun.yaml").write_text("{}")
    for number, values in enumerate(itertools.product(*(v.split(",") for _, v in axes))):
        chosen = dict(zip([k for k, _ in axes], values, strict=True))
        job = sweep_dir / str(number)
        (job / ".hydra").mkdir(parents=True)
        items = [f"{k}={v}" for k, v in chosen.items()]
        OmegaConf.save(OmegaConf.create(items), job / ".hydra" / "overrides.yaml")
        step = float(chosen.get("data.step_size", 0.1))
        integrator = chosen["model.integrator"]
        metrics = {
            "analysis/err_true": step ** order[integrator] * (1 + 0.01 * int(chosen["seed"])),
            "analysis/err_imde": 0.01 * step,
            "analysis/energy_drift": 0.1 if integrator == "implicit_midpoint" else 1.0,
        }
        write_metrics(job, {"status": "ok", "metrics": metrics})
        identity = {"group": env["WANDB_RUN_GROUP"], "project": "p", "mode": "offline"}
        (job / "wandb").mkdir()
        (job / "wandb" / "identity.json").write_text(json.dumps(identity))
    return 0


def test_claims_write_a_report_per_sweep_with_the_verdict_and_log_it_to_the_sweep_group(
    tmp_path, monkeypatch
):
    from dlt_runner.core.wandb_reader import read_offline_run
    from dlt_runner.sweeps import claims

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setattr(claims, "_launch", _fake_jobs)
    assert claims.main(["imde", f"paths.outputs_root={tmp_path}"]) == 0
    (root,) = (tmp_path / "claims").iterdir()
    for sweep in ("main", "order"):
        page = (root / sweep / "report.html").read_text()
        assert "claim: imde" in page and "Euler learns the IMDE" in page
        assert page.count('class="holds"') == 4
        (path,) = (root / sweep).glob("wandb/offline-run-*/run-*.wandb")
        report = read_offline_run(path)
        assert report.job_type == "report" and report.group == f"imde-{sweep}-{root.name}"
        assert report.summary["tables/claim_imde._type"] == "table-file"
        assert report.summary["tables/jobs._type"] == "table-file"

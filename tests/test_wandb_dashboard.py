"""What a reviewer sees in W&B, read back from the offline files with wandb's own reader.

A 2 x 2 multirun (integrator x seed) through the command line, then ``dlt-report``: one group,
one job type per integrator, run names of the swept keys only, ``val/loss`` summarised by its
minimum, every series on the optimiser step (the last ``train/loss`` at ``max_steps``, in W&B
and in the CSV), ``analysis/*`` as summary values, the reviewed config, the run files and the
best checkpoint saved, and a report run with tables and images in the same group.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from conftest import cli

from dlt_runner.core.loggers import STEP_KEY
from dlt_runner.core.wandb_reader import OfflineRun, offline_runs, read_offline_run

MAX_STEPS = 500
CHUNK = 100  # data.steps_per_call: optimiser steps per Lightning step (one epoch here)
SWEEP = [
    "experiment=imde/pendulum",
    f"trainer.max_steps={MAX_STEPS}",
    "trainer.check_val_every_n_epoch=1",  # validation every 100 steps: 5 values to summarise
    "data.n_train=200",
    "model.integrator=euler,midpoint",
    "seed=0,1",
    "logger.wandb.log_model=true",
]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("dashboard")
    sweep_dir = root / "sweep"
    result = cli("dlt-run", "-m", *SWEEP, f"hydra.sweep.dir={sweep_dir}", cwd=root)
    assert result.returncode == 0, result.stderr[-3000:]
    result = cli("dlt-report", str(sweep_dir), cwd=root)
    assert result.returncode == 0, result.stderr[-3000:]
    return sweep_dir


@pytest.fixture(scope="module")
def job_runs(sweep) -> list[OfflineRun]:
    """The four jobs' W&B runs, in job order."""
    runs = []
    for job in range(4):
        (path,) = offline_runs(sweep / str(job))
        runs.append(read_offline_run(path))
    return runs


def test_sweep_groups_names_and_job_types(sweep, job_runs):
    runs = job_runs
    assert len({run.group for run in runs}) == 1 and runs[0].group == f"imde_pendulum-{sweep.name}"
    assert {run.job_type for run in runs} == {"model.integrator=euler", "model.integrator=midpoint"}
    assert [run.name for run in runs] == [
        "model.integrator=euler,seed=0",
        "model.integrator=euler,seed=1",
        "model.integrator=midpoint,seed=0",
        "model.integrator=midpoint,seed=1",
    ], "names hold the swept keys only, not the constant overrides"
    assert all(run.exit_code == 0 and run.tags == ["imde"] for run in runs)


def test_series_sit_at_the_optimiser_step_and_val_loss_summary_is_its_minimum(sweep, job_runs):
    for job, run in enumerate(job_runs):
        train = run.rows("train/loss")
        steps = [row[STEP_KEY] for row in train]
        # model.log_every_n_steps=100: once per chunk, at the chunk's last optimiser step
        assert steps == list(range(CHUNK, MAX_STEPS + 1, CHUNK)), steps
        val = run.rows("val/loss")
        assert [row[STEP_KEY] for row in val] == list(range(CHUNK, MAX_STEPS + 1, CHUNK))
        assert run.metrics["val/loss"]["summary"] == {"min": True}
        assert run.summary["val/loss"] == {"min": min(row["val/loss"] for row in val)}
        assert [row[STEP_KEY] for row in run.rows("test/loss")] == [MAX_STEPS]
        # analysis/* are summary values, not one-point charts
        assert not any(key.startswith("analysis/") for row in run.history for key in row)
        record = json.loads((sweep / str(job) / "metrics.json").read_text())
        assert run.summary["analysis/err_true"] == pytest.approx(
            record["metrics"]["analysis/err_true"]
        )
        rows = list(csv.DictReader((sweep / str(job) / "csv" / "metrics.csv").open()))
        csv_steps = [int(row["step"]) for row in rows if row.get("train/loss")]
        assert csv_steps[-1] == MAX_STEPS and csv_steps == steps
        assert [int(row["step"]) for row in rows if row.get("analysis/err_true")] == [MAX_STEPS]


def test_config_is_what_a_reviewer_filters_by_and_run_files_are_saved(sweep, job_runs):
    run = job_runs[3]
    assert run.config["model"]["integrator"] == "midpoint" and run.config["seed"] == 1
    assert run.config["trainer"]["max_steps"] == MAX_STEPS and run.config["paper"] == "imde"
    assert run.config["choices"]["experiment"] == "imde/pendulum"
    assert "model.integrator=midpoint" in run.config["overrides"]
    assert not {"paths", "callbacks", "logger", "hydra"} & set(run.config)
    assert "default_root_dir" not in run.config["trainer"]
    assert str(sweep) not in json.dumps(run.config), "no paths in the config"
    assert {".hydra/config.yaml", ".hydra/overrides.yaml", "metrics.json"} <= set(run.files)
    (artifact,) = [a for a in run.artifacts if a[1] == "model"]
    assert set(artifact[2]) == {"best", "latest"}, "log_model=true: the best checkpoint only"


def test_report_run_holds_tables_and_images_in_the_sweep_group(sweep):
    (path,) = sorted(sweep.glob("wandb/offline-run-*/run-*.wandb"))
    report = read_offline_run(path)
    assert report.job_type == "report" and report.group == f"imde_pendulum-{sweep.name}"
    kinds = {
        key.rsplit(".", 1)[0]: value
        for key, value in report.summary.items()
        if key.endswith("._type")
    }
    assert kinds["tables/jobs"] == "table-file"
    assert kinds["tables/mean_std_over_seeds"] == "table-file"
    images = [key for key, kind in kinds.items() if kind == "image-file"]
    assert "plots/analysis_err_true_vs_model_integrator" in images, images
    assert report.exit_code == 0

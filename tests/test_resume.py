"""Resume is exact wherever a kill lands.

A short IMDE run with minibatches (so the data order matters) and a loss that draws from
torch, NumPy and Python's ``random`` is killed with SIGKILL at five points (after a
training step, during validation, while a checkpoint is assembled, half-way through
writing a checkpoint file, between the best and last checkpoint files), resumed with
``ckpt_path=last``, and must end with the uninterrupted run's metrics (rel 1e-9, float64
on CPU) and its CSV history (every row once). The same holds when the checkpoint was taken
inside an epoch (``every_n_train_steps``).
"""

from __future__ import annotations

import csv
import json
import os
import signal
from pathlib import Path

import pytest
import torch
from conftest import ROOT, cli

# 3 minibatches per epoch, chunks of 2 and 1 optimiser steps, validation and checkpoint every
# 2 epochs (6 steps): kills land inside chunks, epochs and checkpoint intervals.
RUN = [
    "experiment=imde/pendulum",
    "model._target_=resume_kill.NoisyNeuralODE",
    "trainer.max_steps=45",
    "trainer.check_val_every_n_epoch=2",
    "data.n_train=300",
    "data.n_val=50",
    "data.batch_size=100",
    "data.steps_per_call=2",
    "model.log_every_n_steps=1",
    "model.energy_horizon=0",
    "model.trajectory_horizon=0",
    "test=false",
    "logger=csv",
]
KILLS = [
    (8, "train"),
    (13, "validation"),
    (24, "assembling_checkpoint"),
    (30, "writing_checkpoint"),
    (36, "between_files"),
]
COMPARED = ("train/loss", "val/loss", "analysis/err_true", "analysis/err_imde")


def _run(*args: str, cwd: Path):
    env = {"PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")])}
    return cli("dlt-run", *RUN, *args, cwd=cwd, env=env)


def _metrics(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())["metrics"]


def _history(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "csv" / "metrics.csv", newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("reference") / "run"
    result = _run(f"hydra.run.dir={run_dir}", cwd=run_dir.parent)
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir


# Checkpoints every 5 optimiser steps. Epoch e ends at step 3e + 3, so step 20 falls after the
# first chunk of epoch 6, and step 30 ends epoch 9, whose validation is due. Killed at step 23
# the run resumes inside epoch 6; killed at step 32, after epoch 9's validation.
MID_EPOCH = [
    "callbacks.model_checkpoint.every_n_epochs=null",
    "+callbacks.model_checkpoint.every_n_train_steps=5",
]
CASES = [
    *((step, where, [], None) for step, where in KILLS),
    (22, "train", MID_EPOCH, 20),
    (31, "train", MID_EPOCH, 30),
]
IDS = [*(where for _, where in KILLS), "step_checkpoint_mid_epoch", "step_checkpoint_at_epoch_end"]


@pytest.mark.parametrize(("step", "where", "checkpoints", "resumed_at"), CASES, ids=IDS)
def test_resumed_run_ends_like_the_uninterrupted_one(
    tmp_path, reference, step, where, checkpoints, resumed_at
):
    run_dir = tmp_path / "run"
    killed = _run(
        f"hydra.run.dir={run_dir}",
        *checkpoints,
        "+callbacks.kill._target_=resume_kill.KillAt",
        f"+callbacks.kill.step={step}",
        f"+callbacks.kill.where={where}",
        cwd=tmp_path,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert not (run_dir / "metrics.json").exists()
    if resumed_at is not None:
        last = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False)
        assert last["global_step"] == resumed_at

    resumed = _run(f"hydra.run.dir={run_dir}", *checkpoints, "ckpt_path=last", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "dataloader is not resumable" not in resumed.stderr
    assert not list((run_dir / "checkpoints").glob(".*.partial")), "temporary files cleaned"
    expected, got = _metrics(reference), _metrics(run_dir)
    for name in COMPARED:
        assert got[name] == pytest.approx(expected[name], rel=1e-9, abs=0), name

    history, expected_history = _history(run_dir), _history(reference)
    assert [row["step"] for row in history] == [row["step"] for row in expected_history]
    for row, expected_row in zip(history, expected_history, strict=True):
        for key, value in expected_row.items():
            if value and key != "epoch":
                assert float(row[key]) == pytest.approx(float(value), rel=1e-9, abs=0), key


def test_a_run_resumed_from_its_final_checkpoint_reports_the_same_metrics(compose, tmp_path):
    """Killed after its last checkpoint (in the final test or analysis), a run resumes with no
    step left to train; its final record must still hold the last logged values."""
    from dlt_runner.run import Runtime, run

    overrides = [
        "experiment=imde/pendulum",
        "trainer.max_steps=200",
        "trainer.check_val_every_n_epoch=1",
        "model.energy_horizon=0",
        "model.trajectory_horizon=0",
        "logger=csv",
        "threads=1",
    ]
    first = run(compose(*overrides), Runtime(run_dir=tmp_path / "run"))
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    resumed = run(
        compose(*overrides, f"ckpt_path={last}", f"paths.run_dir={tmp_path / 'again'}"),
        Runtime(run_dir=tmp_path / "again"),
    )
    for name in ("train/loss", "val/loss", "analysis/err_imde"):
        assert resumed["metrics"][name] == first["metrics"][name], name

"""TensorBoard gets the optimiser-step axis too: train scalars up to max_steps, test at the end."""

from __future__ import annotations

import pytest

from dlt_runner.run import Runtime, run


def test_tensorboard_scalars_sit_at_optimiser_steps(compose, tmp_path):
    accumulator = pytest.importorskip(
        "tensorboard.backend.event_processing.event_accumulator",
        reason="tensorboard is not installed (the dev extra has it)",
    )
    cfg = compose(
        "experiment=imde/pendulum",
        "logger=tensorboard",
        "trainer.max_steps=400",
        "trainer.check_val_every_n_epoch=2",
        "model.energy_horizon=0",
        "model.trajectory_horizon=0",
        "threads=1",
    )
    run(cfg, Runtime(run_dir=tmp_path / "run"))
    steps: dict[str, list[int]] = {}
    for path in sorted((tmp_path / "run" / "tensorboard").glob("events.out.tfevents.*")):
        events = accumulator.EventAccumulator(str(path))
        events.Reload()
        for tag in events.Tags()["scalars"]:
            steps.setdefault(tag, []).extend(event.step for event in events.Scalars(tag))
    # 100 optimiser steps per chunk, logged once a chunk; validation every 2 chunks.
    assert steps["train/loss"] == [100, 200, 300, 400]
    assert steps["val/loss"] == [200, 400]
    assert steps["test/loss"] == [400]
    assert steps["analysis/err_imde"] == [400]

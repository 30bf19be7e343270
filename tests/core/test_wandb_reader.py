"""The offline W&B reader against a run written by wandb itself: wandb's own
``wandb leet inspect --json`` and the protobuf fallback give the same records."""

from __future__ import annotations

import pytest

from dlt_runner.core import wandb_reader
from dlt_runner.core.wandb_reader import offline_runs, read_offline_run


@pytest.fixture(scope="module")
def run_file(tmp_path_factory):
    import wandb

    directory = tmp_path_factory.mktemp("wandb")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("WANDB_MODE", "offline")
        run = wandb.init(
            project="p",
            dir=str(directory),
            id="abc123",
            group="g",
            job_type="model.integrator=euler",
            name="n",
            tags=["t"],
            config={"model": {"lr": 0.1}, "seed": 3},
        )
        run.define_metric("val/loss", summary="min")
        for step in range(40):
            values = {
                "train/loss": 1.0 / (step + 1),
                "val/loss": (step - 20) ** 2,
                "blob": "x" * 2000,
            }
            run.log(values, step=step)  # the blob makes records span 32 KiB blocks
        run.summary["final"] = 5
        run.finish()
    (path,) = offline_runs(directory)
    return path


def _check(record):
    assert (record.run_id, record.group, record.name, record.tags) == ("abc123", "g", "n", ["t"])
    assert record.job_type == "model.integrator=euler"
    assert record.config == {"model": {"lr": 0.1}, "seed": 3}
    assert record.series("train/loss") == [1.0 / (s + 1) for s in range(40)]
    assert [row["_step"] for row in record.rows("val/loss")] == list(range(40))
    assert record.metrics["val/loss"]["summary"] == {"min": True}
    assert record.summary["val/loss"] == {"min": 0} and record.summary["final"] == 5
    assert record.exit_code == 0


def test_wandb_leet_inspect_reads_identity_config_history_summary(run_file):
    if wandb_reader._leet_command() is None:
        pytest.skip("this wandb has no `wandb leet inspect` (wandb >= 0.31 does)")
    _check(read_offline_run(run_file))


def test_fallback_parser_gives_the_same_records(run_file, monkeypatch):
    command = wandb_reader._leet_command()
    leet = wandb_reader._collect(wandb_reader._leet_records(command, run_file)) if command else None
    monkeypatch.setattr(wandb_reader, "_leet_command", lambda: None)
    fallback = read_offline_run(run_file)
    _check(fallback)
    if leet is not None:
        assert (fallback.history, fallback.summary, fallback.config) == (
            leet.history,
            leet.summary,
            leet.config,
        )

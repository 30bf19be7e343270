"""The offline W&B file reader against a run written by wandb itself."""

from __future__ import annotations

from dlt_runner.core.wandb_reader import offline_runs, read_offline_run


def test_reads_config_history_summary_and_identity(tmp_path, monkeypatch):
    import wandb

    monkeypatch.setenv("WANDB_MODE", "offline")
    run = wandb.init(
        project="p",
        dir=str(tmp_path),
        id="abc123",
        group="g",
        name="n",
        tags=["t"],
        config={"model": {"lr": 0.1}, "seed": 3},
    )
    for step in range(40):
        run.log({"train/loss": 1.0 / (step + 1), "blob": "x" * 2000}, step=step)  # spans blocks
    run.summary["final"] = 5
    run.finish()
    (path,) = offline_runs(tmp_path)
    record = read_offline_run(path)
    assert (record.run_id, record.group, record.name, record.tags) == ("abc123", "g", "n", ["t"])
    assert record.config["seed"] == 3 and record.config["model"] == {"lr": 0.1}
    assert record.series("train/loss") == [1.0 / (s + 1) for s in range(40)]
    assert record.summary["final"] == 5 and record.exit_code == 0

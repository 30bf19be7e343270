"""W&B identity, reviewed config and summaries of a job; per-layer scalars as one plot."""

from __future__ import annotations

from omegaconf import OmegaConf

from dlt_runner.core.wandb_identity import (
    monitored_summaries,
    review_config,
    swept_keys,
    wandb_identity,
)
from dlt_runner.core.wandb_reader import offline_runs, read_offline_run

JOB = ["experiment=imde/pendulum", "trainer.max_steps=100", "model.integrator=euler", "seed=1"]


def test_swept_keys_come_from_the_sweep_command_and_the_sweeper_params(tmp_path):
    command = ["experiment=imde/pendulum", "trainer.max_steps=100", "model.integrator=euler,rk4"]
    command.append("seed=range(0,3)")
    multirun = {"hydra": {"overrides": {"task": command}}}
    OmegaConf.save(OmegaConf.create(multirun), tmp_path / "multirun.yaml")
    assert swept_keys(JOB, tmp_path, None) == {"model.integrator", "seed"}
    params = {"model.optimizer.lr": "interval(1e-4, 1e-2)"}
    job = [*JOB, "model.optimizer.lr=0.001"]
    assert swept_keys(job, tmp_path / "none", params) == {"model.optimizer.lr"}


def test_identity_names_the_swept_keys_and_drops_the_seed_from_the_job_type():
    sweep = wandb_identity(
        task_name="imde_pendulum",
        group="imde_pendulum-sweep",
        overrides=JOB,
        swept={"model.integrator", "seed"},
    )
    assert sweep == {
        "group": "imde_pendulum-sweep",
        "job_type": "model.integrator=euler",
        "name": "model.integrator=euler,seed=1",
    }
    seeds_only = wandb_identity(task_name="t", group="g", overrides=JOB, swept={"seed"})
    assert seeds_only["job_type"] == "t" and seeds_only["name"] == "seed=1"
    single = wandb_identity(task_name="t", group="g", overrides=JOB, swept=None)
    assert single["name"] == ",".join(JOB)
    assert wandb_identity(task_name="t", group="g", overrides=JOB, swept=set()) == single
    long = wandb_identity(
        task_name="t", group="g", overrides=[f"model.k{i}={'x' * 20}" for i in range(9)], swept=None
    )
    assert len(long["job_type"]) == 64 and long["job_type"] != long["name"][:64]


def test_reviewed_config_has_no_paths_and_adds_hydra_overrides_and_choices():
    config = {
        "paths": {"root_dir": "/r", "run_dir": "/r/outputs/x"},
        "model": {"lr": 0.1, "cache": "/r/outputs/cache", "name": "mlp"},
        "trainer": {"max_steps": 5, "default_root_dir": "/r/outputs/x"},
        "callbacks": {"progress_bar": {"refresh_rate": 10}},
        "logger": {"wandb": {"id": "abc"}},
        "seed": 3,
        "paper": "imde",
    }
    reviewed = review_config(
        config, ["seed=3"], {"experiment": "imde/pendulum", "hydra/launcher": "basic"}
    )
    assert reviewed == {
        "paper": "imde",
        "seed": 3,
        "model": {"lr": 0.1, "name": "mlp"},
        "trainer": {"max_steps": 5},
        "overrides": ["seed=3"],
        "choices": {"experiment": "imde/pendulum"},
    }


def test_summaries_follow_the_checkpoint_mode_and_the_sweeper_direction():
    cfg = OmegaConf.create(
        {
            "callbacks": {"model_checkpoint": {"monitor": "val/acc", "mode": "max"}},
            "optimized_metric": "analysis/err",
        }
    )
    assert monitored_summaries(cfg, ["minimize"]) == {
        "val/loss": "min",
        "val/acc": "max",
        "analysis/err": "min",
    }
    assert monitored_summaries(cfg, "maximize")["analysis/err"] == "max"


def test_per_layer_scalars_become_one_plot_per_name(tmp_path, monkeypatch):
    from dlt_runner.core.loggers import WandbLogger, finish

    monkeypatch.setenv("WANDB_MODE", "offline")
    logger = WandbLogger(project="p", save_dir=str(tmp_path), mode="offline", summaries={})
    for step in (10, 20):
        layers = {f"align/layer_{i:02d}": 0.1 * i + step for i in range(1, 41)}
        logger.log_metrics({**layers, "train/loss": 1.0 / step}, step=step)
    finish([logger], "success")
    (path,) = offline_runs(tmp_path)
    run = read_offline_run(path)
    keys = {key for row in run.history for key in row}
    assert not any("/layer_" in key for key in keys), "no chart per layer"
    assert any(key.startswith("align/by_layer") for key in keys)
    assert [row["trainer/global_step"] for row in run.rows("train/loss")] == [10, 20]

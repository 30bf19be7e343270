"""Tier 4: sweeps through submitit (the engine of Hydra's SLURM launcher) and SLURM itself.

A sweep with ``hydra/launcher=submitit_local`` runs each job in its own process, as SLURM does;
the launcher presets ask SLURM for the resources the trainer will use; plain ``ddp`` is refused
only where it would re-run the sweep; a job started with SLURM's environment variables joins
Lightning's SLURM cluster environment and takes its thread count from SLURM.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import cli
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from dlt_runner import CONFIG_DIR
from dlt_runner.cli import quiet_launcher_schema_notice
from dlt_runner.core import config_checks
from dlt_runner.core.errors import ConfigError
from dlt_runner.core.wandb_reader import offline_runs, read_offline_run

pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason="needs the slurm extra")

TINY = [
    "experiment=imde/pendulum",
    "trainer.max_steps=10",
    "data.n_train=64",
    "model.energy_horizon=0",
]


def _ok(result) -> None:
    assert result.returncode == 0, result.stderr[-3000:]


def _launcher(*overrides: str) -> dict:
    quiet_launcher_schema_notice()
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("config", overrides=list(overrides), return_hydra_config=True)
    return OmegaConf.to_container(cfg.hydra.launcher, resolve=True)


def _sweep_ends_ok(tmp_path: Path, *extra: str) -> None:
    sweep = tmp_path / "sweep"
    _ok(
        cli(
            "dlt-run",
            "-m",
            *TINY,
            *extra,
            "model.integrator=euler,midpoint",
            "hydra/launcher=submitit_local",
            f"hydra.sweep.dir={sweep}",
            cwd=tmp_path,
        )
    )
    groups, ids = set(), set()
    for job in ("0", "1"):
        assert json.loads((sweep / job / "metrics.json").read_text())["status"] == "ok"
        (wandb_file,) = offline_runs(sweep / job)
        run = read_offline_run(wandb_file)
        assert run.exit_code == 0, "the job's W&B run must be finished"
        groups.add(run.group)
        ids.add(run.run_id)
    assert groups == {f"imde_pendulum-{sweep.name}"} and len(ids) == 2
    assert (sweep / ".submitit").is_dir(), "the jobs went through submitit"


@pytest.mark.slow
def test_submitit_local_sweep_runs_each_job_in_its_own_process(tmp_path):
    _sweep_ends_ok(tmp_path)


@pytest.mark.slow
def test_submitit_local_sweep_runs_ddp_spawn_inside_each_job(tmp_path):
    _sweep_ends_ok(tmp_path, "trainer=ddp_sim")


def test_multinode_trainer_asks_slurm_for_its_nodes_tasks_and_gpus():
    launcher = _launcher("experiment=imde/pendulum", "trainer=multinode", "hydra/launcher=slurm")
    assert launcher["_target_"].endswith("SlurmLauncher")
    assert (launcher["nodes"], launcher["tasks_per_node"], launcher["gpus_per_node"]) == (2, 4, 4)
    assert {"partition", "timeout_min", "mem_gb", "account"} <= set(launcher)
    plain = _launcher(
        "experiment=imde/pendulum", "trainer=multinode", "hydra/launcher=submitit_slurm"
    )
    assert (plain["nodes"], plain["tasks_per_node"], plain["gpus_per_node"]) == (2, 4, 4)


@pytest.mark.parametrize(
    ("overrides", "nodes", "tasks", "gpus", "cpus"),
    [
        (["trainer=cpu", "threads=3"], 1, 1, None, 3),
        (["trainer=ddp_sim"], 1, 1, None, 1),  # ddp_spawn starts its own processes
        (["trainer=gpu"], 1, 1, 1, 1),
        (["trainer=fsdp"], 1, 2, 2, 1),
        (["trainer=multinode", "trainer.num_nodes=3", "trainer.devices=8"], 3, 8, 8, 1),
    ],
)
def test_launcher_resources_follow_the_trainer(overrides, nodes, tasks, gpus, cpus):
    launcher = _launcher("experiment=imde/pendulum", "hydra/launcher=submitit_slurm", *overrides)
    resources = tuple(launcher[k] for k in ("nodes", "tasks_per_node", "gpus_per_node"))
    assert resources + (launcher["cpus_per_task"],) == (nodes, tasks, gpus, cpus)


def test_threads_auto_leaves_cpus_per_task_to_the_cluster():
    launcher = _launcher("experiment=imde/pendulum_paper", "hydra/launcher=submitit_local")
    assert launcher["cpus_per_task"] is None


def test_plain_ddp_is_refused_only_by_launchers_that_run_the_sweep_in_the_command():
    cfg = OmegaConf.create({"trainer": {"strategy": "ddp"}})
    plugins = "hydra_plugins.hydra_submitit_launcher.submitit_launcher"
    for launcher in (
        "hydra._internal.core_plugins.basic_launcher.BasicLauncher",
        "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher",
    ):
        with pytest.raises(ConfigError, match="submitit"):
            config_checks.check_strategy(cfg, multirun=True, launcher=launcher)
    for launcher in (f"{plugins}.SlurmLauncher", f"{plugins}.LocalLauncher"):
        config_checks.check_strategy(cfg, multirun=True, launcher=launcher)


#: The variables Lightning's SLURMEnvironment reads, for a 1-node, 1-task allocation.
SLURM_ONE_TASK = {
    "SLURM_NTASKS": "1",
    "SLURM_NTASKS_PER_NODE": "1",
    "SLURM_NNODES": "1",
    "SLURM_JOB_NAME": "dlt_run",  # not "bash"/"interactive": a batch job
    "SLURM_JOB_ID": "4242",
    "SLURM_PROCID": "0",
    "SLURM_LOCALID": "0",
    "SLURM_NODEID": "0",
    "SLURM_NODELIST": "localhost",
    "SLURM_CPUS_PER_TASK": "2",
}


@pytest.mark.slow
def test_a_job_under_slurm_joins_lightnings_slurm_environment(tmp_path):
    run_dir = tmp_path / "slurm_job"
    _ok(
        cli(
            "dlt-run",
            *TINY,
            "+trainer.strategy=ddp",  # plain DDP: SLURM started the one process it needs
            "threads=auto",
            "logger=csv",
            "test=false",
            f"hydra.run.dir={run_dir}",
            cwd=tmp_path,
            env=SLURM_ONE_TASK,
        )
    )
    assert json.loads((run_dir / "metrics.json").read_text())["status"] == "ok"
    log = (run_dir / "dlt_run.log").read_text()
    assert "cluster environment: SLURMEnvironment (1 process(es) on 1 node(s))" in log


def test_threads_auto_takes_slurms_cpus_per_task(monkeypatch):
    import torch

    from dlt_runner.run import Runtime, _set_threads

    before = torch.get_num_threads()
    try:
        monkeypatch.setenv("SLURM_CPUS_PER_TASK", "3")
        _set_threads("auto", Runtime(run_dir=Path("."), parallel_launcher=True))
        assert torch.get_num_threads() == 3
        monkeypatch.delenv("SLURM_CPUS_PER_TASK")
        _set_threads("auto", Runtime(run_dir=Path("."), parallel_launcher=True))
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)

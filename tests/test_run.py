"""Tier 4: the runner end to end, through its command line (subprocesses, like a user).

Each test runs the IMDE CPU experiment with few steps; together they cover the run-dir
contract, W&B offline contents, multirun with both launchers, resume after SIGKILL (W&B run
and CSV history continued), a diverging run, ddp on 2 CPU processes, and the progress bar.
Exact resume at many kill points: tests/test_resume.py; user errors: tests/test_user_errors.py.
"""

from __future__ import annotations

import csv
import fcntl
import json
import os
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest
from conftest import ROOT, cli

from dlt_runner.core.wandb_reader import offline_runs, read_offline_run

SHORT = [
    "experiment=imde/pendulum",
    "trainer.max_steps=100",
    "trainer.check_val_every_n_epoch=1",
    "data.n_train=200",
]


def _metrics(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


def _ok(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 0, result.stderr[-3000:]


def test_single_run_honours_the_run_dir_contract_and_logs_to_wandb_offline(tmp_path):
    run_dir = tmp_path / "my_run"
    _ok(cli("dlt-run", *SHORT, f"hydra.run.dir={run_dir}", cwd=tmp_path))
    record = _metrics(run_dir)
    assert record["status"] == "ok"
    assert record["timing"]["steps"] == 100 and record["timing"]["fit_seconds"] > 0
    assert {"train/loss", "test/loss", "analysis/err_true", "analysis/energy_drift"} <= set(
        record["metrics"]
    )
    for path in (
        ".hydra/config.yaml",
        ".hydra/overrides.yaml",
        "checkpoints/last.ckpt",
        "checkpoints/best.ckpt",
        "csv/metrics.csv",
    ):
        assert (run_dir / path).exists(), path
    (wandb_file,) = offline_runs(run_dir)
    wandb_run = read_offline_run(wandb_file)
    assert wandb_run.group == f"imde_pendulum-{run_dir.name}" and wandb_run.tags == ["imde"]
    assert wandb_run.config["model"]["integrator"] == "euler"
    assert wandb_run.config["trainer"]["max_steps"] == 100, "the full resolved config is logged"
    assert len(wandb_run.series("train/loss")) >= 1
    assert wandb_run.summary["analysis/err_true"] == pytest.approx(
        record["metrics"]["analysis/err_true"]
    )


@pytest.mark.parametrize("launcher", ["basic", "joblib"])
def test_multirun_gives_one_finished_wandb_run_per_job(tmp_path, launcher):
    sweep = tmp_path / "sweep"
    result = cli(
        "dlt-run",
        "-m",
        *SHORT,
        "model.integrator=euler,midpoint",
        f"hydra/launcher={launcher}",
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
    )
    _ok(result)
    ids, names = set(), set()
    for job in ("0", "1"):
        assert _metrics(sweep / job)["status"] == "ok"
        (wandb_file,) = offline_runs(sweep / job)
        wandb_run = read_offline_run(wandb_file)
        assert wandb_run.group == f"imde_pendulum-{sweep.name}" and wandb_run.exit_code == 0
        ids.add(wandb_run.run_id)
        names.add(wandb_run.name)
    assert len(ids) == 2, "each job must log to its own W&B run"
    assert any("model.integrator=midpoint" in name for name in names)
    _ok(cli("dlt-report", str(sweep), cwd=tmp_path))
    assert (sweep / "summary.csv").read_text().count("\n") == 3


def test_resume_after_sigkill_ends_like_an_uninterrupted_run(tmp_path):
    long = [
        "experiment=imde/pendulum",
        "trainer.max_steps=600",
        "data.n_train=300",
        "trainer.check_val_every_n_epoch=1",
        "model.log_every_n_steps=10",
        "model.energy_horizon=0",
        "test=false",
    ]
    reference = tmp_path / "reference"
    _ok(cli("dlt-run", *long, f"hydra.run.dir={reference}", cwd=tmp_path))

    # The run holds still at step 300 (after several checkpoints) and is SIGKILLed from
    # outside with its whole process group, W&B's service included.
    run_dir, marker = tmp_path / "killed", tmp_path / "paused"
    env = {
        **os.environ,
        "DLT_ROOT": str(tmp_path),
        "WANDB_MODE": "offline",
        "PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")]),
    }
    pause = ["+callbacks.pause._target_=resume_kill.PauseAt", "+callbacks.pause.step=300"]
    process = subprocess.Popen(
        [sys.executable, "-m", "dlt_runner", *long, *pause, f"+callbacks.pause.marker={marker}"]
        + [f"hydra.run.dir={run_dir}"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.time() + 300
    while not marker.exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert marker.exists(), f"the run did not reach step 300 (exit code {process.poll()})"
    assert (run_dir / "checkpoints" / "last.ckpt").exists()
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert not (run_dir / "metrics.json").exists(), "the run must be killed before it finishes"

    _ok(cli("dlt-run", *long, f"hydra.run.dir={run_dir}", "ckpt_path=last", cwd=tmp_path))
    resumed, uninterrupted = _metrics(run_dir)["metrics"], _metrics(reference)["metrics"]
    for name in ("train/loss", "val/loss", "analysis/err_true", "analysis/err_imde"):
        assert resumed[name] == pytest.approx(uninterrupted[name], rel=1e-9, abs=1e-12), name
    # offline-run-<time>-<id>: the killed run may not have flushed its records, its dir name is
    # what W&B syncs it by.
    run_ids = {path.parent.name.rsplit("-", 1)[1] for path in offline_runs(run_dir)}
    assert len(offline_runs(run_dir)) == 2 and len(run_ids) == 1, "resume logs to the same W&B run"
    assert read_offline_run(offline_runs(run_dir)[-1]).run_id in run_ids
    # The CSV history holds every logged row once: those from before the kill and after it.
    history, expected = _csv_rows(run_dir), _csv_rows(reference)
    assert [row["step"] for row in history] == [row["step"] for row in expected]
    assert [row["train/loss"] for row in history] == [row["train/loss"] for row in expected]


def _csv_rows(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "csv" / "metrics.csv", newline="") as handle:
        return [row for row in csv.DictReader(handle) if row.get("train/loss")]


def test_diverging_run_is_a_result_and_the_sweep_goes_on(tmp_path):
    sweep = tmp_path / "sweep"
    result = cli(
        "dlt-run",
        "-m",
        *SHORT,
        "model.optimizer._target_=torch.optim.SGD",
        "model.optimizer.lr=1e6,1e-3",
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
        env={"WANDB_MODE": "disabled"},
    )
    _ok(result)
    diverged, fine = _metrics(sweep / "0"), _metrics(sweep / "1")
    assert diverged["status"] == "diverged" and diverged["metrics"]["diverged_at_step"] <= 100
    assert fine["status"] == "ok"


def test_ddp_on_two_cpu_processes(tmp_path):
    run_dir = tmp_path / "ddp"
    _ok(cli("dlt-run", *SHORT, "trainer=ddp_sim", f"hydra.run.dir={run_dir}", cwd=tmp_path))
    record = _metrics(run_dir)
    assert record["status"] == "ok" and record["timing"]["steps"] == 100
    assert {"test/loss", "analysis/err_true"} <= set(record["metrics"])


def test_optuna_search_runs_trials(tmp_path):
    # No hydra.sweep.dir: the sweeper resolves the default one before Hydra's runtime is set.
    result = cli(
        "dlt-run",
        "-m",
        *SHORT,
        "hparams_search=imde_optuna",
        "hydra.sweeper.n_trials=2",
        "hydra.sweeper.sampler.n_startup_trials=2",
        cwd=tmp_path,
        env={"WANDB_MODE": "disabled"},
    )
    _ok(result)
    (results,) = (tmp_path / "outputs").rglob("optimization_results.yaml")
    assert all(_metrics(results.parent / job)["status"] == "ok" for job in ("0", "1"))


def test_composing_and_help_stay_free_of_heavy_imports(tmp_path):
    probe = (
        "import sys\n"
        "sys.argv = ['dlt-run', 'experiment=imde/pendulum', '--cfg', 'job']\n"
        "from dlt_runner.cli import run_main\n"
        "try:\n    run_main()\nexcept SystemExit:\n    pass\n"
        "print('HEAVY', sorted(m for m in ('torch', 'pytorch_lightning', 'wandb') "
        "if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "DLT_ROOT": str(tmp_path)},
    )
    assert "integrator: euler" in result.stdout
    assert "HEAVY []" in result.stdout, result.stdout[-500:]


def test_progress_bar_counts_optimiser_steps_on_a_terminal_only(tmp_path):
    env = {
        k: v for k, v in os.environ.items() if k not in ("DLT_PROGRESS_REFRESH", "WANDB_SERVICE")
    }
    env |= {"DLT_ROOT": str(tmp_path), "WANDB_MODE": "disabled"}
    command = [sys.executable, "-m", "dlt_runner", *SHORT, "logger=none", "test=false"]
    primary, secondary = os.openpty()
    # A new pseudo-terminal is 0 columns wide; give it a real terminal's size.
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))
    process = subprocess.Popen(
        [*command, f"hydra.run.dir={tmp_path / 'tty'}"],
        cwd=tmp_path,
        env=env,
        stdin=secondary,
        stdout=secondary,
        stderr=secondary,
    )
    os.close(secondary)
    chunks = []
    while True:
        try:
            chunk = os.read(primary, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(primary)
    assert process.wait(timeout=600) == 0
    terminal = b"".join(chunks).decode(errors="replace")
    assert "100/100" in terminal, terminal[-2000:]
    assert "step/s" in terminal or "s/step" in terminal, "rate shown"
    assert "Epoch 0" not in terminal, "Lightning's per-epoch bar is replaced"
    assert "running NeuralODEModule.analysis" in terminal

    piped = cli(
        "dlt-run",
        *SHORT,
        "logger=none",
        "test=false",
        f"hydra.run.dir={tmp_path / 'pipe'}",
        cwd=tmp_path,
        env={"DLT_PROGRESS_REFRESH": ""},
    )
    _ok(piped)
    assert "100/100" not in piped.stderr + piped.stdout, "no bar when output is not a terminal"

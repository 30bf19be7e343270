"""Fixed cost per job: whole ``dlt-run`` processes of one optimiser step against bare imports.

Each command runs as a whole process, ``--repeats`` times after one warm-up, in turn with
the yardstick (bare ``import torch, pytorch_lightning, wandb, hydra``), so a drift in the
machine's speed hits both. Wall time is a monotonic clock around the process; CPU time is
user + system of the process and of the children it waited for (``os.wait4``), which
includes the joblib workers of a sweep. Medians are printed as a Markdown table, with each
command's ratio to the yardstick taken pair by pair.

    python -m benchmarks.fixed_cost [--repeats 5] [--checkout DIR]

``--checkout DIR`` runs the jobs with the ``dlt_runner`` of another checkout (e.g. a
``git worktree`` of an older commit) and the same interpreter, for before/after rows.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BARE_IMPORTS = [sys.executable, "-c", "import torch, pytorch_lightning, wandb, hydra"]
FROZEN_IMPORTS = (
    "import gc; gc.disable(); import torch, pytorch_lightning, wandb, hydra; gc.freeze(); "
    "gc.enable()"
)
#: One optimiser step of the IMDE pendulum experiment; the energy rollout (50 time units of
#: RK4) is off. ``analysis off`` also skips the trajectory comparison against the true and
#: the IMDE flows (the paper's measurement, about 0.1 s), to show the runner's cost alone.
ONE_STEP = ["experiment=imde/pendulum", "trainer.max_steps=1", "model.energy_horizon=0"]
NO_ANALYSIS = ["model.trajectory_horizon=0"]
SWEEP = ["seed=range(8)", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]


def cases(out: Path) -> dict[str, list[str]]:
    run = [sys.executable, "-m", "dlt_runner"]
    return {
        # The yardstick's imports made as a run makes them (dlt_runner/core/startup.py).
        "bare imports, collector paused then frozen": [sys.executable, "-c", FROZEN_IMPORTS],
        "one 1-step job": [*run, *ONE_STEP, f"hydra.run.dir={out}/one"],
        "one 1-step job, analysis off": [*run, *ONE_STEP, *NO_ANALYSIS, f"hydra.run.dir={out}/a"],
        "8 one-step jobs, joblib, 2 at a time": [
            *run,
            "-m",
            *ONE_STEP,
            *SWEEP,
            f"hydra.sweep.dir={out}/sweep",
        ],
        "8 one-step jobs, joblib, 2 at a time, analysis off": [
            *run,
            "-m",
            *ONE_STEP,
            *NO_ANALYSIS,
            *SWEEP,
            f"hydra.sweep.dir={out}/sweep_a",
        ],
    }


def timed(command: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """(wall s, CPU s) of one whole process and the children it waited for."""
    started = time.perf_counter()
    process = subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    stderr = process.stderr.read().decode(errors="replace") if process.stderr else ""
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({process.returncode}):\n{stderr[-2000:]}")
    return wall, usage.ru_utime + usage.ru_stime


def measure(repeats: int, checkout: Path) -> list[dict[str, float | str]]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline", "DLT_ROOT": "."}
    env.pop("WANDB_SERVICE", None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(checkout), env.get("PYTHONPATH")]))
    rows = []
    with tempfile.TemporaryDirectory(prefix="dlt_fixed_cost_") as folder:
        out = Path(folder)
        bare: list[tuple[float, float]] = []
        for name, command in cases(out).items():
            pairs = []
            for repeat in range(repeats + 1):
                job = timed(command, out, env)
                yardstick = timed(BARE_IMPORTS, out, env)
                if repeat:  # the first pair warms the file cache
                    pairs.append((job, yardstick))
            bare += [yardstick for _, yardstick in pairs]
            rows.append(_row(name, pairs))
            print(_line(rows[-1]), flush=True)
        rows.insert(0, _row("bare imports", [(b, b) for b in bare]))
    return rows


def _row(name: str, pairs: list[tuple[tuple[float, float], tuple[float, float]]]) -> dict:
    median = statistics.median
    return {
        "what": name,
        "wall": median(job[0] for job, _ in pairs),
        "cpu": median(job[1] for job, _ in pairs),
        "wall_ratio": median(job[0] / bare[0] for job, bare in pairs),
        "cpu_ratio": median(job[1] / bare[1] for job, bare in pairs),
        "bare_wall": median(bare[0] for _, bare in pairs),
        "bare_cpu": median(bare[1] for _, bare in pairs),
    }


def _line(row: dict) -> str:
    return (
        f"| {row['what']} | {row['wall']:.2f} | {row['wall_ratio']:.2f}x "
        f"({row['wall'] - row['bare_wall']:+.2f}) | {row['cpu']:.2f} | "
        f"{row['cpu_ratio']:.2f}x ({row['cpu'] - row['bare_cpu']:+.2f}) |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--checkout", type=Path, default=Path(__file__).resolve().parents[1])
    args = parser.parse_args()
    print(
        "| what | wall s | wall vs bare imports (diff s) | CPU s | CPU vs bare imports (diff s) |\n"
        "|---|---|---|---|---|",
        flush=True,
    )
    rows = measure(args.repeats, args.checkout.resolve())
    print("\nwith the bare-import row first:")
    for row in rows:
        print(_line(row))


if __name__ == "__main__":
    main()

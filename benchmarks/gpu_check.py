"""``make gpu-check``: every paper's CPU-scale experiment on the GPU path, into ``GPU.md``.

For each experiment ``conf/experiment/<paper>/<name>.yaml`` that is not a paper-scale preset
(``*_paper.yaml``), a few hundred optimiser steps each of:

- ``cpu``: the reference (``trainer=cpu``);
- ``gpu-32``: one GPU, ``trainer.precision=32-true``;
- ``gpu-bf16``: one GPU, ``bf16-mixed`` (skipped where the experiment's maths is float64:
  ``data.dtype=float64`` / ``trainer.precision=64-true``; there ``gpu-64`` runs instead);
- ``ddp``: plain DDP on all visible GPUs (``trainer=ddp``), at the experiment's precision;
- ``fsdp``: FSDP on all visible GPUs (``trainer=fsdp``), ``bf16-mixed`` where allowed.

Each run is a subprocess through the runner (Lightning launches DDP/FSDP ranks itself). The
table records status, ms per optimiser step (fit time / steps), the peak GPU memory torch
allocated on rank 0, and the largest relative difference of a final ``test/`` or
``analysis/`` metric from the CPU run. On a machine without a CUDA GPU it says so and exits 0.

    python -m benchmarks.gpu_check [--steps 300] [--only imde/pendulum] [--out GPU.md]
    python -m benchmarks.gpu_check --plan      # the commands, composed but not run
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from dlt_runner import CONFIG_DIR

#: Set in a check's subprocess: its argv is a run's overrides; the value is where rank 0
#: writes the peak GPU memory (Lightning's DDP ranks re-execute this module with the same env).
JOB_ENV = "DLT_GPU_CHECK_JOB"
FLOAT64_PRECISIONS = ("64", "64-true", "double")
#: Where ``python -m benchmarks.gpu_check`` finds this module.
REPOSITORY = Path(__file__).resolve().parents[1]


@dataclass
class Check:
    """One run of the check: an experiment under one trainer variant."""

    experiment: str
    variant: str
    overrides: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.experiment} [{self.variant}]"


def cpu_experiments(config_dir: Path = CONFIG_DIR) -> list[str]:
    """``<paper>/<name>`` of every experiment that is not a paper-scale preset."""
    root = config_dir / "experiment"
    return sorted(
        str(path.relative_to(root).with_suffix(""))
        for path in root.glob("*/*.yaml")
        if not path.stem.endswith("_paper")
    )


def compose(overrides: list[str]):
    """The run config these overrides compose to (Hydra's compose API; nothing runs)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    if not GlobalHydra.instance().is_initialized():
        initialize_config_dir(str(CONFIG_DIR), version_base="1.3")  # stays initialised
    return hydra_compose("config", overrides=overrides)


@functools.cache
def needs_float64(experiment: str) -> bool:
    cfg = compose([f"experiment={experiment}"])
    precision = str(cfg.trainer.get("precision", "32-true"))
    return (cfg.data or {}).get("dtype") == "float64" or precision in FLOAT64_PRECISIONS


def plan(steps: int, devices: int, only: list[str] | None = None) -> list[Check]:
    """Every run the check makes, in order (the CPU reference first for each experiment)."""
    checks = []
    for experiment in cpu_experiments():
        if only and experiment not in only:
            continue
        base = [f"experiment={experiment}", f"trainer.max_steps={steps}", "logger=csv"]
        float64 = needs_float64(experiment)
        checks.append(Check(experiment, "cpu", [*base, "trainer=cpu"]))
        if float64:
            checks.append(Check(experiment, "gpu-64", [*base, "trainer=gpu"]))
        else:
            checks.append(
                Check(experiment, "gpu-32", [*base, "trainer=gpu", "trainer.precision=32-true"])
            )
            checks.append(
                Check(
                    experiment, "gpu-bf16", [*base, "trainer=gpu", "trainer.precision=bf16-mixed"]
                )
            )
        checks.append(
            Check(experiment, "ddp", [*base, "trainer=ddp", f"trainer.devices={devices}"])
        )
        fsdp = [*base, "trainer=fsdp", f"trainer.devices={devices}"]
        if float64:  # the preset's bf16-mixed is refused by float64 experiments
            fsdp.append("trainer.precision=64-true")
        checks.append(Check(experiment, "fsdp", fsdp))
    return checks


# --------------------------------------------------------------------------- running
def _job_main(overrides: list[str]) -> None:
    """A check's subprocess: one run through the runner's command line, then rank 0's peak."""
    from dlt_runner.cli import run_main

    sys.argv = [sys.argv[0], *overrides]
    try:
        run_main()
    finally:
        rank = os.environ.get("LOCAL_RANK", "0") == "0" and os.environ.get("NODE_RANK", "0") == "0"
        if rank:
            import torch

            peak = torch.cuda.max_memory_allocated() if torch.cuda.is_available() else 0
            Path(os.environ[JOB_ENV]).write_text(json.dumps({"peak_bytes": peak}))


def run_check(check: Check, root: Path, timeout: float) -> dict:
    """Run one check in a subprocess; its status, ms/step, peak memory and final metrics."""
    run_dir = root / check.experiment.replace("/", "_") / check.variant
    peak_file = run_dir.with_suffix(".peak.json")
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, JOB_ENV: str(peak_file), "WANDB_MODE": "disabled", "DLT_ROOT": str(root)}
    command = [sys.executable, "-m", "benchmarks.gpu_check", *check.overrides]
    command.append(f"hydra.run.dir={run_dir}")
    started = time.perf_counter()
    try:
        result = subprocess.run(
            command,
            cwd=REPOSITORY,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        error = result.stderr.strip().splitlines()[-1:] if result.returncode else []
    except subprocess.TimeoutExpired:
        error = [f"timed out after {timeout:.0f} s"]
    row = {"wall_s": time.perf_counter() - started, "status": "failed", "metrics": {}}
    metrics_file = run_dir / "metrics.json"
    if metrics_file.exists():
        record = json.loads(metrics_file.read_text())
        steps = record["timing"]["steps"]
        row.update(status=record["status"], metrics=record["metrics"], steps=steps)
        if steps:
            row["ms_per_step"] = 1000 * record["timing"]["fit_seconds"] / steps
    if error:
        row["error"] = error[0][:160]
    if peak_file.exists():
        row["peak_mib"] = json.loads(peak_file.read_text())["peak_bytes"] / 2**20
    return row


def largest_difference(metrics: dict, reference: dict) -> tuple[str, float] | None:
    """The final metric (test/ or analysis/) that moved most from the CPU run, relatively."""
    worst = None
    for key, value in metrics.items():
        if not key.startswith(("test/", "analysis/")) or key not in reference:
            continue
        ref = reference[key]
        difference = abs(value - ref) / max(abs(ref), 1e-8)
        if worst is None or difference > worst[1]:
            worst = (key, difference)
    return worst


def markdown(checks: list[Check], rows: list[dict], device: str, steps: int) -> str:
    lines = [
        "# GPU check",
        "",
        f"Every CPU-scale experiment, {steps} optimiser steps per run, on {device}: status, ms "
        "per optimiser step (fit time / steps), peak GPU memory torch allocated on rank 0, "
        "and the final test/analysis metric that differs most (relatively) from the same run "
        "on the CPU. Regenerate with `make gpu-check`.",
        "",
        "| experiment | variant | status | ms/step | peak GPU MiB | largest difference from CPU |",
        "|---|---|---|---|---|---|",
    ]
    reference: dict[str, dict] = {}
    for check, row in zip(checks, rows, strict=True):
        if check.variant == "cpu":
            reference[check.experiment] = row["metrics"]
        worst = largest_difference(row["metrics"], reference.get(check.experiment, {}))
        difference = (
            "" if worst is None or check.variant == "cpu" else f"{worst[0]}: {worst[1]:.2e}"
        )
        status = row["status"] + (f" ({row['error']})" if row.get("error") else "")
        ms = f"{row['ms_per_step']:.2f}" if "ms_per_step" in row else ""
        peak = f"{row['peak_mib']:.0f}" if row.get("peak_mib") else ""
        lines.append(
            f"| {check.experiment} | {check.variant} | {status} | {ms} | {peak} | {difference} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    if os.environ.get(JOB_ENV):
        _job_main(sys.argv[1:] if argv is None else argv)
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--only", nargs="*", help="experiments, e.g. imde/pendulum")
    parser.add_argument("--out", type=Path, default=Path("GPU.md"))
    parser.add_argument("--timeout", type=float, default=600, help="seconds per run")
    parser.add_argument("--plan", action="store_true", help="compose every run, run nothing")
    args = parser.parse_args(argv)

    import torch

    devices = torch.cuda.device_count() if torch.cuda.is_available() else 0
    checks = plan(args.steps, max(devices, 1), args.only)
    if args.plan:
        for check in checks:
            compose(check.overrides)
            print(" ".join(["dlt-run", *check.overrides]))
        return 0
    if devices == 0:
        print("gpu-check: no CUDA GPU on this machine; nothing to check (exit 0)")
        return 0
    device = f"{devices} x {torch.cuda.get_device_name(0)}, torch {torch.__version__}"
    rows = []
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as tmp:
        for check in checks:
            row = run_check(check, Path(tmp), args.timeout)
            rows.append(row)
            print(
                f"{check.name}: {row['status']} {row.get('ms_per_step', 0):.2f} ms/step", flush=True
            )
    args.out.write_text(markdown(checks, rows, device, args.steps))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

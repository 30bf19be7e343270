"""Run records: the finished jobs of a sweep, read back from their run dirs.

Claims (:mod:`dlt_runner.sweeps.claims`) and reports (:mod:`dlt_runner.sweeps.report`) both
read sweeps through this module; neither imports the other for it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from statistics import mean
from typing import Any

from omegaconf import OmegaConf

from dlt_runner.core.metrics_file import read_metrics


@dataclass
class Run:
    """One finished job of a sweep: its overrides, status and final metrics."""

    sweep: str
    overrides: dict[str, str]
    status: str
    metrics: dict[str, float]
    curves: dict[str, list[float]]
    directory: Path

    def get(self, metric: str) -> float:
        value = self.metrics.get(metric)
        return float("nan") if value is None else float(value)


def select(runs: Iterable[Run], sweep: str | None = None, **overrides: Any) -> list[Run]:
    """Runs of ``sweep`` whose overrides match the keyword arguments.

    Dotted keys go through a dict: ``select(runs, **{"model.integrator": "euler"})``.
    """
    return [
        run
        for run in runs
        if (sweep is None or run.sweep == sweep)
        and all(run.overrides.get(key) == str(value) for key, value in overrides.items())
    ]


def mean_metric(runs: Sequence[Run], metric: str) -> float:
    """Mean of a metric over runs that finished ``ok``; NaN when none did."""
    values = [run.get(metric) for run in runs if run.status == "ok"]
    return mean(values) if values else float("nan")


def group_mean(runs: Sequence[Run], key: str, metric: str) -> dict[str, float]:
    """Mean of ``metric`` per value of override ``key`` (e.g. per integrator, over seeds)."""
    values = sorted({run.overrides.get(key, "") for run in runs})
    return {
        value: mean_metric([r for r in runs if r.overrides.get(key, "") == value], metric)
        for value in values
    }


def job_dirs(sweep_dir: Path) -> list[Path]:
    """The job dirs (those with ``.hydra/overrides.yaml``) of a sweep dir, in job order."""
    return sorted(
        (path.parent.parent for path in sweep_dir.glob("*/.hydra/overrides.yaml")),
        key=_job_order,
    )


def load_runs(sweep_dir: Path, sweep: str) -> list[Run]:
    """Every job of a sweep dir as a :class:`Run`."""
    runs = []
    for job_dir in job_dirs(sweep_dir):
        record = read_metrics(job_dir)
        overrides = dict(
            item.split("=", 1)
            for item in OmegaConf.load(job_dir / ".hydra" / "overrides.yaml")
            if "=" in item
        )
        runs.append(
            Run(
                sweep,
                overrides,
                record.get("status", "failed"),
                {k: v for k, v in record.get("metrics", {}).items() if v is not None},
                record.get("curves", {}),
                job_dir,
            )
        )
    return runs


def _job_order(job_dir: Path) -> tuple[int, str]:
    name = job_dir.name
    return (int(name), name) if name.isdigit() else (1 << 30, name)

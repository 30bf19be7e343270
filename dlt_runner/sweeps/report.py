"""``dlt-report SWEEP_DIR``: one table of a sweep's jobs, its seed means, and plots.

Writes into the sweep dir:
- ``summary.csv``: one row per job — its overrides, status and final metrics;
- ``summary_mean_std.csv`` (and a printed table): mean ± std over ``seed`` per setting;
- ``plots/<metric>_vs_<key>.png``: each final metric against each numeric swept key.
"""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from statistics import mean, stdev

from dlt_runner.core.errors import ConfigError
from dlt_runner.sweeps.runs import Run, load_runs

SUMMARY_FILE = "summary.csv"
MEAN_STD_FILE = "summary_mean_std.csv"


def _columns(runs: Sequence[Run]) -> tuple[list[str], list[str]]:
    keys = sorted({key for run in runs for key in run.overrides})
    metrics = sorted({name for run in runs for name in run.metrics})
    return keys, metrics


def write_summary(sweep_dir: Path) -> Path:
    """``summary.csv``: overrides + status + final metrics, one row per job."""
    runs = load_runs(sweep_dir, sweep_dir.name)
    keys, metrics = _columns(runs)
    path = sweep_dir / SUMMARY_FILE
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["job", *keys, "status", *metrics])
        for run in runs:
            writer.writerow(
                [
                    run.directory.name,
                    *(run.overrides.get(k, "") for k in keys),
                    run.status,
                    *(_cell(run.metrics.get(m)) for m in metrics),
                ]
            )
    return path


def _cell(value: float | None) -> str:
    return "" if value is None else f"{value:.6g}"


def seed_groups(runs: Sequence[Run]) -> dict[tuple[tuple[str, str], ...], list[Run]]:
    """Runs grouped by their overrides without ``seed``."""
    groups: dict[tuple[tuple[str, str], ...], list[Run]] = defaultdict(list)
    for run in runs:
        setting = tuple(sorted((k, v) for k, v in run.overrides.items() if k != "seed"))
        groups[setting].append(run)
    return dict(groups)


def mean_std_rows(runs: Sequence[Run]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of mean ± std over seeds (ok runs only) per setting."""
    keys, metrics = _columns(runs)
    keys = [k for k in keys if k != "seed"]
    header = [*keys, "n_ok", *metrics]
    rows = []
    for setting, group in seed_groups(runs).items():
        chosen = dict(setting)
        ok = [run for run in group if run.status == "ok"]
        row = [chosen.get(k, "") for k in keys] + [f"{len(ok)}/{len(group)}"]
        for metric in metrics:
            values = [run.metrics[metric] for run in ok if metric in run.metrics]
            row.append(_mean_std(values))
        rows.append(row)
    return header, rows


def _mean_std(values: list[float]) -> str:
    values = [v for v in values if v is not None and math.isfinite(v)]
    if not values:
        return ""
    if len(values) == 1:
        return f"{values[0]:.4g}"
    return f"{mean(values):.4g} ± {stdev(values):.2g}"


def plot_swept(runs: Sequence[Run], out_dir: Path) -> list[Path]:
    """For each numeric swept key and final metric: metric (mean ± std over seeds) vs key."""
    keys, metrics = _columns(runs)
    numeric = [
        k
        for k in keys
        if k != "seed"
        and len({r.overrides.get(k) for r in runs}) > 1
        and all(_is_number(r.overrides.get(k)) for r in runs)
    ]
    if not numeric:
        return []
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for key in numeric:
        others = [k for k in keys if k not in (key, "seed")]
        for metric in metrics:
            figure, axis = plt.subplots(figsize=(5, 3.5))
            lines: dict[tuple, dict[float, list[float]]] = defaultdict(lambda: defaultdict(list))
            for run in runs:
                if run.status == "ok" and metric in run.metrics:
                    label = tuple(run.overrides.get(k, "") for k in others)
                    lines[label][float(run.overrides[key])].append(run.metrics[metric])
            for label, points in sorted(lines.items()):
                xs = sorted(points)
                ys = [mean(points[x]) for x in xs]
                errors = [stdev(points[x]) if len(points[x]) > 1 else 0.0 for x in xs]
                name = ", ".join(f"{k}={v}" for k, v in zip(others, label, strict=True)) or metric
                axis.errorbar(xs, ys, yerr=errors, marker="o", capsize=3, label=name)
            axis.set_xlabel(key)
            axis.set_ylabel(metric)
            if len(lines) > 1:
                axis.legend(fontsize=7)
            figure.tight_layout()
            path = out_dir / f"{metric.replace('/', '_')}_vs_{key.replace('/', '_')}.png"
            figure.savefig(path, dpi=100)
            plt.close(figure)
            written.append(path)
    return written


def _is_number(text: str | None) -> bool:
    try:
        float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
    return True


def report(sweep_dir: Path) -> None:
    if not (sweep_dir / "multirun.yaml").exists() and not list(sweep_dir.glob("*/.hydra")):
        raise ConfigError(f"{sweep_dir} is not a sweep dir (no multirun.yaml, no job dirs)")
    runs = load_runs(sweep_dir, sweep_dir.name)
    print(f"summary: {write_summary(sweep_dir)} ({len(runs)} jobs)")
    header, rows = mean_std_rows(runs)
    with (sweep_dir / MEAN_STD_FILE).open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"mean ± std over seeds: {sweep_dir}")
    for column in header:
        table.add_column(column)
    for row in rows:
        table.add_row(*row)
    Console(width=200).print(table)
    for path in plot_swept(runs, sweep_dir / "plots"):
        print(f"plot: {path}")


def main(argv: Sequence[str]) -> int:
    if len(argv) != 1 or argv[0] in ("-h", "--help"):
        print("usage: dlt-report SWEEP_DIR")
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    sweep_dir = Path(argv[0])
    if not sweep_dir.is_dir():
        raise ConfigError(f"no such sweep dir: {sweep_dir}")
    report(sweep_dir)
    return 0

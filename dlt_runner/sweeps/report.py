"""``dlt-report SWEEP_DIR [--html]``: one table of a sweep's jobs, its seed means, and plots.

Writes into the sweep dir:
- ``summary.csv``: one row per job — its overrides, status and final metrics;
- ``summary_mean_std.csv`` (and a printed table): mean ± std over ``seed`` per setting;
- ``plots/<metric>_vs_<key>.png``: each final metric against each swept key;
- ``plots/curve_<name>.png``: each curve the jobs recorded (``metrics.json`` ``curves``: the
  paper's accuracy vs width, alignment vs layer, ...), mean ± std over seeds per setting;
- with ``--html``, ``report.html``: the tables and plots in one self-contained page.

When the jobs logged to W&B, the same tables and plots go to a ``job_type=report`` run of
their group (:mod:`dlt_runner.sweeps.wandb_report`).
"""

from __future__ import annotations

import argparse
import csv
import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path
from statistics import mean, stdev
from typing import Any

from dlt_runner.core.errors import ConfigError
from dlt_runner.sweeps import html as html_page
from dlt_runner.sweeps.html import Table
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
    """Header and rows of mean ± std over seeds (ok runs only) per setting.

    The setting columns are the swept keys; overrides every job shares are left out.
    """
    _, metrics = _columns(runs)
    keys = swept(runs)
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


def swept(runs: Sequence[Run]) -> list[str]:
    """Override keys (other than ``seed``) that take more than one value across the runs."""
    keys, _ = _columns(runs)
    return [k for k in keys if k != "seed" and len({r.overrides.get(k) for r in runs}) > 1]


def plot_swept(runs: Sequence[Run], out_dir: Path) -> list[Path]:
    """For each swept key and final metric: metric (mean ± std over seeds) against the key.

    A numeric key is a line over its values; any other key (an integrator, a net) is a point
    per value. Other swept keys give one series each.
    """
    keys, metrics = _columns(runs)
    axes = swept(runs)
    if not axes:
        return []
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for key in axes:
        numeric = all(_is_number(r.overrides.get(key)) for r in runs)
        others = [k for k in keys if k not in (key, "seed")]
        for metric in metrics:
            lines: dict[tuple, dict[Any, list[float]]] = defaultdict(lambda: defaultdict(list))
            for run in runs:
                value = run.metrics.get(metric)
                if run.status == "ok" and _is_finite(value):
                    label = tuple(run.overrides.get(k, "") for k in others)
                    x = run.overrides.get(key, "")
                    lines[label][float(x) if numeric else x].append(value)
            values = {v for points in lines.values() for vs in points.values() for v in vs}
            if len(values) < 2:  # a constant (e.g. a fixed step size) has nothing to show
                continue
            figure, axis = plt.subplots(figsize=(5, 3.5))
            for label, points in sorted(lines.items()):
                xs = sorted(points)
                ys = [mean(points[x]) for x in xs]
                errors = [stdev(points[x]) if len(points[x]) > 1 else 0.0 for x in xs]
                name = ", ".join(f"{k}={v}" for k, v in zip(others, label, strict=True)) or metric
                style = "-o" if numeric else "o"
                axis.errorbar(xs, ys, yerr=errors, fmt=style, capsize=3, label=name)
            path = out_dir / f"{metric.replace('/', '_')}_vs_{key.replace('/', '_')}.png"
            written.append(_save(figure, axis, (key, metric), len(lines) > 1, path))
    return written


def plot_curves(runs: Sequence[Run], out_dir: Path) -> list[Path]:
    """One figure per recorded curve: a line per setting (mean ± std over its seeds).

    Curves are lists against their own index (a layer, a width, a logged step...); runs of a
    setting whose curves differ in length are drawn up to the shortest. A point that is not a
    finite number (``null`` in ``metrics.json``: a NaN, e.g. a quantity a diverged or stalled
    run never reached) is left out of that index's mean; an index with none is a gap.
    """
    names = sorted({name for run in runs if run.status == "ok" for name in run.curves})
    if not names:
        return []
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    keys = swept(runs)
    written = []
    for name in names:
        figure, axis = plt.subplots(figsize=(5, 3.5))
        drawn = 0
        for setting, group in sorted(seed_groups(runs).items()):
            curves = [r.curves[name] for r in group if r.status == "ok" and r.curves.get(name)]
            if not curves:
                continue
            length = min(len(c) for c in curves)
            columns = [_finite(c[i] for c in curves) for i in range(length)]
            ys = [mean(column) if column else math.nan for column in columns]
            errors = [stdev(column) if len(column) > 1 else 0.0 for column in columns]
            chosen = dict(setting)
            label = ", ".join(f"{k}={chosen.get(k, '')}" for k in keys) or name
            axis.errorbar(range(length), ys, yerr=errors, fmt="-o", ms=3, capsize=2, label=label)
            drawn += 1
        path = out_dir / f"curve_{name.replace('/', '_')}.png"
        written.append(_save(figure, axis, ("index", name), drawn > 1, path))
    return written


def _is_finite(value: Any) -> bool:
    """A number that is not NaN or infinite (``metrics.json`` writes NaN as ``null``)."""
    return isinstance(value, (int, float)) and math.isfinite(value)


def _finite(values: Any) -> list[float]:
    return [v for v in values if _is_finite(v)]


def _save(figure: Any, axis: Any, labels: tuple[str, str], legend: bool, path: Path) -> Path:
    """Label the axes (x, y), add a legend when several lines share them, write and close."""
    import matplotlib.pyplot as plt

    axis.set_xlabel(labels[0])
    axis.set_ylabel(labels[1])
    if legend:
        axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def _is_number(text: str | None) -> bool:
    try:
        float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
    return True


def summary_table(runs: Sequence[Run]) -> Table:
    """One row per job: its swept keys and seed, status and final metrics (numbers, not text)."""
    keys, metrics = _columns(runs)
    keys = [k for k in keys if k in swept(runs) or k == "seed"]
    rows = [
        [
            run.directory.name,
            *(run.overrides.get(k, "") for k in keys),
            run.status,
            *(run.metrics.get(m) for m in metrics),
        ]
        for run in runs
    ]
    return Table("jobs", ["job", *keys, "status", *metrics], rows, text_columns=len(keys) + 2)


def mean_std_table(runs: Sequence[Run]) -> Table:
    header, rows = mean_std_rows(runs)
    return Table("mean ± std over seeds", header, rows, text_columns=len(swept(runs)) + 1)


def report(
    sweep_dir: Path,
    *,
    html: bool = False,
    extra_tables: Sequence[Table] = (),
    quiet: bool = False,
    wandb_name: str = "report",
) -> list[Path]:
    """Write the sweep's summary, mean ± std table and plots (and ``report.html``), and log
    them as a ``job_type=report`` W&B run when the jobs logged to W&B. Returns the files."""
    if not (sweep_dir / "multirun.yaml").exists() and not list(sweep_dir.glob("*/.hydra")):
        raise ConfigError(f"{sweep_dir} is not a sweep dir (no multirun.yaml, no job dirs)")
    runs = load_runs(sweep_dir, sweep_dir.name)
    say = (lambda *_: None) if quiet else print
    written = [write_summary(sweep_dir)]
    say(f"summary: {written[0]} ({len(runs)} jobs)")
    header, rows = mean_std_rows(runs)
    with (sweep_dir / MEAN_STD_FILE).open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    written.append(sweep_dir / MEAN_STD_FILE)
    if not quiet:
        _print_table(f"mean ± std over seeds: {sweep_dir}", header, rows)
    plots = plot_swept(runs, sweep_dir / "plots") + plot_curves(runs, sweep_dir / "plots")
    for path in plots:
        say(f"plot: {path}")
    written += plots
    tables = [*extra_tables, mean_std_table(runs), summary_table(runs)]
    if html:
        page = html_page.write(sweep_dir, f"sweep: {sweep_dir.name}", tables, plots, _notes(runs))
        say(f"html: {page} ({page.stat().st_size / 1024:.0f} KiB)")
        written.append(page)
    from dlt_runner.sweeps.wandb_report import log_report

    folder = log_report(sweep_dir, runs, tables, plots, name=wandb_name)
    if folder is not None:
        say(f"W&B report run: {folder}")
    return written


def _notes(runs: Sequence[Run]) -> list[str]:
    statuses = ", ".join(f"{n} {s}" for s, n in sorted(Counter(r.status for r in runs).items()))
    keys = ", ".join(swept(runs)) or "seed only"
    varying = set(swept(runs)) | {"seed"}
    shared = sorted({f"{k}={v}" for r in runs for k, v in r.overrides.items() if k not in varying})
    return [
        f"{len(runs)} jobs ({statuses}); swept: {keys}.",
        f"every job: {', '.join(shared) or 'no other overrides'}.",
    ]


def _print_table(title: str, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    from rich.console import Console
    from rich.table import Table as RichTable

    table = RichTable(title=title)
    for column in header:
        table.add_column(column)
    for row in rows:
        table.add_row(*row)
    Console(width=200).print(table)


def main(argv: Sequence[str]) -> int:
    """``dlt-report SWEEP_DIR [--html]``."""
    parser = argparse.ArgumentParser(
        prog="dlt-report",
        description="Summarise a sweep dir: summary.csv, mean ± std over seeds, plots; "
        "with --html also one self-contained report.html.",
    )
    parser.add_argument("sweep_dir", type=Path)
    parser.add_argument("--html", action="store_true", help="also write report.html")
    try:
        args = parser.parse_args(list(argv))
    except SystemExit as exit_:
        return int(exit_.code or 0)
    if not args.sweep_dir.is_dir():
        raise ConfigError(f"no such sweep dir: {args.sweep_dir}")
    report(args.sweep_dir, html=args.html)
    return 0

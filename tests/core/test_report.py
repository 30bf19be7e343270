"""dlt-report: summary.csv, mean ± std over seeds, plots of swept numeric keys."""

from __future__ import annotations

import csv

from omegaconf import OmegaConf

from dlt_runner.core.metrics_file import write_metrics
from dlt_runner.sweeps.report import main


def _job(sweep, number, overrides, metrics, status="ok"):
    job = sweep / str(number)
    (job / ".hydra").mkdir(parents=True)
    OmegaConf.save(OmegaConf.create(overrides), job / ".hydra" / "overrides.yaml")
    write_metrics(job, {"status": status, "metrics": metrics})


def test_report_writes_summary_mean_std_and_plots(tmp_path):
    (tmp_path / "multirun.yaml").write_text("{}")
    number = 0
    for step in (0.1, 0.2):
        for seed in (0, 1):
            _job(
                tmp_path,
                number,
                [f"data.step_size={step}", f"seed={seed}"],
                {"analysis/err": step * (1 + seed)},
            )
            number += 1
    _job(tmp_path, number, ["data.step_size=0.3", "seed=0"], {}, status="failed")
    assert main([str(tmp_path)]) == 0
    rows = list(csv.DictReader((tmp_path / "summary.csv").open()))
    assert len(rows) == 5 and rows[-1]["status"] == "failed"
    summary = list(csv.DictReader((tmp_path / "summary_mean_std.csv").open()))
    first = next(row for row in summary if row["data.step_size"] == "0.1")
    assert first["n_ok"] == "2/2" and first["analysis/err"].startswith("0.15 ±")
    assert (tmp_path / "plots" / "analysis_err_vs_data.step_size.png").stat().st_size > 0


def test_report_needs_a_directory(tmp_path):
    assert main([]) == 2

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


def test_categorical_keys_get_plots_constant_metrics_do_not_and_html_holds_everything(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("WANDB_MODE", "disabled")
    (tmp_path / "multirun.yaml").write_text("{}")
    for number, (integrator, seed) in enumerate(
        [("euler", 0), ("euler", 1), ("rk4", 0), ("rk4", 1)]
    ):
        metrics = {"analysis/err": 1.0 + number, "analysis/step_size": 0.1}
        _job(tmp_path, number, [f"model.integrator={integrator}", f"seed={seed}"], metrics)
    assert main([str(tmp_path), "--html"]) == 0
    plots = sorted(path.name for path in (tmp_path / "plots").glob("*.png"))
    assert plots == ["analysis_err_vs_model.integrator.png"]
    page = (tmp_path / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 1
    assert "1.5 ± 0.71" in page and "3.5 ± 0.71" in page  # mean ± std per integrator
    assert page.count("<tr>") == 1 + 2 + 1 + 4  # mean ± std table + jobs table, with headers
    assert not (tmp_path / "wandb").exists(), "no W&B report when the jobs did not log to W&B"


def test_curves_get_one_plot_each_with_a_line_per_setting(tmp_path):
    (tmp_path / "multirun.yaml").write_text("{}")
    for number, (width, seed) in enumerate([(4, 0), (4, 1), (8, 0), (8, 1)]):
        job = tmp_path / str(number)
        (job / ".hydra").mkdir(parents=True)
        OmegaConf.save(
            OmegaConf.create([f"model.width={width}", f"seed={seed}"]),
            job / ".hydra" / "overrides.yaml",
        )
        curve = [width * (i + seed) for i in range(5)]
        write_metrics(
            job, {"status": "ok", "metrics": {"a": 1.0}, "curves": {"analysis/acc": curve}}
        )
    from dlt_runner.sweeps.report import plot_curves
    from dlt_runner.sweeps.runs import load_runs

    paths = plot_curves(load_runs(tmp_path, "s"), tmp_path / "plots")
    assert [p.name for p in paths] == ["curve_analysis_acc.png"]
    assert paths[0].stat().st_size > 0


def test_curves_with_points_a_run_never_reached_are_drawn_and_reported(tmp_path):
    """A NaN in a curve (``null`` in metrics.json: e.g. the error at a train loss one init never
    reached) is left out of that index's mean; an index with no finite point is a gap."""
    (tmp_path / "multirun.yaml").write_text("{}")
    curves = {0: [0.1, float("nan"), float("nan")], 1: [0.3, 0.2, float("nan")]}
    for seed, curve in curves.items():
        _job(tmp_path, seed, [f"seed={seed}"], {"a": 1.0})
        write_metrics(
            tmp_path / str(seed),
            {"status": "ok", "metrics": {"a": 1.0}, "curves": {"analysis/err": curve}},
        )
    from dlt_runner.sweeps.report import plot_curves
    from dlt_runner.sweeps.runs import load_runs

    runs = load_runs(tmp_path, "s")
    assert runs[0].curves["analysis/err"][1] is None, "NaN is written as null"
    (path,) = plot_curves(runs, tmp_path / "plots")
    assert path.stat().st_size > 0
    assert main([str(tmp_path)]) == 0

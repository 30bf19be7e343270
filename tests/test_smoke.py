"""Tier 3: every experiment runs end to end with debug=fast on CPU (in-process, seconds each)."""

from __future__ import annotations

import json

import pytest

from dlt_runner.core.config_checks import available_experiments
from dlt_runner.core.errors import DatasetUnavailable
from dlt_runner.run import Runtime, run


@pytest.mark.parametrize("experiment", available_experiments())
def test_experiment_runs_with_debug_fast(compose, tmp_path, experiment):
    cfg = compose(f"experiment={experiment}", "debug=fast", "trainer=cpu", "threads=1")
    try:
        record = run(cfg, Runtime(run_dir=tmp_path / "run"))
    except DatasetUnavailable as error:
        assert "paths.data_dir" in str(error) or "pip install" in str(error)
        pytest.skip(f"{experiment}: dataset not available offline ({error})")
    assert record["status"] == "ok"
    written = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert written["status"] == "ok" and written["timing"]["steps"] >= 1
    assert any(name.startswith("analysis/") for name in written["metrics"]), "analysis must run"

"""metrics.json: atomic, valid JSON (non-finite numbers become null), readable by everyone."""

from __future__ import annotations

import json
import math

import pytest

from dlt_runner.core.metrics_file import read_metrics, write_metrics


def test_write_then_read_round_trip(tmp_path):
    write_metrics(tmp_path, {"status": "ok", "metrics": {"a": 1.5, "b": math.nan}, "seconds": 2})
    text = (tmp_path / "metrics.json").read_text()
    assert json.loads(text)["metrics"] == {"a": 1.5, "b": None}
    assert read_metrics(tmp_path)["status"] == "ok"
    assert (tmp_path / "metrics.json").stat().st_mode & 0o044 == 0o044
    assert not list(tmp_path.glob("*.tmp")), "the temporary file must be renamed away"


def test_unknown_status_is_refused(tmp_path):
    with pytest.raises(ValueError, match="status"):
        write_metrics(tmp_path, {"status": "great", "metrics": {}})


def test_a_run_without_a_record_reads_as_failed(tmp_path):
    assert read_metrics(tmp_path)["status"] == "failed"

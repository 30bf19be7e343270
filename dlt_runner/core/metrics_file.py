"""``metrics.json``: the record of one run, written atomically (temp file + rename)."""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

METRICS_FILE = "metrics.json"
STATUSES = ("ok", "diverged", "failed")


def _finite_or_none(value: Any) -> Any:
    """JSON has no NaN/inf: a non-finite number is recorded as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, list):
        return [_finite_or_none(item) for item in value]
    if isinstance(value, dict):
        return {key: _finite_or_none(item) for key, item in value.items()}
    return value


def write_metrics(run_dir: str | Path, record: dict[str, Any]) -> Path:
    """Write ``record`` as ``run_dir/metrics.json`` so a reader never sees a half-written file."""
    if record.get("status") not in STATUSES:
        raise ValueError(f"status must be one of {STATUSES}, got {record.get('status')!r}")
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    target = run_dir / METRICS_FILE
    with tempfile.NamedTemporaryFile("w", dir=run_dir, suffix=".tmp", delete=False) as handle:
        json.dump(_finite_or_none(record), handle, indent=2, sort_keys=True)
        handle.write("\n")
        temporary = Path(handle.name)
    temporary.chmod(0o644)  # NamedTemporaryFile creates 0600; the record is for everyone to read
    os.replace(temporary, target)
    return target


def read_metrics(run_dir: str | Path) -> dict[str, Any]:
    """The record of a finished run; a run that never wrote one reads as ``failed``."""
    path = Path(run_dir) / METRICS_FILE
    if not path.exists():
        return {"status": "failed", "metrics": {}, "error": "no metrics.json (run killed?)"}
    return json.loads(path.read_text())

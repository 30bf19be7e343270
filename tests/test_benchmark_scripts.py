"""The scripts behind BENCHMARKS.md's fixed-cost and claim-grid rows read what they claim to."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from benchmarks import claims_overhead, fixed_cost


def _job(folder: Path, fit: float, seconds: float, when: float) -> None:
    folder.mkdir(parents=True)
    record = {"timing": {"fit_seconds": fit}, "seconds": seconds}
    (folder / "metrics.json").write_text(json.dumps(record))
    os.utime(folder / "metrics.json", (when, when))
    # W&B keeps a copy of the record with the run's files: not a second job.
    copy = folder / "wandb" / "offline-run-20261204_100000-abc" / "files" / "metrics.json"
    copy.parent.mkdir(parents=True)
    copy.write_text(json.dumps(record))


def test_claims_overhead_lists_single_papers_and_the_papers_of_all(tmp_path):
    start = time.mktime(time.strptime("2026-12-04_10-00-00", "%Y-%m-%d_%H-%M-%S"))
    single = tmp_path / "2026-12-04_10-00-00_11_imde"
    _job(single / "grid" / "0", fit=2.0, seconds=3.0, when=start + 5)
    _job(single / "grid" / "1", fit=4.0, seconds=5.0, when=start + 8)
    (single / "claims.md").write_text("verdict")
    os.utime(single / "claims.md", (start + 10, start + 10))

    every = tmp_path / "2026-12-04_11-00-00_12_all"
    sweep = every / "gcv_rmt" / "grid"
    _job(sweep / "0", fit=1.0, seconds=1.5, when=start + 3600 + 30)
    (sweep / "multirun.yaml").write_text("{}")
    os.utime(sweep / "multirun.yaml", (start + 3600 + 20, start + 3600 + 20))
    (every / "claims.md").write_text("verdict")
    os.utime(every / "claims.md", (start + 3600 + 60, start + 3600 + 60))

    rows = claims_overhead.table(tmp_path).splitlines()
    assert "| imde | 2 | 10 | 6.0 | 8.0 | 1.7 |" in rows
    assert "| all | 1 | 60 | 1.0 | 1.5 | 60.0 |" in rows
    assert "| all: gcv_rmt | 1 | 10 | 1.0 | 1.5 | 10.0 |" in rows


def test_fixed_cost_rows_pair_each_job_with_the_import_yardstick(compose):
    pairs = [((6.0, 5.0), (5.0, 4.0)), ((8.0, 6.0), (4.0, 4.0)), ((7.0, 5.0), (5.0, 5.0))]
    row = fixed_cost._row("job", pairs)
    assert row["wall"] == 7.0 and row["cpu"] == 5.0
    assert row["wall_ratio"] == 1.4 and row["cpu_ratio"] == 1.25  # medians of the pair ratios
    assert fixed_cost._line(row) == "| job | 7.00 | 1.40x (+2.00) | 5.00 | 1.25x (+1.00) |"
    for name, command in fixed_cost.cases(Path("out")).items():
        if "dlt_runner" in command:
            overrides = [
                a for a in command[3:] if "=" in a and not a.startswith(("hydra", "seed="))
            ]
            cfg = compose(*overrides)
            assert cfg.trainer.max_steps == 1 and cfg.model.energy_horizon == 0, name

"""A sweep's report as a W&B run: ``job_type=report`` in the group of the sweep's jobs.

``dlt-report`` and ``dlt-claims`` log what they compute (the summary table, the mean ± std
table, the plots, and a claim's verdict) into one run beside the jobs it summarises, so the
W&B project shows the sweep and its conclusion together. The run goes wherever the jobs went:
offline runs write ``<sweep_dir>/wandb/offline-run-*``, uploaded with the jobs by
``wandb sync``. Nothing is logged when the jobs did not log to W&B.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from dlt_runner.core.wandb_identity import read_identity
from dlt_runner.sweeps.html import Table
from dlt_runner.sweeps.runs import Run


def sweep_identity(runs: Sequence[Run]) -> dict[str, str] | None:
    """The W&B group, project, entity and mode the sweep's jobs logged to (the most common)."""
    identities = [identity for run in runs if (identity := read_identity(run.directory))]
    if not identities:
        return None
    group, _ = Counter(identity["group"] for identity in identities).most_common(1)[0]
    return next(identity for identity in identities if identity["group"] == group)


def log_report(
    sweep_dir: Path,
    runs: Sequence[Run],
    tables: Sequence[Table],
    plots: Sequence[Path],
    name: str = "report",
) -> Path | None:
    """Log ``tables`` (``wandb.Table``) and ``plots`` (``wandb.Image``) as one report run.

    Returns the run's local folder, or ``None`` when the jobs did not log to W&B or W&B is
    disabled.
    """
    identity = sweep_identity(runs)
    mode = os.environ.get("WANDB_MODE") or (identity or {}).get("mode") or "offline"
    if identity is None or mode == "disabled":
        return None
    import wandb

    run = wandb.init(
        project=identity.get("project") or "dlt_runner",
        entity=identity.get("entity") or None,
        group=identity["group"],
        job_type="report",
        name=name,
        dir=str(sweep_dir),
        mode=mode,
        config={"jobs": len(runs), "ok": sum(run.status == "ok" for run in runs)},
        settings=wandb.Settings(silent=True),
    )
    try:
        run.log({_key(t.title): wandb.Table(columns=t.header, data=t.rows) for t in tables})
        if plots:
            run.log({_key(path.stem, "plots"): wandb.Image(str(path)) for path in plots})
        folder = Path(run.dir).parent
    finally:
        run.finish()
    return folder


def _key(title: str, prefix: str = "tables") -> str:
    """A W&B key from a title: ``mean ± std over seeds`` → ``tables/mean_std_over_seeds``."""
    return f"{prefix}/" + re.sub(r"[^0-9A-Za-z]+", "_", title).strip("_")

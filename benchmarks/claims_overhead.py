"""What a claim grid costs beyond training: ``dlt-claims <paper>`` wall time vs its jobs' fits.

Reads finished ``dlt-claims`` outputs (``outputs/claims/<start>_<pid>_<paper>/`` with
``claims.md``): the wall time is from the start in the folder's name to ``claims.md``'s last
write; each job's ``metrics.json`` gives its fit time (``timing.fit_seconds``) and its whole
``run()`` time (``seconds``). The newest finished invocation of each paper is listed.
The papers of a ``dlt-claims all`` (``<start>_<pid>_all/<paper>/``) are listed as ``all:
<paper>`` rows, with the wall time from the first sweep's start (its ``multirun.yaml``) to
the last job's ``metrics.json``: that excludes the verdict and the reports.

    python -m benchmarks.claims_overhead [outputs/claims]
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path


def job_records(folder: Path) -> list[Path]:
    """The jobs' ``metrics.json`` files below ``folder``; the copies W&B keeps with each run
    (``<job>/wandb/<run>/files/metrics.json``) are not jobs."""
    return [path for path in folder.rglob("metrics.json") if "wandb" not in path.parts]


def invocation(folder: Path) -> dict | None:
    verdict = folder / "claims.md"
    if not verdict.exists():
        return None
    stamp, _, rest = folder.name.partition("_")
    clock, _, rest = rest.partition("_")
    paper = rest.partition("_")[2]
    started = dt.datetime.strptime(f"{stamp}_{clock}", "%Y-%m-%d_%H-%M-%S")
    wall = verdict.stat().st_mtime - started.timestamp()
    fits, runs, jobs = 0.0, 0.0, 0
    for path in job_records(folder):
        record = json.loads(path.read_text())
        fits += record.get("timing", {}).get("fit_seconds", 0.0)
        runs += record.get("seconds", 0.0)
        jobs += 1
    return {"paper": paper, "jobs": jobs, "wall": wall, "fit": fits, "run": runs}


def papers_of_all(folder: Path) -> list[dict]:
    """One row per paper folder of a finished ``dlt-claims all`` (from its files' times)."""
    rows = []
    for paper in sorted(p for p in folder.iterdir() if p.is_dir()):
        starts = [p.stat().st_mtime for p in paper.rglob("multirun.yaml")]
        records = job_records(paper)
        if not starts or not records:
            continue
        ends = [p.stat().st_mtime for p in records]
        jobs = [json.loads(p.read_text()) for p in records]
        rows.append(
            {
                "paper": f"all: {paper.name}",
                "jobs": len(jobs),
                "wall": max(ends) - min(starts),
                "fit": sum(r.get("timing", {}).get("fit_seconds", 0.0) for r in jobs),
                "run": sum(r.get("seconds", 0.0) for r in jobs),
            }
        )
    return rows


def table(root: Path) -> str:
    newest: dict[str, dict] = {}
    for folder in sorted(root.iterdir()):  # names start with the time: later ones win
        row = invocation(folder) if folder.is_dir() else None
        if row and row["jobs"]:
            newest[row["paper"]] = row
        if row and row["paper"] == "all":
            newest.update({r["paper"]: r for r in papers_of_all(folder)})
    lines = [
        "| paper | jobs | wall s | sum of fit s | sum of run() s | wall / sum of fits |",
        "|---|---|---|---|---|---|",
    ]
    for paper, row in sorted(newest.items()):
        ratio = row["wall"] / row["fit"] if row["fit"] else float("nan")
        lines.append(
            f"| {paper} | {row['jobs']} | {row['wall']:.0f} | {row['fit']:.1f} | "
            f"{row['run']:.1f} | {ratio:.1f} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(table(Path(sys.argv[1] if len(sys.argv) > 1 else "outputs/claims")))

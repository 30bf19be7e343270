"""``dlt-claims``: run a paper's claim grid through Hydra multirun and judge its claim.

``conf/claim/<paper>.yaml`` names one or more sweeps; each sweep is an experiment, fixed
overrides and a grid (key -> list of values). Every sweep runs as one ``dlt-run -m`` in its
own subfolder of the claim's dir, with the user's extra overrides applied to every job; then
``dlt_runner.papers.<paper>.claim.verdict(runs)`` reads the results and says whether the
paper's statements hold. A claim compares runs of the same invocation, never stored numbers.
Each sweep dir then gets the ``dlt-report`` files (with ``report.html``), and, when its jobs
logged to W&B, a ``job_type=report`` run holding the tables, the plots and the verdict.
"""

from __future__ import annotations

import datetime as dt
import importlib
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from dlt_runner import CONFIG_DIR
from dlt_runner.core.errors import ConfigError, unknown_choice
from dlt_runner.sweeps.html import Table
from dlt_runner.sweeps.runs import Run, load_runs

# --------------------------------------------------------------------------- verdicts


@dataclass
class Check:
    """One statement of a paper, the numbers measured for it, and whether it holds."""

    statement: str
    measured: str
    holds: bool


@dataclass
class Verdict:
    paper: str
    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def holds(self) -> bool:
        return bool(self.checks) and all(check.holds for check in self.checks)


# --------------------------------------------------------------------------- specs


@dataclass
class Sweep:
    name: str
    experiment: str
    grid: dict[str, list[Any]]
    overrides: list[str]

    def command_overrides(self, extra: Sequence[str]) -> list[str]:
        """Hydra multirun overrides: experiment, fixed ones, the grid, then the user's extras.

        A user's ``seed=N`` moves a seed grid to N, N+1, … (same count); any other extra
        ``key=value`` whose key the grid sweeps replaces that axis.
        """
        grid = dict(self.grid)
        extras = []
        for item in extra:
            key, _, value = item.partition("=")
            if key == "seed" and "seed" in grid:
                start = int(value)
                grid["seed"] = list(range(start, start + len(grid["seed"])))
            elif key in grid:
                grid[key] = [value]
            else:
                extras.append(item)
        swept = [f"{key}={','.join(_text(v) for v in values)}" for key, values in grid.items()]
        return [f"experiment={self.experiment}", *self.overrides, *swept, *extras]


def _text(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_text(v) for v in value) + "]"
    return str(value)


def available_claims(config_dir: Path = CONFIG_DIR) -> list[str]:
    return sorted(path.stem for path in (config_dir / "claim").glob("*.yaml"))


def load_sweeps(paper: str, config_dir: Path = CONFIG_DIR) -> list[Sweep]:
    path = config_dir / "claim" / f"{paper}.yaml"
    if not path.exists():
        raise ConfigError(unknown_choice("paper", paper, ["all", *available_claims(config_dir)]))
    spec = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    return [
        Sweep(name, body["experiment"], dict(body.get("grid", {})), list(body.get("overrides", [])))
        for name, body in spec["sweeps"].items()
    ]


# --------------------------------------------------------------------------- running


def _launcher_overrides(extra: Sequence[str]) -> list[str]:
    """Claims run their jobs in parallel (one thread each) unless the user picks a launcher."""
    if any(item.startswith("hydra/launcher=") for item in extra):
        return []
    jobs = max(1, min(os.cpu_count() or 1, int(os.environ.get("DLT_CLAIM_JOBS", "2"))))
    return ["hydra/launcher=joblib", f"hydra.launcher.n_jobs={jobs}"]


def run_claim(
    paper: str,
    extra: Sequence[str],
    claim_dir: Path,
    launch: Callable[[list[str], dict[str, str]], int] | None = None,
) -> Verdict:
    """Run every sweep of ``paper``'s claim into ``claim_dir`` and return the verdict.

    ``launch(overrides, env)`` runs one multirun; ``env`` names the sweep's W&B group
    (``WANDB_RUN_GROUP``), unique to this invocation, so claims re-run on other seeds or on
    another day are separate groups.
    """
    launch = launch or _launch
    invocation = claim_dir.parent.name if claim_dir.name == paper else claim_dir.name
    runs: list[Run] = []
    for sweep in load_sweeps(paper):
        sweep_dir = claim_dir / sweep.name
        overrides = [
            *sweep.command_overrides(extra),
            *_launcher_overrides(extra),
            f"hydra.sweep.dir={sweep_dir}",
        ]
        code = launch(overrides, {"WANDB_RUN_GROUP": f"{paper}-{sweep.name}-{invocation}"})
        if code == 2:
            raise ConfigError(f"the {paper} claim's sweep '{sweep.name}' was refused (see above)")
        runs.extend(load_runs(sweep_dir, sweep.name))
    claim_module = importlib.import_module(f"dlt_runner.papers.{paper}.claim")
    verdict = claim_module.verdict(runs)
    verdict.paper = paper
    return verdict


def _launch(overrides: list[str], env: dict[str, str]) -> int:
    command = [sys.executable, "-m", "dlt_runner", "-m", *overrides]
    print("+ dlt-run -m " + " ".join(overrides), flush=True)
    # Interleaved progress bars of parallel jobs are noise; the table at the end is the output.
    return subprocess.call(command, env={**os.environ, "DLT_PROGRESS_REFRESH": "0", **env})


def verdict_table(verdict: Verdict) -> Table:
    """The verdict as a table: one row per checked statement."""
    rows = [
        [check.statement, check.measured, "holds" if check.holds else "fails"]
        for check in verdict.checks or [Check("(no checks ran)", "", False)]
    ]
    return Table(f"claim: {verdict.paper}", ["claim", "measured", "result"], rows, text_columns=3)


def render_markdown(verdicts: Sequence[Verdict]) -> str:
    lines = ["| paper | claim | measured | result |", "|---|---|---|---|"]
    for verdict in verdicts:
        for check in verdict.checks or [Check("(no checks ran)", "", False)]:
            result = "holds" if check.holds else "**fails**"
            lines.append(f"| {verdict.paper} | {check.statement} | {check.measured} | {result} |")
    notes = [f"- {v.paper}: {note}" for v in verdicts for note in v.notes]
    return "\n".join(lines + ([""] + notes if notes else [])) + "\n"


def print_table(verdicts: Sequence[Verdict]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="dlt-claims", show_lines=True)
    for column in ("paper", "claim", "measured", "result"):
        table.add_column(column)
    for verdict in verdicts:
        for check in verdict.checks or [Check("(no checks ran)", "", False)]:
            result = "[green]holds[/]" if check.holds else "[bold red]fails[/]"
            table.add_row(verdict.paper, check.statement, check.measured, result)
    Console().print(table)
    for verdict in verdicts:
        for note in verdict.notes:
            print(f"note ({verdict.paper}): {note}")


def main(argv: Sequence[str]) -> int:
    """``dlt-claims <paper>|all [overrides...]`` → exit 0 when every claim holds, else 1."""
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip().splitlines()[0])
        print("usage: dlt-claims <paper>|all [key=value ...]")
        print(f"papers: {', '.join(available_claims())}")
        return 0 if argv else 2
    target, extra = argv[0], list(argv[1:])
    papers = available_claims() if target == "all" else [target]
    if target != "all":
        load_sweeps(target)  # fail fast on an unknown paper
    stamp = dt.datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    root = Path(_outputs_root(extra)) / "claims" / f"{stamp}_{os.getpid()}_{target}"
    verdicts = [
        run_claim(paper, extra, root / paper if target == "all" else root) for paper in papers
    ]
    print_table(verdicts)
    markdown = render_markdown(verdicts)
    root.mkdir(parents=True, exist_ok=True)
    (root / "claims.md").write_text(markdown)
    from dlt_runner.sweeps.report import report

    for paper, verdict in zip(papers, verdicts, strict=True):
        claim_dir = root / paper if target == "all" else root
        for sweep_dir in sorted(p.parent for p in claim_dir.rglob("multirun.yaml")):
            written = report(
                sweep_dir,
                html=True,
                extra_tables=[verdict_table(verdict)],
                quiet=True,
                wandb_name=f"claim {paper}",
            )
            print(f"report: {written[-1] if written[-1].suffix == '.html' else sweep_dir}")
    print(f"claims table: {root / 'claims.md'}")
    return 0 if all(v.holds for v in verdicts) else 1


def _outputs_root(extra: Sequence[str]) -> str:
    for item in extra:
        if item.startswith("paths.outputs_root="):
            return item.split("=", 1)[1]
        if item.startswith("paths.root_dir="):
            return str(Path(item.split("=", 1)[1]) / "outputs")
    return str(Path(os.environ.get("DLT_ROOT", ".")) / "outputs")

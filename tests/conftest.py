"""Shared test fixtures: in-process Hydra composition and quiet, single-threaded runs."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("DLT_PROGRESS_REFRESH", "0")
os.environ.setdefault("OMP_NUM_THREADS", "1")

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True, scope="session")
def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)


@pytest.fixture
def compose(tmp_path: Path) -> Callable[..., object]:
    """compose(*overrides) -> the composed config, with every path under tmp_path."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from dlt_runner import CONFIG_DIR

    def _compose(*overrides: str, return_hydra_config: bool = False):
        GlobalHydra.instance().clear()
        with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
            return hydra_compose(
                "config",
                overrides=[
                    f"paths.root_dir={tmp_path}",
                    f"paths.run_dir={tmp_path / 'run'}",
                    *overrides,
                ],
                return_hydra_config=return_hydra_config,
            )

    yield _compose
    GlobalHydra.instance().clear()


def cli(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 600):
    """Run a console entry point (``dlt-run``, ``dlt-claims``, ``dlt-report``) in a subprocess."""
    import subprocess

    program, *rest = args
    module = {"dlt-run": "dlt_runner", "dlt-claims": None, "dlt-report": None}[program]
    if module:
        command = [sys.executable, "-m", module, *rest]
    else:
        entry = {"dlt-claims": "claims_main", "dlt-report": "report_main"}[program]
        command = [sys.executable, "-c", f"from dlt_runner.cli import {entry}; {entry}()", *rest]
    # WANDB_SERVICE: an in-process wandb.init (e.g. a reader test) points children at its
    # service, which would outlive a killed child and keep its run id "in use".
    inherited = {
        k: v for k, v in os.environ.items() if k not in ("HYDRA_FULL_ERROR", "WANDB_SERVICE")
    }
    full_env = {**inherited, "DLT_ROOT": str(cwd), "WANDB_MODE": "offline", **(env or {})}
    return subprocess.run(
        command, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout
    )

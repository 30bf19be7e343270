"""Fixed costs of a job: what a short run skips and what a worker's later jobs reuse."""

from __future__ import annotations

import subprocess
import sys

from omegaconf import OmegaConf

_PROBE = """
import sys
from wandb.sdk import wandb_run
from dlt_runner.core.loggers import _skip_unstaged_launch_inputs

_skip_unstaged_launch_inputs()
_skip_unstaged_launch_inputs()  # idempotent: wraps once
method = wandb_run.Run._detect_and_apply_job_inputs
assert getattr(method, "_dlt_guarded", False)
method(object())
print("launch imported:", "wandb.sdk.launch" in sys.modules)
from wandb.sdk.launch.inputs.internal import StagedLaunchInputs
calls = []
StagedLaunchInputs.apply = lambda self, run: calls.append(run)
method("run")
print("applied after import:", calls == ["run"])
"""


def test_wandb_launch_inputs_are_applied_only_once_wandb_launch_is_in_use():
    result = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "launch imported: False" in result.stdout
    assert "applied after import: True" in result.stdout


def test_type_check_baseline_is_composed_once_per_choice_of_groups(monkeypatch):
    from hydra import initialize_config_dir

    from dlt_runner import CONFIG_DIR, run

    calls = []
    original = run._compose_groups.__wrapped__

    def counting(groups):
        calls.append(groups)
        return original(groups)

    monkeypatch.setattr(run, "_compose_groups", run.functools.lru_cache(maxsize=8)(counting))
    overrides = ["experiment=imde/pendulum", "seed=1", "hydra/launcher=joblib"]
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        first = run._baseline(overrides)
        second = run._baseline([*overrides[:2], "seed=2"])
        assert run._baseline(["experiment=imde/pendulum"]) == OmegaConf.create()  # no values
    assert first is second and calls == [("experiment=imde/pendulum",)]
    assert first.model.integrator == "euler" and OmegaConf.is_readonly(first)

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


_COLLECTOR_PROBE = """
import gc, sys
from omegaconf import OmegaConf
from dlt_runner.core import startup

cfg = OmegaConf.create({
    "model": {"_target_": "dlt_runner.papers.imde.module.NeuralODEModule",
              "net": {"_target_": "dlt_runner.nn.mlp.MLP"}},
    "logger": {"csv": {"_target_": "${oc.env:NOPE}"}, "none": None},
    "data": {"_target_": "no_such_package.Data"},
    "items": [{"_target_": "torch.optim.Adam"}],
})
print("targets:", sorted(startup.target_modules(cfg)))
try:
    with startup.collector_paused():
        print("paused:", not gc.isenabled())
        raise ValueError("a mistake before the run's imports")
except ValueError:
    pass
print("enabled after a failure:", gc.isenabled(), gc.get_freeze_count() == 0)
with startup.collector_paused():
    startup.import_for(cfg)
    print("enabled once frozen:", gc.isenabled(), gc.get_freeze_count() > 100_000)
print("imported:", all(m in sys.modules for m in ("pytorch_lightning", "dlt_runner.nn.mlp")))
gc.disable()
with startup.collector_paused():
    pass
print("a user's choice stays:", not gc.isenabled())
"""


def test_run_imports_with_the_collector_paused_then_frozen_and_it_always_resumes():
    result = subprocess.run(
        [sys.executable, "-c", _COLLECTOR_PROBE], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    assert (
        "targets: ['dlt_runner.nn.mlp', 'dlt_runner.papers.imde.module', 'no_such_package', "
        "'torch.optim']" in out
    )
    assert "paused: True" in out
    assert "enabled after a failure: True True" in out
    assert "enabled once frozen: True True" in out
    assert "imported: True" in out
    assert "a user's choice stays: True" in out


def test_a_user_error_before_the_run_leaves_the_collector_running():
    code = (
        "import gc, sys\n"
        "from dlt_runner.cli import run_main\n"
        "sys.argv = ['dlt-run', 'experiment=imde/nope']\n"
        "try:\n    run_main()\nexcept SystemExit as exit:\n    print('exit', exit.code)\n"
        "print('collector on:', gc.isenabled())\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "exit 2" in result.stdout, result.stderr[-2000:]
    assert "collector on: True" in result.stdout

"""Every user mistake ends with one line on stderr, ``dlt-run: error: <what and what is valid>``,
exit status 2 and no traceback (``HYDRA_FULL_ERROR=1`` turns traces on; any other value,
``0`` included, means off, as in Hydra).

One table, one check: a new kind of mistake is a new row.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field

import pytest
from conftest import cli


@dataclass(frozen=True)
class Mistake:
    name: str
    args: tuple[str, ...]
    says: tuple[str, ...]  # fragments the one line must hold
    env: dict[str, str] = field(default_factory=dict)


IMDE = "experiment=imde/pendulum"
MISTAKES = [
    Mistake("no experiment", (), ("pick an experiment, e.g. experiment=imde/pendulum",)),
    Mistake(
        "unknown experiment",
        ("experiment=imde/nope",),
        ("experiment=imde/nope does not exist; choose one of:", "imde/pendulum", "gcv_rmt/digits"),
    ),
    Mistake(
        "unknown group option",
        (IMDE, "trainer=tpu9"),
        ("trainer=tpu9 does not exist; choose one of: cpu, ddp",),
    ),
    Mistake(
        "unknown key",
        (IMDE, "model.foo=1"),
        ("model.foo is not a config key; model has: _target_,", "integrator", "+model.foo="),
    ),
    Mistake(
        "wrong type",
        (IMDE, "trainer.max_steps=abc"),
        ("trainer.max_steps expects an integer (default: 2000), got 'abc'",),
    ),
    Mistake(
        "missing value",
        (IMDE, "model.net.sizes=???"),
        ("missing required value(s): model.net.sizes",),
    ),
    Mistake(
        "unknown registry name",
        (IMDE, "model.integrator=rk5"),
        ("unknown integrator 'rk5'; choose one of: euler, midpoint, rk4",),
    ),
    Mistake(
        "net does not fit the data",
        (IMDE, "model.net.sizes=[2,64,3]"),
        ("the model does not fit the data", "model.net.sizes=[2, 64, 3]", "x1 [2]", "data."),
    ),
    Mistake(
        "negative learning rate",
        (IMDE, "model.optimizer.lr=-1"),
        ("model.optimizer.lr must be a number >= 0, got -1",),
    ),
    Mistake(
        "run dir cannot be created",
        (IMDE, "hydra.run.dir=RUN_UNDER_A_FILE"),
        ("cannot create the run directory", "Not a directory", "hydra.run.dir"),
    ),
    Mistake(
        "multirun with --cfg",
        ("-m", IMDE, "seed=1,2", "--cfg", "job"),
        ("--cfg and --multirun cannot be combined", "--cfg job"),
    ),
    Mistake(
        "mixed precision on float64 maths",
        (IMDE, "trainer.precision=bf16-mixed"),
        ("trainer.precision=bf16-mixed cannot run this experiment", "trainer.precision=64-true"),
    ),
    Mistake(
        "claim grid as a run option",
        ("claim=imde",),
        ("claim grids are not a dlt-run option", "dlt-claims imde"),
    ),
    Mistake(
        "groups that do not fit together",
        (IMDE, "data=cifar10"),
        ("Interpolation key 'data.step_size' not found", "do not fit together"),
    ),
    Mistake(
        "no checkpoint to resume",
        (IMDE, "ckpt_path=last"),
        ("ckpt_path=last: no checkpoint", "hydra.run.dir=<that run's dir> ckpt_path=last"),
    ),
    Mistake("unreadable checkpoint", (IMDE, "ckpt_path=GARBAGE"), ("unreadable checkpoint",)),
    Mistake(
        "dataset absent offline",
        ("experiment=ntk_reverse/cifar10",),
        ("cifar10 is not under", "paths.data_dir="),
    ),
    Mistake(
        "plain ddp inside a multirun",
        ("-m", IMDE, "trainer=ddp_sim", "trainer.strategy=ddp"),
        ("cannot run inside a multirun",),
    ),
    Mistake(
        "HYDRA_FULL_ERROR=0 means off",
        (IMDE, "model.integrator=rk5"),
        ("unknown integrator 'rk5'",),
        env={"HYDRA_FULL_ERROR": "0"},
    ),
]


@pytest.mark.parametrize("mistake", MISTAKES, ids=[m.name for m in MISTAKES])
def test_a_mistake_is_one_line_and_exit_2(tmp_path, mistake):
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"not a checkpoint")
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    substitutes = {"GARBAGE": str(garbage), "RUN_UNDER_A_FILE": str(a_file / "run")}
    args = [_substitute(arg, substitutes) for arg in mistake.args]
    defaults = [f"hydra.run.dir={tmp_path / 'run'}", f"hydra.sweep.dir={tmp_path / 'sweep'}"]
    defaults = [d for d in defaults if d.split("=")[0] not in {a.split("=")[0] for a in args}]
    result = cli(
        "dlt-run",
        *args,
        *defaults,
        cwd=tmp_path,
        env={"WANDB_MODE": "disabled", **mistake.env},
    )
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2, result.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith("dlt-run: error: "), result.stderr[-2000:]
    for fragment in mistake.says:
        assert fragment in lines[0]


def _substitute(arg: str, substitutes: dict[str, str]) -> str:
    for name, value in substitutes.items():
        arg = arg.replace(name, value)
    return arg


def test_full_trace_on_request(tmp_path):
    result = cli(
        "dlt-run",
        "experiment=imde/pendulum",
        "model.integrator=rk5",
        f"hydra.run.dir={tmp_path / 'run'}",
        cwd=tmp_path,
        env={"WANDB_MODE": "disabled", "HYDRA_FULL_ERROR": "1"},
    )
    assert result.returncode != 0 and "Traceback" in result.stderr


def test_help_lists_run_groups_only(tmp_path):
    result = cli("dlt-run", "--help", cwd=tmp_path)
    assert result.returncode == 0
    groups = [line.split(":")[0] for line in result.stdout.split("== Config ==")[0].splitlines()]
    assert {"experiment", "model", "data", "trainer", "logger", "callbacks"} <= set(groups)
    assert "claim" not in groups, "claim grids are dlt-claims' input, not a run option"
    assert "dlt-claims" in result.stdout


def test_version_names_the_project_and_its_libraries(tmp_path):
    from dlt_runner import __version__

    result = cli("dlt-run", "--version", cwd=tmp_path)
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert lines[0] == f"dlt_runner {__version__}"
    libraries = {line.split()[0] for line in lines[1:]}
    assert {"torch", "pytorch-lightning", "hydra-core", "wandb"} <= libraries


def test_version_imports_no_heavy_library(tmp_path):
    probe = (
        "import sys\n"
        "sys.argv = ['dlt-run', '--version']\n"
        "from dlt_runner.cli import run_main\n"
        "run_main()\n"
        "print('HEAVY', sorted(m for m in ('torch', 'pytorch_lightning', 'wandb') "
        "if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True
    )
    assert "HEAVY []" in result.stdout, result.stdout[-500:] + result.stderr[-500:]

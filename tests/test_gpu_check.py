"""``make gpu-check`` (benchmarks/gpu_check.py): every run it would make composes, float64
experiments are never put in bf16, and a machine without a GPU exits 0 saying so."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

# benchmarks/ is a folder of scripts at the top of the repository, not an installed package.
_SPEC = importlib.util.spec_from_file_location(
    "gpu_check", Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"
)
gpu_check = importlib.util.module_from_spec(_SPEC)
sys.modules["gpu_check"] = gpu_check  # dataclasses look their module up by name
_SPEC.loader.exec_module(gpu_check)


@pytest.fixture(scope="module")
def checks():
    return gpu_check.plan(steps=300, devices=2)


def test_every_cpu_experiment_is_checked_on_every_variant(checks):
    experiments = gpu_check.cpu_experiments()
    assert "imde/pendulum" in experiments
    assert not any(name.endswith("_paper") for name in experiments)
    assert {check.experiment for check in checks} == set(experiments)
    for experiment in experiments:
        variants = [check.variant for check in checks if check.experiment == experiment]
        assert variants[0] == "cpu" and {"ddp", "fsdp"} <= set(variants)


def test_every_command_composes_to_the_trainer_it_names(checks):
    for check in checks:
        cfg = gpu_check.compose(check.overrides)
        trainer = cfg.trainer
        assert trainer.max_steps == 300, check.name
        expected = {
            "cpu": ("cpu", None),
            "gpu-32": ("gpu", "32-true"),
            "gpu-64": ("gpu", "64-true"),
            "gpu-bf16": ("gpu", "bf16-mixed"),
            "ddp": ("gpu", None),
            "fsdp": ("gpu", None),
        }[check.variant]
        assert trainer.accelerator == expected[0], check.name
        if expected[1]:
            assert str(trainer.precision) == expected[1], check.name
        if check.variant in ("ddp", "fsdp"):
            assert (trainer.strategy, trainer.devices) == (check.variant, 2), check.name


def test_float64_experiments_never_run_in_bf16(checks):
    assert gpu_check.needs_float64("imde/pendulum")
    variants = {check.variant for check in checks if check.experiment == "imde/pendulum"}
    assert "gpu-bf16" not in variants and "gpu-64" in variants
    for check in checks:
        if gpu_check.needs_float64(check.experiment) and check.variant != "cpu":
            assert str(gpu_check.compose(check.overrides).trainer.precision) == "64-true"


def test_without_a_gpu_it_says_so_and_exits_0(capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gpu_check.main(["--only", "imde/pendulum", "--out", "/nonexistent/GPU.md"]) == 0
    assert "no CUDA GPU" in capsys.readouterr().out


def test_largest_difference_names_the_metric_that_moved_most():
    cpu = {"test/loss": 1.0, "analysis/err": 0.01, "train/loss": 5.0}
    gpu = {"test/loss": 1.01, "analysis/err": 0.02, "train/loss": 50.0}
    key, difference = gpu_check.largest_difference(gpu, cpu)
    assert key == "analysis/err" and difference == pytest.approx(1.0)

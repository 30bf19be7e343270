"""A non-editable install carries the config tree: build the wheel, install it without
dependencies into a temporary directory, compose a config from another directory."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile

import pytest
from conftest import ROOT

SOURCES = ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "dlt_runner", "conf")


@pytest.mark.slow
def test_wheel_ships_the_configs_and_composes_from_anywhere(tmp_path):
    # Build from a copy: building in place would write build/ and *.egg-info into the checkout.
    source = tmp_path / "source"
    source.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=_ignored)
        else:
            shutil.copy2(ROOT / name, source / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    built = subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "dist"), "."],
        cwd=source,
        capture_output=True,
        text=True,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = (tmp_path / "dist").glob("dlt_runner-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "dlt_runner/conf/config.yaml" in names
    assert "dlt_runner/conf/experiment/imde/pendulum.yaml" in names

    target = tmp_path / "installed"
    installed = subprocess.run(
        [*pip, "install", "--no-deps", "--target", str(target), str(wheel)],
        capture_output=True,
        text=True,
    )
    assert installed.returncode == 0, installed.stderr[-3000:]

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(target), "DLT_ROOT": str(elsewhere)}
    probe = subprocess.run(
        [sys.executable, "-c", "import dlt_runner; print(dlt_runner.CONFIG_DIR)"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
    )
    assert probe.stdout.strip() == str(target / "dlt_runner" / "conf"), probe.stderr[-2000:]
    composed = subprocess.run(
        [sys.executable, "-m", "dlt_runner", "experiment=imde/pendulum", "--cfg", "job"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
    )
    assert composed.returncode == 0, composed.stderr[-3000:]
    assert "integrator: euler" in composed.stdout and "paper: imde" in composed.stdout


def _ignored(directory: str, names: list[str]) -> list[str]:
    return [name for name in names if name in ("__pycache__", ".pytest_cache")]

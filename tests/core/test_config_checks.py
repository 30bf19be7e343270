"""Config checks the YAML cannot express: missing values, override types, ddp in multiruns."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from dlt_runner.core import config_checks
from dlt_runner.core.errors import ConfigError, choose


def test_override_keeping_the_type_passes():
    base = OmegaConf.create({"trainer": {"max_steps": 10, "lr": 0.1, "flag": True, "name": "a"}})
    cfg = OmegaConf.create({"trainer": {"max_steps": 20, "lr": 1, "flag": False, "name": 3}})
    config_checks.check_override_types(
        cfg, base, ["trainer.max_steps=20", "trainer.lr=1", "trainer.flag=false", "trainer.name=3"]
    )


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("max_steps", "abc", "an integer"),
        ("max_steps", 1.5, "an integer"),
        ("lr", "fast", "a number"),
        ("flag", 1, "a boolean"),
        ("sizes", 3, "a list"),
    ],
)
def test_override_changing_the_type_fails_with_the_default(key, value, expected):
    base = OmegaConf.create({"m": {"max_steps": 10, "lr": 0.1, "flag": True, "sizes": [1, 2]}})
    cfg = OmegaConf.create({"m": {"max_steps": 10, "lr": 0.1, "flag": True, "sizes": [1, 2]}})
    cfg.m[key] = value
    with pytest.raises(ConfigError, match=f"m.{key} expects {expected}"):
        config_checks.check_override_types(cfg, base, [f"m.{key}={value}"])


def test_missing_values_are_listed():
    with pytest.raises(ConfigError, match="model.net.sizes"):
        config_checks.check_missing(OmegaConf.create({"model": {"net": {"sizes": "???"}}}))


def test_plain_ddp_is_refused_only_in_multirun():
    cfg = OmegaConf.create({"trainer": {"strategy": "ddp"}})
    config_checks.check_strategy(cfg, multirun=False)
    with pytest.raises(ConfigError, match="ddp_spawn"):
        config_checks.check_strategy(cfg, multirun=True)


def test_group_and_value_overrides_are_told_apart():
    groups, values = config_checks.value_overrides(
        [
            "experiment=imde/pendulum",
            "trainer=cpu",
            "model.integrator=rk4",
            "seed=3",
            "hydra/launcher=joblib",
            "+model.extra=1",
        ]
    )
    assert groups == ["experiment=imde/pendulum", "trainer=cpu", "hydra/launcher=joblib"]
    assert values == ["model.integrator=rk4", "seed=3", "+model.extra=1"]


def test_choose_lists_valid_names():
    with pytest.raises(
        ConfigError, match="unknown integrator 'lepfrog'; choose one of: euler, rk4"
    ):
        choose("integrator", "lepfrog", {"euler": 1, "rk4": 2})


def test_experiments_are_discovered():
    assert "imde/pendulum" in config_checks.available_experiments()

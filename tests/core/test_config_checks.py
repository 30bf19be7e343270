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


@pytest.mark.parametrize(
    ("precision", "dtype", "refused"),
    [
        ("bf16-mixed", "float64", True),
        ("16-mixed", "float64", True),
        ("32-true", "float64", True),
        ("64-true", "float64", False),
        ("64", "float64", False),
        ("bf16-mixed", "float32", False),
        ("32-true", None, False),
    ],
)
def test_float64_experiments_refuse_lower_precision(precision, dtype, refused):
    data = {} if dtype is None else {"dtype": dtype}
    cfg = OmegaConf.create({"trainer": {"precision": precision}, "data": data})
    if refused:
        with pytest.raises(ConfigError, match="trainer.precision=64-true"):
            config_checks.check_precision(cfg)
    else:
        config_checks.check_precision(cfg)


@pytest.mark.parametrize(
    ("path", "key", "value", "message"),
    [
        ("optimizer", "lr", -1, "model.optimizer.lr must be a number >= 0, got -1"),
        ("optimizer", "weight_decay", -0.1, "model.optimizer.weight_decay must be a number >= 0"),
        ("optimizer", "betas", [0.9, 1.5], r"model.optimizer.betas must be in \[0, 1\)"),
        ("optimizers.critic", "lr", -1e-3, "model.optimizers.critic.lr must be a number >= 0"),
    ],
)
def test_optimizer_settings_out_of_range_are_named(path, key, value, message):
    node = {"_target_": "torch.optim.Adam", "_partial_": True, "lr": 1e-3, key: value}
    model: dict = {}
    cursor = model
    *parents, leaf = path.split(".")
    for parent in parents:
        cursor = cursor.setdefault(parent, {})
    cursor[leaf] = node
    cfg = OmegaConf.create({"model": model})
    with pytest.raises(ConfigError, match=message):
        config_checks.check_optimizers(cfg)


def test_valid_optimizer_and_schedulers_pass():
    cfg = OmegaConf.create(
        {
            "model": {
                "optimizer": {"_target_": "torch.optim.SGD", "lr": 0.0, "momentum": 0.9},
                "scheduler": {"_target_": "torch.optim.lr_scheduler.StepLR", "gamma": 2.0},
            }
        }
    )
    config_checks.check_optimizers(cfg)

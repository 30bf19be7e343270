"""Checks a composed config before anything is built: each failure is a :class:`ConfigError`.

Hydra already refuses unknown groups, options and keys. What YAML cannot say, checked here:
missing required values (``???``), values whose type differs from the default they override
(``trainer.max_steps=abc``), plain ``ddp`` inside a multirun run by the basic or joblib
launcher, a missing experiment, a precision below float64 for float64 experiments, and
optimiser settings out of range (``model.optimizer.lr=-1``).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from dlt_runner import CONFIG_DIR
from dlt_runner.core.errors import ConfigError


def available_experiments(config_dir: Path = CONFIG_DIR) -> list[str]:
    """Experiment names as users type them (``imde/pendulum``)."""
    root = config_dir / "experiment"
    return sorted(str(p.relative_to(root).with_suffix("")) for p in root.rglob("*.yaml"))


def check_selected(cfg: DictConfig) -> None:
    """A run needs a model and a dataset, normally from an experiment."""
    missing = [group for group in ("model", "data") if not cfg.get(group)]
    if missing:
        raise ConfigError(
            f"no {' and no '.join(missing)} selected; pick an experiment, e.g. "
            f"experiment=imde/pendulum. Available: {', '.join(available_experiments())}"
        )


def check_missing(cfg: DictConfig) -> None:
    """Every ``???`` value must be set on the command line."""
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        raise ConfigError(
            f"missing required value(s): {', '.join(missing)}; set them on the command line "
            f"(e.g. {missing[0]}=...)"
        )


#: Launchers that run a sweep's jobs inside the launching command (in its process or in its
#: worker pool): plain DDP's re-execution of that command line would re-run the whole sweep.
SWEEP_IN_COMMAND_LAUNCHERS = ("BasicLauncher", "JoblibLauncher")


def check_strategy(cfg: DictConfig, multirun: bool, launcher: str = "BasicLauncher") -> None:
    """Lightning's plain ``ddp`` re-executes argv per rank: inside ``-m`` that re-runs the sweep.

    Only under launchers that run the sweep within the command (``launcher`` is the class
    path of ``hydra.launcher._target_``). Under submitit each job is its own process tree,
    started by SLURM (one task per device, which Lightning's SLURM environment joins) or by
    submitit on this machine.
    """
    strategy = cfg.get("trainer", {}).get("strategy")
    name = strategy if isinstance(strategy, str) else None
    in_command = any(launcher.endswith(cls) for cls in SWEEP_IN_COMMAND_LAUNCHERS)
    if multirun and in_command and name in ("ddp", "fsdp"):
        raise ConfigError(
            f"trainer.strategy={name} cannot run inside a multirun (-m) with the "
            f"{launcher.rsplit('.', 1)[-1]}: Lightning re-executes the command line once per "
            "rank, which would re-run the whole sweep. Use trainer.strategy=ddp_spawn (e.g. "
            "trainer=ddp_sim on CPUs) or a submitit launcher (hydra/launcher=submitit_slurm on "
            "a SLURM cluster, submitit_local on this machine: one process tree per job)."
        )


#: Words a numeric key also takes (an experiment may set ``threads: 1``; ``threads=auto`` stays
#: valid).
_WORDS_ALLOWED = {"threads": ("auto",)}

_TYPE_NAMES = {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}


def check_override_types(cfg: DictConfig, baseline: DictConfig, overrides: Iterable[str]) -> None:
    """Each ``key=value`` override must keep the type of the value it replaces.

    ``baseline`` is the same config composed without the value overrides (config groups
    kept), so its leaves are the defaults the user meant to change.
    """
    for override in overrides:
        key = _override_key(override)
        if key is None:
            continue
        default = OmegaConf.select(baseline, key, default=None, throw_on_missing=False)
        value = OmegaConf.select(cfg, key, default=None, throw_on_missing=False)
        if default is None or value is None or value in _WORDS_ALLOWED.get(key, ()):
            continue
        problem = _type_problem(default, value)
        if problem:
            raise ConfigError(
                f"{key} expects {problem} (default: {_show(default)}), got {_show(value)}"
            )


def value_overrides(overrides: Iterable[str], config_dir: Path = CONFIG_DIR) -> tuple[list, list]:
    """Split overrides into (config-group choices, value assignments)."""
    groups, values = [], []
    for override in overrides:
        key = override.split("=", 1)[0].lstrip("~+").split("@", 1)[0]
        is_group = key.startswith("hydra") or (config_dir / key.replace(".", "/")).is_dir()
        (groups if is_group else values).append(override)
    return groups, values


def _override_key(override: str) -> str | None:
    if "=" not in override or override.startswith(("~", "+")):
        return None
    key = override.split("=", 1)[0]
    return None if key.startswith("hydra") else key


def _type_problem(default: Any, value: Any) -> str | None:
    if isinstance(default, (DictConfig, ListConfig)):
        kind = "a mapping" if isinstance(default, DictConfig) else "a list"
        return None if isinstance(value, type(default)) else kind
    if isinstance(value, (DictConfig, ListConfig)):
        return _TYPE_NAMES.get(type(default), "a scalar")
    if isinstance(default, bool):
        return None if isinstance(value, bool) else _TYPE_NAMES[bool]
    if isinstance(default, int):
        return None if isinstance(value, int) and not isinstance(value, bool) else _TYPE_NAMES[int]
    if isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return None if ok else _TYPE_NAMES[float]
    return None


def _show(value: Any) -> str:
    if isinstance(value, (DictConfig, ListConfig)):
        return str(OmegaConf.to_container(value))
    return repr(value)


_FLOAT64_PRECISIONS = ("64", "64-true", "double")


def check_precision(cfg: DictConfig) -> None:
    """An experiment whose data (and maths) are float64 runs only at ``trainer.precision=64-true``.

    Mixed or half precision would compute in bf16/fp16 what the experiment measures at
    float64 accuracy (e.g. IMDE's learned-vs-modified-field errors of ~1e-4).
    """
    precision = str(cfg.get("trainer", {}).get("precision", "32-true"))
    dtype = (cfg.get("data") or {}).get("dtype")
    if dtype == "float64" and precision not in _FLOAT64_PRECISIONS:
        raise ConfigError(
            f"trainer.precision={precision} cannot run this experiment: its data and maths are "
            f"float64 (data.dtype=float64). Use trainer.precision=64-true, or set "
            f"data.dtype=float32 to run it at lower precision"
        )


#: Optimiser arguments that must be non-negative, and the [0, 1) ones.
_NON_NEGATIVE = ("lr", "weight_decay", "momentum", "eps", "alpha")
_UNIT_INTERVAL = ("betas", "beta", "dampening")


def check_optimizers(cfg: DictConfig) -> None:
    """Every ``torch.optim`` node under ``model`` has a non-negative ``lr`` (and friends)."""
    for path, node in _optimizer_nodes(cfg.get("model"), "model"):
        for key in _NON_NEGATIVE:
            value = node.get(key)
            if _is_number(value) and value < 0:
                raise ConfigError(
                    f"{path}.{key} must be a number >= 0, got {value} ({node._target_})"
                )
        for key in _UNIT_INTERVAL:
            value = node.get(key)
            values = list(value) if isinstance(value, ListConfig) else [value]
            if any(_is_number(item) and not 0 <= item < 1 for item in values):
                raise ConfigError(
                    f"{path}.{key} must be in [0, 1), got {_show(value)} ({node._target_})"
                )


def _optimizer_nodes(node: Any, path: str) -> list[tuple[str, DictConfig]]:
    if not isinstance(node, DictConfig):
        return []
    found = []
    target = str(node.get("_target_", ""))
    if target.startswith("torch.optim.") and not target.startswith("torch.optim.lr_scheduler"):
        found.append((path, node))
    for key in node:
        child = node._get_node(key)
        if isinstance(child, DictConfig):
            found += _optimizer_nodes(child, f"{path}.{key}")
    return found


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)

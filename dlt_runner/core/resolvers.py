"""OmegaConf resolvers our config tree uses; registered when ``dlt_runner`` is imported."""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

from omegaconf import OmegaConf

#: Fixed for the life of this process (and cached into every job's config by Hydra), so all jobs
#: of one sweep agree on the sweep dir while two launches in the same second never collide.
LAUNCH_TOKEN = f"{os.getpid()}{secrets.token_hex(2)}"


def progress_refresh(interactive_rate: int = 10) -> int:
    """Progress-bar refresh rate: ``$DLT_PROGRESS_REFRESH`` if set; else ``interactive_rate`` on
    a terminal and 0 (no bar) when output goes to a file or pipe, where a bar is only noise
    and its writes cost time (W&B captures each one)."""
    if os.environ.get("DLT_PROGRESS_REFRESH"):  # set and not empty
        return int(os.environ["DLT_PROGRESS_REFRESH"])
    return int(interactive_rate) if sys.stderr.isatty() else 0


#: Folders of the config tree that are not run options: ``claim/`` holds the grids that
#: ``dlt-claims`` reads (plain YAML, never composed into a run).
NOT_RUN_GROUPS = ("claim",)


def _config_dir() -> Path:
    from dlt_runner import CONFIG_DIR

    return CONFIG_DIR


def group_options(group: str, config_dir: Path | None = None) -> list[str]:
    """Options of a config group as users type them (``experiment`` → ``imde/pendulum``, ...)."""
    root = (config_dir or _config_dir()) / group
    if group in NOT_RUN_GROUPS or not root.is_dir():
        return []
    return sorted(str(p.relative_to(root).with_suffix("")) for p in root.rglob("*.yaml"))


def run_groups(config_dir: Path | None = None) -> str:
    """The config groups a run composes, one ``group: option, ...`` line each (``--help``).

    Hydra's own listing shows every folder of the config tree, ``claim/`` included, and
    Hydra's groups; this one shows what ``dlt-run group=option`` accepts.
    """
    root = config_dir or _config_dir()
    lines = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        if folder.name in NOT_RUN_GROUPS or folder.name == "hydra":
            continue
        lines.append(f"{folder.name}: {', '.join(group_options(folder.name, root))}")
    return "\n".join(lines)


#: Lightning strategies that start one process per device themselves (the launcher starts one).
_SPAWNING = ("ddp_spawn", "ddp_fork", "ddp_notebook")


def _strategy_name(strategy: object) -> str:
    if isinstance(strategy, str):
        return strategy
    target = str(getattr(strategy, "get", lambda *_: "")("_target_", "") or "")
    return target.rsplit(".", 1)[-1].lower()


def tasks_per_node(strategy: object, devices: object) -> int:
    """SLURM tasks per node for a Lightning trainer: one per device under a strategy that SLURM
    launches (``ddp``, ``fsdp``: Lightning's SLURM environment expects
    ``--ntasks-per-node`` = ``devices``), else one (a spawning strategy starts its own)."""
    name = _strategy_name(strategy)
    if isinstance(devices, int) and devices > 0 and name not in _SPAWNING:
        return devices
    return 1


def gpus_per_node(accelerator: object, devices: object) -> int | None:
    """GPUs to reserve per node: ``devices`` on a GPU trainer, none otherwise."""
    if str(accelerator) in ("gpu", "cuda") and isinstance(devices, int) and devices > 0:
        return devices
    return None


def cpus_per_task(threads: object) -> int | None:
    """CPUs per task: ``threads`` when it is a number; ``auto`` leaves the cluster's default
    (the run then uses the ``SLURM_CPUS_PER_TASK`` it gets)."""
    return int(threads) if isinstance(threads, int) and not isinstance(threads, bool) else None


def register() -> None:
    """``${dlt.unique:}``: this launch's token, used in the run and sweep dir names;
    ``${dlt.progress_refresh:N}``: see :func:`progress_refresh`;
    ``${dlt.run_groups:}``: see :func:`run_groups`; ``${dlt.tasks_per_node:strategy,devices}``,
    ``${dlt.gpus_per_node:accelerator,devices}``, ``${dlt.cpus_per_task:threads}``: a SLURM
    launcher's resources from the trainer (see those functions)."""
    if not OmegaConf.has_resolver("dlt.unique"):
        OmegaConf.register_new_resolver("dlt.unique", lambda: LAUNCH_TOKEN, use_cache=True)
    if not OmegaConf.has_resolver("dlt.progress_refresh"):
        OmegaConf.register_new_resolver("dlt.progress_refresh", progress_refresh)
    if not OmegaConf.has_resolver("dlt.run_groups"):
        OmegaConf.register_new_resolver("dlt.run_groups", lambda: run_groups())
    for name, function in (
        ("dlt.tasks_per_node", tasks_per_node),
        ("dlt.gpus_per_node", gpus_per_node),
        ("dlt.cpus_per_task", cpus_per_task),
    ):
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, function)

"""Who a job is in W&B, and what of its config a reviewer sees; no Lightning, no W&B import.

- group = the sweep (or the single run); ``job_type`` = the job's setting without the seed, so
  W&B's group-by shows the mean ± std over seeds; name = the swept keys (:func:`wandb_identity`);
- the config logged is what identical jobs share and a reviewer filters by
  (:func:`review_config`);
- monitored metrics are summarised by their best value (:func:`monitored_summaries`).

The identity is also written to ``<run_dir>/wandb/identity.json``, where ``dlt-report`` and
``dlt-claims`` find the group to log their report run into (:func:`read_identity`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

WANDB_ID_FILE = "run_id"
IDENTITY_FILE = "identity.json"
#: Length limits of W&B's fields (longer values are refused when syncing).
_JOB_TYPE_MAX, _GROUP_MAX, _NAME_MAX = 64, 128, 128


def wandb_run_id(run_dir: Path, resume_from: Path | None) -> str:
    """The W&B run id of this run dir: reused when resuming, so the history continues.

    The id is stored in ``<run_dir>/wandb/run_id``. A resumed run reads it from the run dir
    its checkpoint belongs to (``<that run>/checkpoints/x.ckpt``).
    """
    candidates = [run_dir / "wandb" / WANDB_ID_FILE]
    if resume_from is not None:
        candidates.insert(0, resume_from.parent.parent / "wandb" / WANDB_ID_FILE)
    for path in candidates:
        if path.exists() and (stored := path.read_text().strip()):
            run_id = stored
            break
    else:
        run_id = secrets.token_hex(4)
    (run_dir / "wandb").mkdir(parents=True, exist_ok=True)
    (run_dir / "wandb" / WANDB_ID_FILE).write_text(run_id + "\n")
    return run_id


def override_key(override: str) -> str:
    """The config key of a command-line override (``+a.b=1`` → ``a.b``, ``~a`` → ``a``)."""
    return override.split("=", 1)[0].lstrip("+~")


def swept_keys(overrides: Sequence[str], sweep_dir: Path | None, sweeper_params: Any) -> set[str]:
    """Keys that vary across a sweep: the sweeper's ``params`` and the command's sweep overrides.

    The command's overrides are read from ``<sweep_dir>/multirun.yaml`` (written by Hydra's
    basic sweeper before it launches the jobs); a value list (``a=1,2``), ``range(...)``,
    ``choice(...)`` or ``glob(...)`` is a sweep. Sweepers that write no such file (Optuna)
    declare their search space in ``hydra.sweeper.params``.
    """
    keys = {override_key(str(key)) for key in (sweeper_params or {})}
    multirun_file = sweep_dir / "multirun.yaml" if sweep_dir else None
    if multirun_file is not None and multirun_file.exists():
        from hydra.core.override_parser.overrides_parser import OverridesParser

        task = OmegaConf.load(multirun_file).hydra.overrides.task
        parsed = OverridesParser.create().parse_overrides([str(item) for item in task])
        keys |= {item.key_or_group for item in parsed if item.is_sweep_override()}
    job_keys = {override_key(item) for item in overrides}
    return keys & job_keys


def wandb_identity(
    *, task_name: str, group: str, overrides: Sequence[str], swept: set[str] | None
) -> dict[str, str]:
    """Group, job type and name of a job's W&B run.

    ``swept`` is ``None`` for a single run (or a sweep that varies nothing): then every
    override (except Hydra's own) names it. The job type is the name without the seed, so runs
    that differ only by seed share it.
    """
    chosen = [item for item in overrides if not override_key(item).startswith("hydra")]
    if swept:
        chosen = [item for item in chosen if override_key(item) in swept]
    setting = [item for item in chosen if override_key(item) != "seed"]
    return {
        "group": _fit(group, _GROUP_MAX),
        "job_type": _fit(",".join(setting) or task_name, _JOB_TYPE_MAX),
        "name": _fit(",".join(chosen) or task_name, _NAME_MAX),
    }


def _fit(text: str, limit: int) -> str:
    """``text`` cleaned of characters W&B rejects, shortened with a hash when too long."""
    text = re.sub(r"[^\w=.,+\-/:\[\]]", "_", text) or "run"
    if len(text) <= limit:
        return text
    digest = hashlib.sha1(text.encode()).hexdigest()[:8]
    return f"{text[: limit - 9]}~{digest}"


def fill_wandb_defaults(
    logger_cfg: DictConfig,
    *,
    identity: Mapping[str, str],
    tags: Sequence[str],
    run_id: str,
    summaries: Mapping[str, str],
    run_dir: Path,
) -> None:
    """Fill the W&B keys left ``null`` in ``logger/wandb.yaml`` and record the identity.

    ``summaries`` maps metric names to ``min``/``max``: the summary W&B keeps for them.
    """
    wandb_cfg = logger_cfg.get("wandb")
    if wandb_cfg is None:
        return
    with open_dict(wandb_cfg):
        for key in ("group", "job_type", "name"):
            wandb_cfg[key] = wandb_cfg.get(key) or identity[key]
        wandb_cfg.tags = list(wandb_cfg.get("tags") or tags)
        wandb_cfg.id = wandb_cfg.get("id") or run_id
        wandb_cfg.summaries = {**summaries, **(wandb_cfg.get("summaries") or {})}
    keys = ("id", "group", "job_type", "name", "project", "entity", "mode")
    record = {key: None if wandb_cfg.get(key) is None else str(wandb_cfg[key]) for key in keys}
    (run_dir / "wandb").mkdir(parents=True, exist_ok=True)
    (run_dir / "wandb" / IDENTITY_FILE).write_text(json.dumps(record, indent=1) + "\n")


def configure_wandb(logger_cfg: DictConfig, cfg: DictConfig, runtime: Any, run_id: str) -> None:
    """Fill ``logger.wandb`` for this job: identity (from the launcher), tags, id, summaries.

    ``runtime`` says what the launcher told the job (``run.Runtime``: ``run_dir``,
    ``multirun``, ``group``, ``overrides``). Which keys a sweep varies and which direction a
    sweeper optimises are read from the running Hydra job.
    """
    hydra = hydra_job()
    swept = None
    if runtime.multirun:
        sweep_dir = Path(str(hydra.sweep.dir)) if hydra is not None else None
        params = hydra.sweeper.get("params") if hydra is not None else None
        swept = swept_keys(runtime.overrides, sweep_dir, params)
    identity = wandb_identity(
        task_name=str(cfg.get("task_name") or "run"),
        group=os.environ.get("WANDB_RUN_GROUP") or runtime.group,
        overrides=runtime.overrides,
        swept=swept,
    )
    direction = hydra.sweeper.get("direction") if hydra is not None else None
    fill_wandb_defaults(
        logger_cfg,
        identity=identity,
        tags=[cfg.paper] if cfg.get("paper") else [],
        run_id=run_id,
        summaries=monitored_summaries(cfg, direction),
        run_dir=Path(runtime.run_dir),
    )


def hydra_job() -> Any:
    """Hydra's config of the running job, or ``None`` outside Hydra."""
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.get() if HydraConfig.initialized() else None


def read_identity(run_dir: Path) -> dict[str, str] | None:
    """The W&B identity a job recorded, or ``None`` when it did not log to W&B."""
    path = run_dir / "wandb" / IDENTITY_FILE
    return json.loads(path.read_text()) if path.exists() else None


def monitored_summaries(cfg: DictConfig, sweeper_direction: Any = None) -> dict[str, str]:
    """Summaries (``min``/``max``) of ``val/loss``, the checkpoint monitor, ``optimized_metric``."""
    summaries = {"val/loss": "min"}
    for node in (cfg.get("callbacks") or {}).values():
        if isinstance(node, DictConfig) and node.get("monitor"):
            summaries[str(node.monitor)] = "max" if node.get("mode") == "max" else "min"
    if cfg.get("optimized_metric"):
        direction = sweeper_direction
        if isinstance(direction, (list, tuple)) or OmegaConf.is_list(direction):
            direction = direction[0] if len(direction) else None
        summaries[str(cfg.optimized_metric)] = (
            "max" if str(direction).lower().startswith("max") else "min"
        )
    return summaries


# --------------------------------------------------------------------------- config
#: Top-level config keys a reviewer filters by; the rest (paths, loggers, callbacks with their
#: refresh rates, threads) differs between identical jobs or says nothing about the result.
REVIEW_KEYS = ("paper", "task_name", "seed", "model", "data", "trainer", "test", "optimized_metric")


def review_config(
    config: Mapping[str, Any], overrides: Sequence[str] = (), choices: Mapping[str, Any] = ()
) -> dict[str, Any]:
    """The resolved config without paths and ids, plus Hydra's overrides and group choices."""
    paths = [str(v) for v in (config.get("paths") or {}).values() if isinstance(v, str) and v]
    reviewed = {key: _without_paths(config[key], paths) for key in REVIEW_KEYS if key in config}
    if isinstance(reviewed.get("trainer"), dict):
        reviewed["trainer"].pop("default_root_dir", None)
    reviewed["overrides"] = [str(item) for item in overrides]
    reviewed["choices"] = {
        str(group): choice
        for group, choice in dict(choices).items()
        if not str(group).startswith("hydra/")
    }
    return reviewed


def _without_paths(value: Any, paths: Sequence[str]) -> Any:
    if isinstance(value, dict):
        return {
            k: _without_paths(v, paths)
            for k, v in value.items()
            if not (isinstance(v, str) and any(_under(v, p) for p in paths))
        }
    if isinstance(value, list):
        return [_without_paths(v, paths) for v in value]
    return value


def _under(value: str, path: str) -> bool:
    return value == path or value.startswith(path.rstrip("/") + "/")

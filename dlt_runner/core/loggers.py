"""Loggers: W&B naming and resume, config logging, curves, and always finishing the run."""

from __future__ import annotations

import contextlib
import re
import secrets
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, open_dict

WANDB_ID_FILE = "run_id"


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


def fill_wandb_defaults(
    logger_cfg: DictConfig, *, group: str, name: str, tags: Sequence[str], run_id: str
) -> None:
    """Fill the W&B keys left ``null`` in ``logger/wandb.yaml`` (group, name, tags, id)."""
    wandb_cfg = logger_cfg.get("wandb")
    if wandb_cfg is None:
        return
    with open_dict(wandb_cfg):
        wandb_cfg.group = wandb_cfg.get("group") or _clean(group)
        wandb_cfg.name = wandb_cfg.get("name") or _clean(name)
        wandb_cfg.tags = list(wandb_cfg.get("tags") or tags)
        wandb_cfg.id = wandb_cfg.get("id") or run_id


def _clean(text: str) -> str:
    return re.sub(r"[^\w=.,+\-/:]", "_", text)[:120] or "run"


def log_config(loggers: Sequence[Any], config: dict[str, Any]) -> None:
    """Log the fully resolved config as hyper-parameters of every logger."""
    for logger in loggers:
        logger.log_hyperparams(config)


def log_final(loggers: Sequence[Any], metrics: dict[str, float], step: int) -> None:
    """Log end-of-run scalars (analysis and final metrics) at the last step."""
    for logger in loggers:
        logger.log_metrics(metrics, step=step)
    for run in _wandb_runs(loggers):
        run.summary.update(metrics)


def log_curves(loggers: Sequence[Any], curves: dict[str, list[float]], step: int) -> None:
    """Log each curve (e.g. alignment per layer) as a W&B line plot; other loggers skip them."""
    runs = _wandb_runs(loggers)
    if not runs or not curves:
        return
    import wandb

    for run in runs:
        for name, values in curves.items():
            table = wandb.Table(
                data=[[i, v] for i, v in enumerate(values)], columns=["index", name]
            )
            run.log({name: wandb.plot.line(table, "index", name, title=name)}, step=step)


def finish(loggers: Sequence[Any], status: str) -> None:
    """Finish every logger, W&B last, so the next multirun job never logs into this run."""
    for logger in loggers:
        # Finishing must never hide the run's own outcome.
        with contextlib.suppress(Exception):
            logger.finalize(status)

    wandb = sys.modules.get("wandb")
    if wandb is not None and getattr(wandb, "run", None) is not None:
        wandb.finish(exit_code=0 if status == "success" else 1)


def _wandb_runs(loggers: Sequence[Any]) -> list[Any]:
    runs = []
    for logger in loggers:
        if type(logger).__name__ == "WandbLogger":
            experiment = logger.experiment
            if hasattr(experiment, "summary"):
                runs.append(experiment)
    return runs

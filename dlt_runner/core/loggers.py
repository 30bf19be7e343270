"""Loggers: one step axis (optimiser steps), W&B identity and config, curves, finishing.

What a reviewer sees in W&B follows from here:

- every scalar sits at the optimiser step it belongs to (:class:`OptimiserStepAxis`), in every
  logger (W&B, CSV, TensorBoard);
- a run's group is its sweep, its ``job_type`` the job's setting without the seed (W&B's
  group-by then shows the mean ± std over seeds), its name the swept keys
  (:func:`wandb_identity`);
- the logged config is what identical jobs share and a reviewer filters by
  (:func:`review_config`);
- monitored metrics are summarised by their best value, ``analysis/*`` are summary values,
  per-layer scalars become one line plot, curves are W&B line plots (:class:`WandbLogger`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import shutil
import sys
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf, open_dict
from pytorch_lightning.loggers import WandbLogger as _LightningWandbLogger

WANDB_ID_FILE = "run_id"
#: ``<run_dir>/wandb/identity.json``: the W&B id, group, job type and name of a run, so that
#: ``dlt-report`` and ``dlt-claims`` log their report into the same group.
IDENTITY_FILE = "identity.json"
STEP_KEY = "trainer/global_step"
#: Length limits of W&B's fields (longer values are refused when syncing).
_JOB_TYPE_MAX, _GROUP_MAX, _NAME_MAX = 64, 128, 128
_PER_LAYER = re.compile(r"^(?P<base>.+)/layer_(?P<layer>\d+)$")
#: Files saved with each W&B run (relative to the run dir).
RUN_FILES = (".hydra/config.yaml", ".hydra/overrides.yaml", ".hydra/hydra.yaml", "metrics.json")


# --------------------------------------------------------------------------- step axis
class OptimiserStepAxis(pl.Callback):
    """Every logger records at ``trainer.global_step``, the count ``trainer.max_steps`` bounds.

    Lightning's logger connector (and ``LearningRateMonitor``, ``DeviceStatsMonitor``) log at
    ``fit_loop.epoch_loop._batches_that_stepped``, which counts ``training_step`` calls: chunks
    of several optimiser steps here. This callback keeps that counter equal to the optimiser
    step before anything is logged: training scalars after each chunk, validation at the step
    it was measured, test at the final step. ``global_step`` is restored from checkpoints, so a
    resumed run continues the same axis. With ``trainer.log_every_n_steps=1`` (the runner's
    default; modules choose their own logging interval in optimiser steps) every record a
    module logs reaches the loggers.
    """

    def __init__(self, fixed_step: int | None = None) -> None:
        #: A trainer that only tests weights trained elsewhere (e.g. after a ``ddp_spawn`` fit)
        #: starts at step 0: it logs at ``fixed_step``, the step the weights were trained to.
        self.fixed_step = fixed_step

    def _align(self, trainer: pl.Trainer) -> None:
        step = trainer.global_step if self.fixed_step is None else self.fixed_step
        trainer.fit_loop.epoch_loop._batches_that_stepped = step

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._align(trainer)

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        self._align(trainer)

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._align(trainer)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._align(trainer)

    def on_test_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._align(trainer)


# --------------------------------------------------------------------------- identity
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
    hydra = _hydra_job()
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


def _hydra_job() -> Any:
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


def log_config(loggers: Sequence[Any], config: dict[str, Any]) -> None:
    """Log the reviewed config (:func:`review_config`) as hyper-parameters of every logger.

    Hydra's overrides and group choices come from the running Hydra job, when there is one.
    """
    hydra = _hydra_job()
    overrides = list(hydra.overrides.task) if hydra is not None else []
    choices = OmegaConf.to_container(hydra.runtime.choices) if hydra is not None else {}
    reviewed = review_config(config, overrides, choices)
    for logger in loggers:
        logger.log_hyperparams(reviewed)


# --------------------------------------------------------------------------- W&B
class WandbLogger(_LightningWandbLogger):
    """Lightning's W&B logger, shaped for review.

    - ``summaries`` (metric → ``min``/``max``): ``define_metric`` summaries, so a run's table
      row shows the best ``val/loss`` rather than the last; every series is plotted against
      ``trainer/global_step`` (the optimiser step).
    - ``<name>/layer_<i>`` scalars (one per layer) become one line plot ``<name>/by_layer`` per
      profile: value against layer, one line per logged step (written at the end of each
      stage), instead of one chart per layer.
    - ``log_model=True`` uploads the best checkpoint only, once, as a ``model`` artifact
      (aliases ``best``, ``latest``); Lightning's own would upload every checkpoint it saw.
    """

    def __init__(self, *args: Any, summaries: Mapping[str, str] | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        # Lightning always passes wandb's deprecated `anonymous` setting, which only warns.
        self._wandb_init.pop("anonymous", None)
        self._summaries = dict(summaries or {})
        self._summaries_defined = False
        self._profiles: dict[str, dict[int, dict[int, float]]] = defaultdict(dict)
        self._profiles_logged: dict[str, int] = {}
        self._best_logged = False

    @property
    def experiment(self) -> Any:
        experiment = super().experiment
        if not self._summaries_defined and hasattr(experiment, "define_metric"):
            self._summaries_defined = True
            for name, mode in self._summaries.items():
                experiment.define_metric(name, summary=mode, step_metric=STEP_KEY)
        return experiment

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        scalars = {}
        for name, value in metrics.items():
            match = _PER_LAYER.match(name)
            if match and step is not None:
                profile = self._profiles[match["base"]].setdefault(int(step), {})
                profile[int(match["layer"])] = float(value)
            else:
                scalars[name] = value
        if scalars:
            super().log_metrics(scalars, step)

    def log_profiles(self) -> None:
        """Per-layer profiles as line plots (value vs layer, one line per step), if new."""
        if self._experiment is None:
            return
        import wandb

        for base, by_step in self._profiles.items():
            if self._profiles_logged.get(base) == len(by_step):
                continue
            layers = sorted({layer for profile in by_step.values() for layer in profile})
            steps = sorted(by_step)
            plot = wandb.plot.line_series(
                xs=layers,
                ys=[[by_step[s].get(layer, float("nan")) for layer in layers] for s in steps],
                keys=[f"step {s}" for s in steps],
                title=f"{base} by layer",
                xname="layer",
            )
            self.experiment.log({f"{base}/by_layer": plot, STEP_KEY: steps[-1]})
            self._profiles_logged[base] = len(by_step)

    def after_save_checkpoint(self, checkpoint_callback: Any) -> None:
        if self._log_model == "all":  # Lightning's own: every checkpoint as it is saved
            super().after_save_checkpoint(checkpoint_callback)
        self._checkpoint_callback = checkpoint_callback

    def finalize(self, status: str) -> None:
        self.log_profiles()
        if status == "success":
            self._log_best_checkpoint()

    def _log_best_checkpoint(self) -> None:
        callback = getattr(self, "_checkpoint_callback", None)
        if self._log_model is not True or self._best_logged or callback is None:
            return
        best = Path(callback.best_model_path or "")
        if not best.is_file() or self._experiment is None:
            return
        import wandb

        score = callback.best_model_score
        artifact = wandb.Artifact(
            name=f"model-{self.experiment.id}",
            type="model",
            metadata={
                "monitor": callback.monitor,
                "mode": callback.mode,
                "score": None if score is None else float(score),
                "step": int(self.experiment.summary.get(STEP_KEY, 0) or 0),
            },
        )
        artifact.add_file(str(best), name=best.name)
        self.experiment.log_artifact(artifact, aliases=["best", "latest"])
        self._best_logged = True

    def save_run_files(self) -> None:
        """Copy the run's ``.hydra/`` files and ``metrics.json`` into the W&B run, for syncing.

        Copied (not symlinked) into the W&B run's own folder, so an offline run synced later
        holds the files as they were when the run ended.
        """
        if self._experiment is None or not getattr(self._experiment, "dir", None):
            return
        run_dir = Path(self.save_dir or ".")
        for relative in RUN_FILES:
            source = run_dir / relative
            if source.is_file():
                target = Path(self._experiment.dir) / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, target)
                self._experiment.save(str(target), base_path=self._experiment.dir, policy="now")


def _wandb_loggers(loggers: Sequence[Any]) -> list[Any]:
    return [logger for logger in loggers if isinstance(logger, _LightningWandbLogger)]


def _wandb_runs(loggers: Sequence[Any]) -> list[Any]:
    return [
        logger.experiment
        for logger in _wandb_loggers(loggers)
        if hasattr(logger.experiment, "summary")
    ]


def log_final(loggers: Sequence[Any], metrics: dict[str, float], step: int) -> None:
    """End-of-run scalars (``analysis/*``): W&B summary values; other loggers at the last step."""
    others = [logger for logger in loggers if not isinstance(logger, _LightningWandbLogger)]
    for logger in others:
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
            run.log({name: wandb.plot.line(table, "index", name, title=name), STEP_KEY: step})


def finish(loggers: Sequence[Any], status: str) -> None:
    """Finish every logger, W&B last, so the next multirun job never logs into this run.

    W&B runs first receive the run's ``.hydra/`` files and ``metrics.json``.
    """
    for logger in loggers:
        # Finishing must never hide the run's own outcome.
        with contextlib.suppress(Exception):
            logger.finalize(status)
    for logger in _wandb_loggers(loggers):
        if isinstance(logger, WandbLogger):
            with contextlib.suppress(Exception):
                logger.save_run_files()

    wandb = sys.modules.get("wandb")
    if wandb is not None and getattr(wandb, "run", None) is not None:
        wandb.finish(exit_code=0 if status == "success" else 1)

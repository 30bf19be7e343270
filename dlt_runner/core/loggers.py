"""Loggers: one step axis (optimiser steps), the reviewed config, curves, finishing.

What a reviewer sees in W&B follows from here and from :mod:`dlt_runner.core.wandb_identity`
(group, job type, name, which config keys, which summaries):

- every scalar sits at the optimiser step it belongs to (:class:`OptimiserStepAxis`), in every
  logger (W&B, CSV, TensorBoard);
- monitored metrics are summarised by their best value, ``analysis/*`` are summary values,
  per-layer scalars become one line plot, curves are W&B line plots (:class:`WandbLogger`);
- each W&B run keeps the run's ``.hydra/`` files and ``metrics.json`` (:func:`finish`).
"""

from __future__ import annotations

import contextlib
import re
import shutil
import sys
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from omegaconf import OmegaConf
from pytorch_lightning.loggers import WandbLogger as _LightningWandbLogger

from dlt_runner.core.wandb_identity import hydra_job, review_config

STEP_KEY = "trainer/global_step"
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


def log_config(loggers: Sequence[Any], config: dict[str, Any]) -> None:
    """Log the reviewed config (:func:`review_config`) as hyper-parameters of every logger.

    Hydra's overrides and group choices come from the running Hydra job, when there is one.
    """
    hydra = hydra_job()
    overrides = list(hydra.overrides.task) if hydra is not None else []
    choices = OmegaConf.to_container(hydra.runtime.choices) if hydra is not None else {}
    reviewed = review_config(config, overrides, choices)
    for logger in loggers:
        logger.log_hyperparams(reviewed)


# --------------------------------------------------------------------------- W&B
def _skip_unstaged_launch_inputs() -> None:
    """Spare each run W&B's import of its Launch package when nothing was staged for it.

    ``wandb.init`` ends by applying "launch job inputs", which imports ``wandb.sdk.launch``
    (about 3 s of CPU, more than a short run's training). Inputs can only have been staged by
    calling that package (``wandb.sdk.launch.manage_config_file`` and friends), which imports
    it first; while it is not imported there is nothing to apply, and the step is skipped.
    Once it is imported, W&B's own method runs unchanged.
    """
    import sys

    from wandb.sdk import wandb_run

    original = wandb_run.Run.__dict__.get("_detect_and_apply_job_inputs")
    if original is None or getattr(original, "_dlt_guarded", False):
        return

    def detect_and_apply_job_inputs(run: Any) -> None:
        if "wandb.sdk.launch" in sys.modules:
            original(run)

    detect_and_apply_job_inputs._dlt_guarded = True  # type: ignore[attr-defined]
    wandb_run.Run._detect_and_apply_job_inputs = detect_and_apply_job_inputs


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
        if self._experiment is None:
            _skip_unstaged_launch_inputs()
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

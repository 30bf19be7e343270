"""``run(cfg)``: the whole lifecycle of one run, no CLI concerns.

1. check the config and seed everything; 2. build data, model, loggers, callbacks and
trainer, and check that the model fits the data (one batch, before anything is written);
3. log the resolved config; 4. fit (resuming from ``ckpt_path``); 5. test; 6. collect final
metrics (trainer's + the module's analysis); 7. write ``metrics.json`` atomically; 8. always
finish the loggers; 9. return the metrics (the CLI hands the value named by
``optimized_metric`` to sweepers).

Heavy imports (torch, Lightning, W&B) happen inside :func:`run`, so composing or printing
a config stays fast.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from dlt_runner.core import config_checks, startup
from dlt_runner.core.errors import ConfigError
from dlt_runner.core.metrics_file import write_metrics

log = logging.getLogger("dlt_runner")


@dataclass
class Runtime:
    """What the launcher tells a job about itself (Hydra's runtime, or defaults outside Hydra)."""

    run_dir: Path
    multirun: bool = False
    group: str = "run"
    job_name: str = "run"
    overrides: list[str] = field(default_factory=list)
    parallel_launcher: bool = False
    #: Class path of ``hydra.launcher._target_`` (the basic launcher outside Hydra).
    launcher: str = "hydra._internal.core_plugins.basic_launcher.BasicLauncher"

    @classmethod
    def from_hydra(cls, cfg: DictConfig) -> Runtime:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        if not HydraConfig.initialized():
            return cls(run_dir=Path(cfg.paths.run_dir))
        hydra = HydraConfig.get()
        multirun = hydra.mode == RunMode.MULTIRUN
        base_dir = Path(hydra.sweep.dir if multirun else hydra.run.dir)
        launcher = str(hydra.launcher.get("_target_", ""))
        return cls(
            run_dir=Path(hydra.runtime.output_dir),
            multirun=multirun,
            group=f"{cfg.task_name}-{base_dir.name}",
            job_name=hydra.job.override_dirname or cfg.task_name,
            overrides=list(hydra.overrides.task),
            parallel_launcher="BasicLauncher" not in launcher,
            launcher=launcher or cls.launcher,
        )


def run(cfg: DictConfig, runtime: Runtime | None = None) -> dict[str, Any]:
    """Fit, test and analyse one configured experiment; returns its ``metrics.json`` record."""
    runtime = runtime or Runtime.from_hydra(cfg)
    _check(cfg, runtime)
    startup.import_for(cfg)
    _set_threads(cfg.get("threads", "auto"), runtime)
    _quiet_libraries()

    import pytorch_lightning as pl

    pl.seed_everything(int(cfg.seed), workers=True, verbose=False)
    resume_from = _resolve_checkpoint(cfg.get("ckpt_path"), runtime.run_dir)
    parts = _build(cfg, runtime, resume_from)
    _log_cluster_environment(parts.trainer)
    _check_model_fits_data(cfg, parts)
    started = time.perf_counter()
    record: dict[str, Any] = {"status": "failed", "metrics": {}}
    status = "failed"
    try:
        from dlt_runner.core.loggers import log_config

        log_config(parts.loggers, OmegaConf.to_container(cfg, resolve=True))
        record = _fit_test_analyse(cfg, parts, resume_from)
        status = "success"
    except BaseException as error:
        record["error"] = f"{type(error).__name__}: {error}"
        raise
    finally:
        record["seconds"] = round(time.perf_counter() - started, 3)
        record.setdefault("timing", {"fit_seconds": 0.0, "steps": 0})
        if parts.trainer.is_global_zero:
            write_metrics(runtime.run_dir, record)
        from dlt_runner.core.loggers import finish

        finish(parts.loggers, status)
    return record


# --------------------------------------------------------------------------- checks
def _check(cfg: DictConfig, runtime: Runtime) -> None:
    config_checks.check_selected(cfg)
    config_checks.check_missing(cfg)
    config_checks.check_strategy(cfg, runtime.multirun, runtime.launcher)
    config_checks.check_precision(cfg)
    config_checks.check_optimizers(cfg)
    try:
        int(cfg.seed)
    except (TypeError, ValueError):
        raise ConfigError(f"seed must be an integer, got {cfg.seed!r}") from None
    if runtime.overrides:
        config_checks.check_override_types(cfg, _baseline(runtime.overrides), runtime.overrides)


def _baseline(overrides: list[str]) -> DictConfig:
    """The config with the same groups but none of the value overrides (for type checks)."""
    from hydra.core.global_hydra import GlobalHydra

    groups, values = config_checks.value_overrides(overrides)
    if not values or not GlobalHydra.instance().is_initialized():
        return OmegaConf.create()
    return _compose_groups(tuple(g for g in groups if not g.startswith("hydra")))


@functools.lru_cache(maxsize=8)
def _compose_groups(groups: tuple[str, ...]) -> DictConfig:
    """Composed once per process and choice of groups: the jobs of a sweep that a worker runs
    one after another share it (read only)."""
    from hydra import compose

    baseline = compose(config_name="config", overrides=list(groups))
    OmegaConf.set_readonly(baseline, True)
    return baseline


def _set_threads(threads: Any, runtime: Runtime) -> None:
    """``threads``: an integer, or ``auto``: under SLURM the CPUs SLURM gave each task
    (``SLURM_CPUS_PER_TASK``), under another parallel launcher 1, else torch's default."""
    import torch

    if threads in (None, "auto"):
        slurm_cpus = os.environ.get("SLURM_CPUS_PER_TASK", "")
        if slurm_cpus.isdigit() and int(slurm_cpus) > 0:
            torch.set_num_threads(int(slurm_cpus))
        elif runtime.parallel_launcher:
            torch.set_num_threads(1)
        return
    try:
        count = int(threads)
    except (TypeError, ValueError):
        raise ConfigError(
            f"threads must be a positive integer or 'auto', got {threads!r}"
        ) from None
    if count < 1:
        raise ConfigError(f"threads must be a positive integer or 'auto', got {threads!r}")
    torch.set_num_threads(count)
    os.environ["OMP_NUM_THREADS"] = str(count)


def _resolve_checkpoint(ckpt_path: Any, run_dir: Path) -> Path | None:
    """``last`` → this run dir's last checkpoint; a path must exist and be readable."""
    if ckpt_path in (None, ""):
        return None
    if ckpt_path == "last":
        path = run_dir / "checkpoints" / "last.ckpt"
        if not path.exists():
            raise ConfigError(
                f"ckpt_path=last: no checkpoint at {path}. To resume a run, pass its directory: "
                f"hydra.run.dir=<that run's dir> ckpt_path=last, or ckpt_path=<path to a .ckpt>"
            )
        _remove_partial_checkpoints(path.parent)
        return path
    path = Path(str(ckpt_path)).expanduser()
    if not path.is_file():
        raise ConfigError(f"ckpt_path={ckpt_path}: no such checkpoint file")
    import torch

    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:  # noqa: BLE001 - any failure to unpickle means unreadable
        raise ConfigError(f"ckpt_path={ckpt_path}: unreadable checkpoint ({error})") from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise ConfigError(f"ckpt_path={ckpt_path}: not a Lightning checkpoint (no state_dict)")
    return path


def _remove_partial_checkpoints(directory: Path) -> None:
    """A kill during a checkpoint write leaves its temporary file; the resumed run cleans up."""
    from dlt_runner.core.checkpoint_io import PARTIAL_SUFFIX

    for partial in directory.glob(f".*{PARTIAL_SUFFIX}"):
        partial.unlink(missing_ok=True)


# --------------------------------------------------------------------------- build
@dataclass
class _Parts:
    datamodule: Any
    module: Any
    trainer: Any
    loggers: list[Any]


def _instantiate(node: DictConfig, what: str, **kwargs: Any) -> Any:
    """Instantiate a config node; a failure here is a config mistake, reported as such."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    try:
        return instantiate(node, **kwargs)
    except InstantiationException as error:
        cause = error.__cause__ or error
        if isinstance(cause, ConfigError):
            raise cause from None
        if isinstance(cause, ModuleNotFoundError):
            raise ConfigError(f"{what}: {cause}; install the missing package") from None
        raise ConfigError(f"could not build {what}: {_first_line(cause)}") from error


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[-1] if text else ''}"


def _build(cfg: DictConfig, runtime: Runtime, resume_from: Path | None) -> _Parts:
    from dlt_runner.core.callbacks import (
        DivergenceGuard,
        FitTimer,
        LastMetrics,
        LoggerCheckpointState,
        RandomState,
    )
    from dlt_runner.core.loggers import OptimiserStepAxis
    from dlt_runner.core.wandb_identity import configure_wandb, wandb_run_id

    datamodule = _instantiate(cfg.data, "data")
    datamodule.prepare_data()  # a dataset absent offline fails here, before anything starts
    module = _instantiate(cfg.model, "model")

    callbacks = [
        _instantiate(node, f"callbacks.{name}")
        for name, node in (cfg.get("callbacks") or {}).items()
        if node is not None and "_target_" in node
    ]
    if not any(isinstance(c, DivergenceGuard) for c in callbacks):
        callbacks.append(DivergenceGuard())
    callbacks.append(FitTimer())
    # Exact resume: every random stream, the loggers' history and the last logged values
    # travel with the checkpoint.
    callbacks += [RandomState(), LoggerCheckpointState(), LastMetrics()]
    callbacks.append(OptimiserStepAxis())

    logger_cfg = cfg.get("logger") or OmegaConf.create({})
    fast = bool(cfg.trainer.get("fast_dev_run"))
    if "wandb" in logger_cfg and not fast:
        configure_wandb(logger_cfg, cfg, runtime, wandb_run_id(runtime.run_dir, resume_from))
    loggers = [
        _instantiate(node, f"logger.{name}")
        for name, node in logger_cfg.items()
        if node is not None and "_target_" in node and not fast
    ]
    if not loggers:  # e.g. debug=fast or logger=none: nothing for the LR monitor to write to
        callbacks = [c for c in callbacks if type(c).__name__ != "LearningRateMonitor"]
    trainer_cfg = cfg.trainer
    if not callbacks_enabled(cfg):
        with open_dict(trainer_cfg):
            trainer_cfg.enable_checkpointing = False
            trainer_cfg.enable_progress_bar = False
    trainer = _instantiate(
        trainer_cfg,
        "trainer",
        callbacks=callbacks,
        logger=loggers or False,
        plugins=_plugins(trainer_cfg),
        **_runner_module_options(trainer_cfg, module),
    )
    # The module is built in torch's default dtype; Lightning converts it to the run's precision
    # (e.g. float64 for 64-true) only after restoring a checkpoint's weights into it, which
    # would round resumed float64 weights to float32. Convert first, then restore.
    module = trainer.precision_plugin.convert_module(module)
    return _Parts(datamodule, module, trainer, loggers)


def _log_cluster_environment(trainer: Any) -> None:
    """Name the cluster environment a distributed strategy joined (e.g. Lightning's
    ``SLURMEnvironment`` under SLURM), unless it is the single-machine default."""
    environment = getattr(trainer.strategy, "cluster_environment", None)
    if environment is None or type(environment).__name__ == "LightningEnvironment":
        return
    if trainer.is_global_zero:
        log.info(
            "cluster environment: %s (%d process(es) on %d node(s))",
            type(environment).__name__,
            trainer.world_size,
            trainer.num_nodes,
        )


def _plugins(trainer_cfg: DictConfig) -> list[Any]:
    """The trainer's configured plugins plus atomic checkpoint writes (unless one is set)."""
    from dlt_runner.core.checkpoint_io import AtomicCheckpointIO

    configured = trainer_cfg.get("plugins")
    plugins = [] if configured is None else list(_instantiate(configured, "trainer.plugins"))
    if not any(hasattr(plugin, "save_checkpoint") for plugin in plugins):
        plugins.append(AtomicCheckpointIO())
    return plugins  # passed as an argument, it replaces trainer.plugins in the config


def _runner_module_options(trainer_cfg: DictConfig, module: Any) -> dict[str, Any]:
    """Trainer arguments for a RunnerModule, which clips and accumulates in its own loop.

    Lightning refuses ``gradient_clip_val`` and ``accumulate_grad_batches`` under manual
    optimisation: they move onto the module and the Trainer gets the neutral values. A module
    whose evaluation differentiates (``eval_needs_grad``) needs a Trainer without inference mode.
    """
    from dlt_runner.core.module import RunnerModule
    from dlt_runner.core.optim_steps import NEUTRAL_TRAINER_OPTIONS, StepOptions

    if not isinstance(module, RunnerModule):
        return {}
    module.step_options = StepOptions.from_trainer_options(trainer_cfg)
    options = dict(NEUTRAL_TRAINER_OPTIONS)
    if module.eval_needs_grad:
        options["inference_mode"] = False
    return options


def callbacks_enabled(cfg: DictConfig) -> bool:
    """``callbacks=none`` also turns off Lightning's implicit checkpointing and progress bar."""
    return bool(cfg.get("callbacks"))


def _quiet_libraries() -> None:
    """Silence library notices that are not the user's business (deprecations inside
    Lightning, Lightning's advertising tips); warnings about the user's own run stay."""
    import warnings

    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
    logging.getLogger("pytorch_lightning.utilities.rank_zero").addFilter(_drop_tips)
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(_drop_tips)


def _drop_tips(record: logging.LogRecord) -> bool:
    return "Tip: For seamless cloud" not in str(record.msg)


# --------------------------------------------------------------------------- one-batch check
_SHAPE_ERROR = re.compile(
    r"shape|size|dimension|channels|out of bounds|must match|expected input", re.IGNORECASE
)


def _check_model_fits_data(cfg: DictConfig, parts: _Parts) -> None:
    """Run the first training batch through ``module.loss`` before anything is written.

    A net whose sizes do not fit the data (``model.net.sizes=[2,64,3]`` on 2-d targets)
    would otherwise fail inside the training loop with a traceback. Only shape errors are
    reported here, naming the config keys involved; anything else this check meets is left
    for the real step to raise with its full context. The check runs in eval mode without
    gradients and restores every random stream, so training is unchanged. Skipped under
    ``debug=fast`` (one batch of everything is what that run does anyway).
    """
    import random

    import numpy as np
    import torch

    datamodule, module, trainer = parts.datamodule, parts.module, parts.trainer
    if trainer.fast_dev_run or not hasattr(datamodule, "tensors") or not hasattr(module, "loss"):
        return
    try:
        batch = _first_batch(datamodule)
    except Exception:  # noqa: BLE001 - a datamodule that cannot build here builds in fit
        return
    batch = trainer.precision_plugin.convert_input(batch)
    streams = torch.get_rng_state(), np.random.get_state(), random.getstate()
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad(), trainer.precision_plugin.forward_context():
            module.loss(batch)
    except (RuntimeError, ValueError, IndexError) as error:
        message = _first_line(error).split(": ", 1)[-1]
        if _SHAPE_ERROR.search(message):
            raise ConfigError(_does_not_fit(cfg, batch, message)) from None
    except Exception:  # noqa: BLE001, S110 - not a shape mismatch: the fit reports it in context
        pass
    finally:
        module.train(was_training)
        torch.set_rng_state(streams[0])
        np.random.set_state(streams[1])
        random.setstate(streams[2])


def _first_batch(datamodule: Any) -> dict[str, Any]:
    """The first minibatch training will see (the datamodule's own iterable), else 8 rows."""
    from dlt_runner.core.datamodule import TrainChunks

    datamodule.tensors("train")  # builds the splits once; setup() reuses them
    loader = datamodule.train_dataloader()
    if isinstance(loader, TrainChunks):
        return next(iter(loader))[0]
    return {name: tensor[:8] for name, tensor in datamodule.tensors("train").items()}


def _does_not_fit(cfg: DictConfig, batch: dict[str, Any], message: str) -> str:
    model = cfg.model.get("net") if cfg.model.get("net") is not None else cfg.model
    prefix = "model.net" if cfg.model.get("net") is not None else "model"
    sizes = [
        f"{prefix}.{key}={_short(value)}"
        for key, value in _leaves(model)
        if _is_size(value) and not key.startswith("_")
    ]
    choices = [
        f"data.{key}={value}"
        for key, value in _leaves(cfg.data)
        if isinstance(value, str)
        and not key.startswith("_")
        and key != "dtype"
        and "/" not in value
    ]
    shapes = ", ".join(f"{name} {list(tensor.shape[1:])}" for name, tensor in batch.items())
    return (
        f"the model does not fit the data: {message}. Model: {', '.join(sizes) or prefix}; "
        f"data ({', '.join(choices) or cfg.data.get('_target_', 'data')}) gives one example as "
        f"{shapes}. Make {prefix}.* match data.*"
    )


def _leaves(node: Any, prefix: str = "") -> list[tuple[str, Any]]:
    from omegaconf import DictConfig as _Dict

    out: list[tuple[str, Any]] = []
    for key, value in node.items_ex(resolve=True) if isinstance(node, _Dict) else []:
        name = f"{prefix}{key}"
        if isinstance(value, _Dict):
            out += _leaves(value, f"{name}.")
        else:
            out.append((name, value))
    return out


def _is_size(value: Any) -> bool:
    from omegaconf import ListConfig

    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return isinstance(value, ListConfig) and all(
        isinstance(item, int) and not isinstance(item, bool) for item in value
    )


def _short(value: Any) -> str:
    return str(OmegaConf.to_container(value)) if not isinstance(value, int) else str(value)


# --------------------------------------------------------------------------- fit
def _fit_test_analyse(cfg: DictConfig, parts: _Parts, resume_from: Path | None) -> dict[str, Any]:
    from dlt_runner.core.callbacks import DIVERGED_KEY, TIMING_PREFIX
    from dlt_runner.core.loggers import log_curves, log_final

    trainer, module, datamodule = parts.trainer, parts.module, parts.datamodule
    trainer.fit(module, datamodule=datamodule, ckpt_path=str(resume_from) if resume_from else None)
    metrics = _scalars(trainer.callback_metrics)
    timing = {
        name.removeprefix(TIMING_PREFIX): metrics.pop(name)
        for name in list(metrics)
        if name.startswith(TIMING_PREFIX)
    }
    record: dict[str, Any] = {
        "status": "ok",
        "timing": {
            "fit_seconds": round(timing.get("fit_seconds", 0.0), 3),
            "fit_cpu_seconds": round(timing.get("fit_cpu_seconds", 0.0), 3),
            "steps": int(timing.get("steps", 0)),
        },
    }
    curves: dict[str, list[float]] = {}
    if DIVERGED_KEY in metrics:
        record["status"] = "diverged"
    else:
        if cfg.get("test", True):
            tester = _single_process_tester(cfg, trainer, parts.loggers)
            for results in tester.test(module, datamodule=datamodule, verbose=False):
                metrics.update(_scalars(results))
        # ddp_spawn trains in child processes: the main process's copy gets the weights back but
        # not the precision plugin's dtype or the device, which the analysis needs.
        module = trainer.precision_plugin.convert_module(module).to(trainer.strategy.root_device)
        module.eval()
        if trainer.is_global_zero:
            log.info(
                "fit ended at step %d; running %s.analysis (the paper's measurements)",
                trainer.global_step,
                type(module).__name__,
            )
        for name, value in module.analysis(datamodule).items():
            key = name if "/" in name else f"analysis/{name}"
            if isinstance(value, (list, tuple)):
                curves[key] = [float(v) for v in value]
            else:
                metrics[key] = float(value)
    if trainer.is_global_zero:
        final = {k: v for k, v in metrics.items() if k.startswith("analysis/")}
        # The last optimiser step (a spawned fit's global_step stays in its workers).
        log_final(parts.loggers, final, record["timing"]["steps"])
        log_curves(parts.loggers, curves, record["timing"]["steps"])
    record["metrics"] = metrics
    if curves:
        record["curves"] = curves
    return record


def _single_process_tester(cfg: DictConfig, trainer: Any, loggers: list[Any]) -> Any:
    """The trainer that tests: ``trainer`` itself, except after a spawned (ddp_spawn) fit.

    A spawn strategy would start its processes again just to test, and Lightning's CSV logger
    cannot append to a file that another spawned stage wrote; the test set is small, so the
    main process tests on one device of the same accelerator and precision.
    """
    if getattr(trainer.strategy, "_start_method", None) != "spawn":
        return trainer
    import pytorch_lightning as pl

    from dlt_runner.core.loggers import OptimiserStepAxis

    # The workers' global_step does not come back to this process; FitTimer's step count does.
    steps = int(trainer.callback_metrics.get("timing/steps", trainer.global_step))
    return pl.Trainer(
        accelerator=cfg.trainer.accelerator,
        devices=1,
        precision=cfg.trainer.precision,
        inference_mode=trainer.test_loop.inference_mode,
        logger=loggers or False,
        callbacks=[OptimiserStepAxis(fixed_step=steps)],  # test metrics at the last step
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )


def _scalars(metrics: dict[str, Any]) -> dict[str, float]:
    out = {}
    for name, value in metrics.items():
        try:
            out[name] = float(value)
        except (TypeError, ValueError):
            continue
    return out

"""Console entry points: ``dlt-run`` (Hydra app), ``dlt-claims``, ``dlt-report``.

Only this module and ``run.py`` touch Hydra. Errors a user can fix end with a one-line
message and exit status 2; ``HYDRA_FULL_ERROR=1`` shows the full trace instead (any other
value, ``0`` included, means off, as in Hydra).
"""

from __future__ import annotations

import logging
import os
import re
import sys
import traceback
from collections.abc import Callable
from typing import Any

from omegaconf import DictConfig

from dlt_runner import CONFIG_DIR, __version__
from dlt_runner.core.errors import USER_ERROR_EXIT, ConfigError

#: Libraries whose versions ``dlt-run --version`` prints (read from package metadata: no import).
VERSIONED = ("torch", "pytorch-lightning", "hydra-core", "omegaconf", "wandb")


def _task(cfg: DictConfig) -> Any:
    """One Hydra job: run the experiment, return the metric a sweeper optimises (if any)."""
    from dlt_runner.run import run

    record = run(cfg)
    analysis = {k: v for k, v in record["metrics"].items() if k.startswith(("analysis/", "test/"))}
    shown = ", ".join(f"{k}={v:.4g}" for k, v in sorted(analysis.items())[:8])
    logging.getLogger("dlt_runner").info(
        "%s in %.1fs: %s (all metrics: %s/metrics.json)",
        record["status"],
        record["seconds"],
        shown or "no final metrics",
        _run_dir(cfg),
    )
    name = cfg.get("optimized_metric")
    if not name:
        return None
    if record["status"] != "ok":
        return float("nan")
    if name not in record["metrics"]:
        raise ConfigError(
            f"optimized_metric={name} is not a final metric of this run; "
            f"choose one of: {', '.join(sorted(record['metrics']))}"
        )
    return record["metrics"][name]


def _run_dir(cfg: DictConfig) -> str:
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.get().runtime.output_dir if HydraConfig.initialized() else cfg.paths.run_dir


#: A user error of a job, held until Hydra has returned (see :func:`_job`).
_held_errors: list[ConfigError] = []
#: Whether the user asked for full traces (``HYDRA_FULL_ERROR=1``); set by ``_report_errors``.
_full_trace = [False]


def _job(cfg: DictConfig) -> Any:
    """``_task``, except that a user error is raised after Hydra returns, as one line.

    Hydra reports a failed job with an extra "Error executing job with overrides" line. In
    a single run, and in a plain sweep run in this process (basic sweeper and launcher), the
    error is held instead: the remaining jobs of the sweep are skipped, and the error is
    raised once Hydra returns, naming the job. Sweepers that need every job's value (Optuna)
    and launchers with their own processes get the error through Hydra as usual.
    """
    from hydra.core.hydra_config import HydraConfig
    from hydra.errors import HydraException
    from hydra.types import RunMode
    from omegaconf.errors import OmegaConfBaseException

    if not HydraConfig.initialized() or _full_trace[0]:
        return _task(cfg)
    hydra = HydraConfig.get()
    multirun = hydra.mode == RunMode.MULTIRUN
    in_process = "BasicSweeper" in str(hydra.sweeper.get("_target_", "")) and (
        "BasicLauncher" in str(hydra.launcher.get("_target_", ""))
    )
    if multirun and not in_process:
        return _task(cfg)
    if _held_errors:  # an earlier job of this sweep made the mistake: skip the rest
        return None
    try:
        return _task(cfg)
    except (ConfigError, HydraException, OmegaConfBaseException) as error:
        if _is_bug(error):
            raise
        job = f"job {hydra.job.override_dirname or hydra.job.num}: " if multirun else ""
        _held_errors.append(ConfigError(f"{job}{_message(error)}"))
        return None


def _hydra_app() -> None:
    import hydra

    _check_modes(sys.argv[1:])
    quiet_launcher_schema_notice()
    _held_errors.clear()
    app = hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="config")
    app(_job)()
    if _held_errors:
        raise _held_errors.pop()


def quiet_launcher_schema_notice() -> None:
    """conf/hydra/launcher/submitit_{local,slurm}.yaml replace the submitit plugin's presets of
    the same names (to derive resources from the trainer); Hydra validates them against the
    plugin's schemas and says so on every launch. The validation is wanted, the notice is not."""
    import warnings

    warnings.filterwarnings(
        "ignore",
        message=r"(?s).*'hydra/launcher/submitit_(local|slurm)' is validated against ConfigStore",
    )


def _report_errors(program: str, main: Callable[[], Any]) -> Any:
    """Run ``main``; user mistakes become ``program: error: ...`` and exit 2, bugs keep a trace."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    full_trace = os.environ.get("HYDRA_FULL_ERROR") == "1"
    _full_trace[0] = full_trace
    # Hydra prints and exits 1 on its own; asked for the full error, it re-raises to us instead.
    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        return main()
    except (ConfigError, HydraException, OmegaConfBaseException) as error:
        if full_trace or _is_bug(error):
            raise
        print(f"{program}: error: {_message(error)}", file=sys.stderr)
        raise SystemExit(USER_ERROR_EXIT) from None
    except OSError as error:
        if full_trace or not _raised_by_hydra(error):
            raise
        print(f"{program}: error: {_output_dir_message(error)}", file=sys.stderr)
        raise SystemExit(USER_ERROR_EXIT) from None
    except Exception:
        if full_trace:
            raise
        traceback.print_exc()
        raise SystemExit(1) from None
    finally:
        if not full_trace:
            os.environ.pop("HYDRA_FULL_ERROR", None)


def _is_bug(error: BaseException) -> bool:
    """An instantiation failure that is not about the config is a bug in our code."""
    from hydra.errors import InstantiationException

    return isinstance(error, InstantiationException) and not isinstance(
        error.__cause__, ConfigError
    )


_NOT_FOUND = re.compile(r"Could not find '([^']+)'")
_NOT_IN_DEFAULTS = re.compile(r"Could not override '([^']+)'\. No match in the defaults list")
_NOT_A_KEY = re.compile(r"Could not override '([^']+)'\.\s+To append to your config use")
#: Lines OmegaConf appends to its messages (where in the config, the node's type).
_DETAIL = re.compile(r"^\s*(full_key|object_type|reference_type|key|value_type)[:=]")


def _message(error: BaseException) -> str:
    text = str(error).strip()
    if match := _NOT_FOUND.search(text):
        return _unknown_option(match.group(1))
    if (match := _NOT_IN_DEFAULTS.search(text)) and match.group(1) == "claim":
        return (
            "claim grids are not a dlt-run option; run a paper's claims with "
            "dlt-claims <paper> (e.g. dlt-claims imde)"
        )
    if match := _NOT_A_KEY.search(text):
        return _unknown_key(match.group(1))
    # Hydra appends the config search path to some errors, OmegaConf the node's details:
    # neither is the user's business.
    lines = [
        line.strip()
        for line in text.split("\n\nConfig search path:")[0].splitlines()
        if line.strip() and not _DETAIL.match(line)
    ]
    full_key = getattr(error, "full_key", None)
    if full_key and full_key not in " ".join(lines):
        lines.append(f"(at {full_key})")
    if text.startswith("Interpolation key"):
        lines.append(
            "- the config groups chosen do not fit together (e.g. a data=... of another paper)"
        )
    cause = error.__cause__
    if cause is not None and str(cause).strip() and str(cause).strip() not in text:
        lines.append(str(cause).strip().splitlines()[0])
    return " ".join(lines)


def _unknown_key(key: str) -> str:
    """``model.foo=1`` where ``model`` has no ``foo``: name the keys it has."""
    parent, _, name = key.rpartition(".")
    where = parent or "the config"
    keys = _keys_at(parent, skip=key)
    listed = f"; {where} has: {', '.join(keys)}" if keys else ""
    return f"{key} is not a config key{listed}. To add a new key: +{key}=..."


def _keys_at(parent: str, skip: str) -> list[str]:
    """Keys of ``parent`` in the config the command line composes without the bad override."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import DictConfig, OmegaConf

    overrides = [
        arg
        for arg in sys.argv[1:]
        if "=" in arg and not arg.startswith(("-", "hydra.", skip + "="))
    ]
    try:
        GlobalHydra.instance().clear()
        with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
            cfg = compose("config", overrides=overrides)
        node = OmegaConf.select(cfg, parent) if parent else cfg
    except Exception:  # noqa: BLE001 - the list is a courtesy; the message stands without it
        return []
    return sorted(str(k) for k in node) if isinstance(node, DictConfig) else []


def _unknown_option(path: str) -> str:
    """``experiment/imde/nope`` → the group's options as users type them."""
    from dlt_runner.core.resolvers import group_options

    group, _, option = path.partition("/")
    options = group_options(group)
    if not options:
        return f"no config {path!r}"
    return f"{group}={option} does not exist; choose one of: {', '.join(options)}"


def _check_modes(argv: list[str]) -> None:
    """Hydra's run modes exclude each other; say which and how to get what was meant."""
    modes = {"-m": "--multirun", "--multirun": "--multirun", "-c": "--cfg", "--cfg": "--cfg"}
    modes |= {"-i": "--info", "--info": "--info", "--run": "--run", "-r": "--run"}
    used = sorted({modes[arg] for arg in argv if arg in modes})
    if len(used) > 1:
        raise ConfigError(
            f"{' and '.join(used)} cannot be combined; to print the config of one job of a "
            f"sweep, drop -m and give one value per key: dlt-run <overrides> --cfg job"
        )


def _raised_by_hydra(error: OSError) -> bool:
    """Whether Hydra raised it while making the run (or sweep) directory and its files."""
    frames = traceback.extract_tb(error.__traceback__)
    ours = [
        frame
        for frame in frames
        if "site-packages" in frame.filename or "dlt_runner" in frame.filename
    ]
    return bool(ours) and f"{os.sep}hydra{os.sep}" in ours[-1].filename


def _output_dir_message(error: OSError) -> str:
    reason = error.strerror or type(error).__name__
    return (
        f"cannot create the run directory {error.filename!r} ({reason}); set hydra.run.dir "
        f"(hydra.sweep.dir with -m) to a directory that can be created and written"
    )


def version_text() -> str:
    """``dlt_runner <version>`` and the versions of the libraries a run depends on."""
    from importlib.metadata import PackageNotFoundError, version

    lines = [f"dlt_runner {__version__}"]
    for package in VERSIONED:
        try:
            lines.append(f"{package} {version(package)}")
        except PackageNotFoundError:
            lines.append(f"{package} (not installed)")
    return "\n".join(lines)


def run_main() -> None:
    """``dlt-run [overrides...]`` / ``dlt-run -m key=a,b ...`` (Hydra command line)."""
    if "--version" in sys.argv[1:]:
        print(version_text())
        return
    from dlt_runner.core.startup import collector_paused

    if {"-m", "--multirun"} & set(sys.argv[1:]):
        # This process composes and launches jobs, and may live long: it keeps collecting.
        _report_errors("dlt-run", _hydra_app)
        return
    with collector_paused():  # until the run's imports are done (see core/startup.py)
        _report_errors("dlt-run", _hydra_app)


def claims_main(argv: list[str] | None = None) -> None:
    """``dlt-claims <paper>|all [overrides...]``: run claim grids, print holds/fails, exit 0/1."""
    from dlt_runner.sweeps.claims import main as claims

    argv = sys.argv[1:] if argv is None else argv
    code = _report_errors("dlt-claims", lambda: claims(argv))
    raise SystemExit(code)


def report_main(argv: list[str] | None = None) -> None:
    """``dlt-report SWEEP_DIR``: summary.csv, mean ± std over seeds, plots of swept metrics."""
    from dlt_runner.sweeps.report import main as report

    argv = sys.argv[1:] if argv is None else argv
    raise SystemExit(_report_errors("dlt-report", lambda: report(argv)))

"""User-facing errors: a mistake on the command line ends with a short message and exit 2.

Anything that raises :class:`ConfigError` (or a subclass) is reported by the CLI as
``dlt-run: error: <message>`` with exit status 2 and no stack trace (the full trace is
shown when ``HYDRA_FULL_ERROR=1`` is set). Everything else is a bug and keeps its trace.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TypeVar

T = TypeVar("T")

USER_ERROR_EXIT = 2


class ConfigError(ValueError):
    """A config value, override or input file the user can fix; the message says how."""


class DatasetUnavailable(ConfigError):
    """A dataset that must be downloaded is absent and the machine is offline."""


def choose(kind: str, name: str, table: Mapping[str, T]) -> T:
    """Look ``name`` up in a registry, or fail listing the valid names.

    >>> choose("integrator", "lepfrog", {"euler": 1, "leapfrog": 2})
    Traceback (most recent call last):
    ...
    dlt_runner.core.errors.ConfigError: unknown integrator 'lepfrog'; choose one of: euler, leapfrog
    """
    try:
        return table[name]
    except (KeyError, TypeError):
        raise ConfigError(unknown_choice(kind, name, table)) from None


def unknown_choice(kind: str, name: object, choices: Iterable[str]) -> str:
    """The one-line message for a value outside an enumerated set."""
    return f"unknown {kind} {name!r}; choose one of: {', '.join(choices)}"


def positive_int(key: str, value: object) -> int:
    """``int(value)`` if it is a positive integer, else a ConfigError naming the config key."""
    try:
        number = int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        number = 0
    if number < 1 or number != value:
        raise ConfigError(f"{key} must be a positive integer, got {value!r}")
    return number

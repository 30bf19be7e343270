"""Disk cache for generated datasets: build once, load on every later run with the same params.

``cached_arrays(cache_dir, params, build)`` names an ``.npz`` file by a stable hash of
``params`` (JSON with sorted keys, so dict order does not matter), so any change of a
generation parameter (seed, sizes, simulator settings) gives a new file and never a stale one.
Writes are atomic (temporary file in the same directory + ``os.replace``): a run killed while
writing, or two jobs of a multirun generating the same data at once, never leave a truncated
file under the final name.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np


def _json_value(value: object) -> object:
    if isinstance(value, np.generic | np.ndarray):
        return value.tolist()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"cache params must be JSON-like; got {type(value).__name__}: {value!r}")


def params_key(params: Mapping[str, object]) -> str:
    """Stable 16-hex-digit key of JSON-like ``params`` (independent of key order; numpy scalars
    count as the Python numbers they equal)."""
    text = json.dumps(params, sort_keys=True, separators=(",", ":"), default=_json_value)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def cache_path(
    cache_dir: str | os.PathLike[str], params: Mapping[str, object], prefix: str = "arrays"
) -> Path:
    """Where :func:`cached_arrays` stores the arrays built for ``params``."""
    return Path(cache_dir) / f"{prefix}-{params_key(params)}.npz"


def cached_arrays(
    cache_dir: str | os.PathLike[str],
    params: Mapping[str, object],
    build: Callable[[], Mapping[str, np.ndarray]],
    prefix: str = "arrays",
) -> dict[str, np.ndarray]:
    """The arrays of ``build()``, loaded from ``cache_dir`` if built before with equal ``params``.

    ``params`` must determine ``build()``'s output (include the seed). ``prefix`` only makes
    the file names readable (e.g. the paper's slug); it is not part of the key.
    """
    path = cache_path(cache_dir, params, prefix)
    if path.exists():
        with np.load(path, allow_pickle=False) as stored:
            return {name: stored[name] for name in stored.files}
    arrays = {name: np.asarray(value) for name, value in build().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-", suffix=".npz")
    try:
        with os.fdopen(handle, "wb") as file:
            np.savez(file, **arrays)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return arrays

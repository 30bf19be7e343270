"""Start-up: the heavy imports of a run, made with Python's cyclic garbage collector paused.

Importing torch, Lightning and W&B creates well over a million objects that live as long as
the process (modules, classes, functions, docstrings). While they are being created, the
allocations trigger full collections that walk all of them again and again, and the
interpreter walks them once more when it exits: on a 2-core machine that is about 2 s of a
bare ``import torch, pytorch_lightning, wandb, hydra`` (4.6 s; 2.6 s with the collector
paused and the result frozen). Here the collector is paused while a run imports what it
needs, then everything imported is moved to the permanent generation (:func:`gc.freeze`),
which later collections skip. Garbage that jobs make is collected as usual; the cost is the
few MiB of cyclic garbage the imports themselves leave, kept for the process's life.

Use :func:`collector_paused` around a whole command (the CLI) and :func:`import_for` in the run
itself; both are idempotent per process and restore the collector on every exit path.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
from collections.abc import Iterator
from typing import Any

from omegaconf import DictConfig, ListConfig

#: Whether this process has frozen its imports, and whether the pause now in force is ours.
_state = {"frozen": False, "paused": False}


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Pause the cyclic collector until :func:`freeze_imports` (or the end of the block).

    Nothing happens if this process has already frozen its imports, or if the collector was
    already disabled by someone else (their choice is left alone).
    """
    ours = not _state["frozen"] and not _state["paused"] and gc.isenabled()
    if ours:
        gc.disable()
        _state["paused"] = True
    try:
        yield
    finally:
        if ours and _state["paused"]:
            gc.enable()
            _state["paused"] = False


def freeze_imports() -> None:
    """Move everything alive now to the permanent generation (once per process) and resume
    collecting, if the pause was ours."""
    if _state["frozen"]:
        return
    gc.freeze()
    _state["frozen"] = True
    if _state["paused"]:
        gc.enable()
        _state["paused"] = False


def import_for(cfg: DictConfig) -> None:
    """Import torch, Lightning and every module a ``_target_`` of ``cfg`` names (data, model,
    loggers, callbacks, trainer plugins: W&B with its logger), collector paused, then freeze.

    A target that cannot be imported is skipped here: instantiating it reports the mistake
    with the config key it came from.
    """
    with collector_paused():
        import pytorch_lightning  # noqa: F401
        import torch  # noqa: F401

        for module in sorted(target_modules(cfg)):
            with contextlib.suppress(Exception):
                importlib.import_module(module)
        freeze_imports()


def target_modules(node: Any) -> set[str]:
    """The modules that hold the ``_target_`` classes and functions in ``node`` (unresolved)."""
    modules: set[str] = set()
    if not isinstance(node, (DictConfig, ListConfig)) or node._is_none() or node._is_missing():
        return modules
    if node._is_interpolation():
        return modules
    if isinstance(node, DictConfig):
        for key in node:
            child = node._get_node(key)
            if key == "_target_" and not child._is_interpolation():
                module = str(child._value()).rpartition(".")[0]
                if module:
                    modules.add(module)
            elif isinstance(child, (DictConfig, ListConfig)):
                modules |= target_modules(child)
    else:
        for index in range(len(node)):
            modules |= target_modules(node._get_node(index))
    return modules

"""OmegaConf resolvers our config tree uses; registered when ``dlt_runner`` is imported."""

from __future__ import annotations

import os
import secrets
import sys

from omegaconf import OmegaConf

#: Fixed for the life of this process (and cached into every job's config by Hydra), so all jobs
#: of one sweep agree on the sweep dir while two launches in the same second never collide.
LAUNCH_TOKEN = f"{os.getpid()}{secrets.token_hex(2)}"


def progress_refresh(interactive_rate: int = 10) -> int:
    """Progress-bar refresh rate: ``$DLT_PROGRESS_REFRESH`` if set; else ``interactive_rate`` on
    a terminal and 0 (no bar) when output goes to a file or pipe, where a bar is only noise
    and its writes cost time (W&B captures each one)."""
    if "DLT_PROGRESS_REFRESH" in os.environ:
        return int(os.environ["DLT_PROGRESS_REFRESH"])
    return int(interactive_rate) if sys.stderr.isatty() else 0


def register() -> None:
    """``${dlt.unique:}``: this launch's token, used in the run and sweep dir names;
    ``${dlt.progress_refresh:N}``: see :func:`progress_refresh`."""
    if not OmegaConf.has_resolver("dlt.unique"):
        OmegaConf.register_new_resolver("dlt.unique", lambda: LAUNCH_TOKEN, use_cache=True)
    if not OmegaConf.has_resolver("dlt.progress_refresh"):
        OmegaConf.register_new_resolver("dlt.progress_refresh", progress_refresh)

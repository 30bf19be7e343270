"""OmegaConf resolvers our config tree uses; registered when ``dlt_runner`` is imported."""

from __future__ import annotations

import os
import secrets

from omegaconf import OmegaConf

#: Fixed for the life of this process (and cached into every job's config by Hydra), so all jobs
#: of one sweep agree on the sweep dir while two launches in the same second never collide.
LAUNCH_TOKEN = f"{os.getpid()}{secrets.token_hex(2)}"


def register() -> None:
    """``${dlt.unique:}``: this launch's token, used in the run and sweep dir names."""
    if not OmegaConf.has_resolver("dlt.unique"):
        OmegaConf.register_new_resolver("dlt.unique", lambda: LAUNCH_TOKEN, use_cache=True)

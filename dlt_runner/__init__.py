"""dlt_runner: a Hydra + Lightning runner for fifteen 2022 deep-learning theory papers."""

from pathlib import Path

from dlt_runner.core import resolvers as _resolvers

__version__ = "0.1.0"

#: The Hydra config tree (``conf/`` at the project root, beside this package).
CONFIG_DIR = Path(__file__).resolve().parent.parent / "conf"

_resolvers.register()

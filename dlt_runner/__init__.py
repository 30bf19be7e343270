"""dlt_runner: a Hydra + Lightning runner for fifteen 2022 deep-learning theory papers."""

from pathlib import Path

from dlt_runner.core import resolvers as _resolvers

__version__ = "0.1.0"

_PACKAGE_DIR = Path(__file__).resolve().parent
#: The Hydra config tree: ``dlt_runner/conf`` in an installed wheel (copied there by the build),
#: else ``conf/`` at the project root, beside this package (a checkout or an editable install).
CONFIG_DIR = (
    _PACKAGE_DIR / "conf" if (_PACKAGE_DIR / "conf").is_dir() else _PACKAGE_DIR.parent / "conf"
)

_resolvers.register()

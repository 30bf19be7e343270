"""Build hook: ship the config tree ``conf/`` (kept at the top of the repository, where
users edit it) inside the package as ``dlt_runner/conf``, so an installed wheel composes
configs without the repository. ``dlt_runner.CONFIG_DIR`` finds either layout. Everything
else about the build is in pyproject.toml.
"""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

CONFIG_SOURCE = Path(__file__).resolve().parent / "conf"


class BuildPyWithConfigs(build_py):
    """``build_py`` that also copies ``conf/**/*.yaml`` to ``<build>/dlt_runner/conf``."""

    def run(self) -> None:
        super().run()
        if self.editable_mode:  # an editable install reads conf/ in place
            return
        target = Path(self.build_lib) / "dlt_runner" / "conf"
        for source in sorted(CONFIG_SOURCE.rglob("*.yaml")):
            destination = target / source.relative_to(CONFIG_SOURCE)
            self.mkpath(str(destination.parent))
            self.copy_file(str(source), str(destination))


setup(cmdclass={"build_py": BuildPyWithConfigs})

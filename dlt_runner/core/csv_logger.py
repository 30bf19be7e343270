"""Lightning's CSV logger, made safe to append to a metrics file another process wrote.

A resumed run (new process) or a test after a ``ddp_spawn`` fit (other processes wrote the
file) starts with a writer that knows none of the file's columns; Lightning's writer then
rewrites the file with only the new columns and fails ("dict contains fields not in
fieldnames"). This writer first adopts the columns already in the file.
"""

from __future__ import annotations

import csv

from pytorch_lightning.loggers import CSVLogger as _LightningCSVLogger
from pytorch_lightning.loggers.csv_logs import ExperimentWriter


class AppendingExperimentWriter(ExperimentWriter):
    def save(self) -> None:
        if self.metrics and self._fs.isfile(self.metrics_file_path):
            with self._fs.open(self.metrics_file_path, "r", newline="") as handle:
                header = next(csv.reader(handle), [])
            missing = [key for key in header if key not in self.metrics_keys]
            self.metrics_keys.extend(missing)
            self.metrics_keys.sort()
        super().save()


class CSVLogger(_LightningCSVLogger):
    """``pytorch_lightning.loggers.CSVLogger`` with :class:`AppendingExperimentWriter`."""

    @property
    def experiment(self) -> AppendingExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = AppendingExperimentWriter(log_dir=self.log_dir)
        return self._experiment

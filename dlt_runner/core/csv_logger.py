"""Lightning's CSV logger, made to keep one run's history across resumes and processes.

Lightning's writer deletes ``metrics.csv`` when its folder is not empty, and starts with
no columns, so a resumed run (a new process) or a test after a ``ddp_spawn`` fit (other
processes wrote the file) would lose or garble the history. This logger:

- keeps the file and first adopts the columns already in it;
- flushes its rows whenever a checkpoint is saved and records in the checkpoint how many
  rows the file then held (:meth:`CSVLogger.checkpoint_state`);
- on resume, cuts the file back to that many rows (:meth:`CSVLogger.restore_checkpoint_state`):
  rows logged between that checkpoint and the kill are logged again by the resumed run, so
  after a resume every row appears once.
"""

from __future__ import annotations

import csv
from typing import Any

from pytorch_lightning.loggers import CSVLogger as _LightningCSVLogger
from pytorch_lightning.loggers.csv_logs import ExperimentWriter


class AppendingExperimentWriter(ExperimentWriter):
    def _check_log_dir_exists(self) -> None:
        """Keep an existing ``metrics.csv``: it is this run's history (Lightning deletes it)."""

    def save(self) -> None:
        if self.metrics and self._fs.isfile(self.metrics_file_path):
            with self._fs.open(self.metrics_file_path, "r", newline="") as handle:
                header = next(csv.reader(handle), [])
            missing = [key for key in header if key not in self.metrics_keys]
            self.metrics_keys.extend(missing)
            self.metrics_keys.sort()
        super().save()

    def rows(self) -> list[list[str]]:
        """The file's lines as CSV records, header first (empty when there is no file)."""
        if not self._fs.isfile(self.metrics_file_path):
            return []
        with self._fs.open(self.metrics_file_path, "r", newline="") as handle:
            return list(csv.reader(handle))

    def keep_rows(self, count: int) -> None:
        """Cut the file back to its header and first ``count`` rows."""
        records = self.rows()
        if len(records) <= count + 1:
            return
        with self._fs.open(self.metrics_file_path, "w", newline="") as handle:
            csv.writer(handle).writerows(records[: count + 1])


class CSVLogger(_LightningCSVLogger):
    """``pytorch_lightning.loggers.CSVLogger`` whose history survives a resume."""

    @property
    def experiment(self) -> AppendingExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = AppendingExperimentWriter(log_dir=self.log_dir)
        return self._experiment

    def checkpoint_state(self) -> dict[str, Any]:
        """Flush pending rows; the number of rows the file holds goes into the checkpoint."""
        self.save()
        return {"rows": max(0, len(self.experiment.rows()) - 1)}

    def restore_checkpoint_state(self, state: dict[str, Any]) -> None:
        """Drop the rows logged after the checkpoint being resumed from."""
        self.experiment.keep_rows(int(state["rows"]))

"""Checkpoint files that are either complete or absent, whatever moment a kill lands on.

Lightning writes a checkpoint through an ``fsspec`` transaction whose temporary file lives
in the system temp directory; when that is another filesystem than the run directory, the
final move is a copy into place, and a kill during the copy leaves a truncated
``last.ckpt``. Here the bytes go to a temporary file beside the target, are flushed to
disk, and replace the target in one ``os.replace`` (atomic on POSIX and Windows).
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from pytorch_lightning.plugins.io import TorchCheckpointIO

PARTIAL_SUFFIX = ".partial"


def partial_prefix(path: Path) -> str:
    """Name prefix of the temporary file a checkpoint is written to before it replaces ``path``."""
    return f".{path.name}."


class AtomicCheckpointIO(TorchCheckpointIO):
    """``TorchCheckpointIO`` whose ``save_checkpoint`` replaces the file atomically."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | os.PathLike, storage_options: Any = None
    ) -> None:
        if storage_options is not None:
            raise TypeError(
                f"{type(self).__name__}.save_checkpoint takes no storage_options, "
                f"got {storage_options!r}"
            )
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        descriptor, name = tempfile.mkstemp(
            dir=target.parent, prefix=partial_prefix(target), suffix=PARTIAL_SUFFIX
        )
        try:
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(buffer.getbuffer())
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(name, 0o644)  # mkstemp creates 0600; checkpoints are for everyone to read
            os.replace(name, target)
        except BaseException:
            Path(name).unlink(missing_ok=True)
            raise

"""Read a W&B offline run file (``run-<id>.wandb``) back: config, history, summary.

wandb ships no reader. The file is a 7-byte header (``:W&B``, magic, version) followed by
LevelDB-log blocks of 32 KiB; each chunk has a 7-byte header (crc32c, little-endian length,
type FULL/FIRST/MIDDLE/LAST), and the reassembled payloads are protobuf
``wandb_internal_pb2.Record`` messages.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_FILE_HEADER = 7
_BLOCK = 32 * 1024
_CHUNK_HEADER = 7
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


def _payloads(data: bytes) -> Iterator[bytes]:
    """Reassembled record payloads, in file order."""
    offset, pending = _FILE_HEADER, b""
    while offset + _CHUNK_HEADER <= len(data):
        room = _BLOCK - offset % _BLOCK
        if room < _CHUNK_HEADER:  # block trailer padding
            offset += room
            continue
        length, kind = struct.unpack_from("<HB", data, offset + 4)
        if length == 0 and kind == 0:  # zero padding up to the block end
            offset += room
            continue
        chunk = data[offset + _CHUNK_HEADER : offset + _CHUNK_HEADER + length]
        offset += _CHUNK_HEADER + length
        if kind == _FULL:
            yield chunk
        elif kind == _FIRST:
            pending = chunk
        elif kind == _MIDDLE:
            pending += chunk
        elif kind == _LAST:
            yield pending + chunk
            pending = b""


def _key(item: Any) -> str:
    """W&B writes either ``key`` or the path ``nested_key`` (``train/loss`` is one nested key)."""
    return item.key or "/".join(item.nested_key)


def _value(json_text: str) -> Any:
    try:
        return json.loads(json_text)
    except json.JSONDecodeError:
        return json_text


@dataclass
class OfflineRun:
    """What an offline run recorded."""

    run_id: str = ""
    group: str = ""
    name: str = ""
    tags: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    exit_code: int | None = None

    def series(self, key: str) -> list[Any]:
        """All logged values of one history key, in order."""
        return [row[key] for row in self.history if key in row]


def read_offline_run(path: str | Path) -> OfflineRun:
    """Parse one ``run-<id>.wandb`` file."""
    from wandb.proto import wandb_internal_pb2 as pb

    run = OfflineRun()
    for payload in _payloads(Path(path).read_bytes()):
        record = pb.Record()
        record.ParseFromString(payload)
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run.run_id, run.group = record.run.run_id, record.run.run_group
            run.name, run.tags = record.run.display_name, list(record.run.tags)
            for item in record.run.config.update:
                run.config[_key(item)] = _value(item.value_json)
        elif kind == "config":
            for item in record.config.update:
                run.config[_key(item)] = _value(item.value_json)
        elif kind == "history":
            run.history.append(
                {_key(item): _value(item.value_json) for item in record.history.item}
            )
        elif kind == "summary":
            for item in record.summary.update:
                run.summary[_key(item)] = _value(item.value_json)
        elif kind == "exit":
            run.exit_code = record.exit.exit_code
    return run


def offline_runs(run_dir: str | Path) -> list[Path]:
    """The offline run files under a run dir, oldest first."""
    return sorted(Path(run_dir).glob("wandb/offline-run-*/run-*.wandb"))

"""Read a W&B offline run file (``run-<id>.wandb``) back: identity, config, history, summary.

wandb (0.31 and later) ships a reader: ``wandb leet inspect --json <file>`` prints one JSON
object per record (``run``, ``config``, ``history``, ``summary``, ``metric``, ``files``,
``exit``...). This module runs it and collects the records into an :class:`OfflineRun`.

Where the installed wandb has no ``leet inspect`` it parses the file itself: a 7-byte header
(``:W&B``, magic, version), then LevelDB-log blocks of 32 KiB whose chunks (7-byte header:
crc32c, little-endian length, type FULL/FIRST/MIDDLE/LAST) reassemble into protobuf
``wandb_internal_pb2.Record`` messages. Both give nested keys joined by ``.`` as leet does
(``train/loss`` is one key; an image ``img`` gives ``img._type``, ``img.path``...) and values
as logged (a ``define_metric`` summary of ``val/loss`` is ``{"min": ...}``).
"""

from __future__ import annotations

import functools
import json
import shutil
import struct
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_FILE_HEADER = 7
_BLOCK = 32 * 1024
_CHUNK_HEADER = 7
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


@dataclass
class OfflineRun:
    """What an offline run recorded."""

    run_id: str = ""
    group: str = ""
    job_type: str = ""
    name: str = ""
    tags: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    #: ``define_metric`` records: metric name → its options (``summary``, ``step_metric``...).
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Files saved with the run (paths relative to the run's files folder).
    files: list[str] = field(default_factory=list)
    #: Artifacts logged by the run: (name, type, aliases).
    artifacts: list[tuple[str, str, list[str]]] = field(default_factory=list)
    exit_code: int | None = None

    def series(self, key: str) -> list[Any]:
        """All logged values of one history key, in order."""
        return [row[key] for row in self.history if key in row]

    def rows(self, key: str) -> list[dict[str, Any]]:
        """The history rows that hold ``key`` (with their step keys), in order."""
        return [row for row in self.history if key in row]


def read_offline_run(path: str | Path) -> OfflineRun:
    """Parse one ``run-<id>.wandb`` file, with ``wandb leet inspect`` where it exists."""
    command = _leet_command()
    records = _leet_records(command, Path(path)) if command else _proto_records(Path(path))
    return _collect(records)


def offline_runs(run_dir: str | Path) -> list[Path]:
    """The offline run files under a run dir, oldest first."""
    return sorted(Path(run_dir).glob("wandb/offline-run-*/run-*.wandb"))


# --------------------------------------------------------------------------- records
def _collect(records: Iterator[dict[str, Any]]) -> OfflineRun:
    run = OfflineRun()
    for record in records:
        kind = record.get("type")
        body = record.get(kind) or {}
        if kind == "run":
            run.run_id, run.group = body.get("run_id", ""), body.get("run_group", "")
            run.job_type, run.name = body.get("job_type", ""), body.get("display_name", "")
            run.tags = list(body.get("tags", []))
            run.config.update((body.get("config") or {}).get("update", {}))
        elif kind == "config":
            run.config.update(body.get("update", {}))
        elif kind == "history":
            run.history.append(dict(body.get("item", {})))
        elif kind == "summary":
            run.summary.update(body.get("update", {}))
        elif kind == "metric" and body.get("name"):
            run.metrics[body["name"]] = {k: v for k, v in body.items() if k != "name"}
        elif kind == "files":
            run.files.extend(item["path"] for item in body.get("files", []) if "path" in item)
        elif kind == "artifact":
            run.artifacts.append(
                (body.get("name", ""), body.get("type", ""), body.get("aliases", []))
            )
        elif kind == "exit":
            run.exit_code = int(body.get("exit_code", 0))
    for key in [key for key in run.config if key.split(".")[0] == "_wandb"]:
        del run.config[key]
    return run


@functools.cache
def _leet_command() -> tuple[str, ...] | None:
    """``wandb leet inspect`` of the running environment's wandb, if it has one."""
    beside = Path(sys.executable).with_name("wandb")
    program = str(beside) if beside.exists() else shutil.which("wandb")
    if program is None:
        return None
    command = (program, "leet", "inspect")
    probe = subprocess.run([*command, "--help"], capture_output=True, text=True, check=False)
    return command if probe.returncode == 0 and "--json" in probe.stdout else None


def _leet_records(command: tuple[str, ...], path: Path) -> Iterator[dict[str, Any]]:
    result = subprocess.run(
        [*command, "--json", str(path)], capture_output=True, text=True, check=True
    )
    for line in result.stdout.splitlines():
        if line.strip():
            yield json.loads(line)


# --------------------------------------------------------------------------- fallback
def _proto_records(path: Path) -> Iterator[dict[str, Any]]:
    """The file's records in leet's JSON shape, parsed with wandb's protobuf classes."""
    from wandb.proto import wandb_internal_pb2 as pb

    for payload in _payloads(path.read_bytes()):
        record = pb.Record()
        record.ParseFromString(payload)
        kind = record.WhichOneof("record_type")
        body = getattr(record, kind) if kind else None
        if kind == "run":
            yield {
                "type": "run",
                "run": {
                    "run_id": body.run_id,
                    "run_group": body.run_group,
                    "job_type": body.job_type,
                    "display_name": body.display_name,
                    "tags": list(body.tags),
                    "config": {"update": _items(body.config.update)},
                },
            }
        elif kind in ("config", "summary"):
            yield {"type": kind, kind: {"update": _items(body.update)}}
        elif kind == "history":
            yield {"type": "history", "history": {"item": _items(body.item)}}
        elif kind == "metric":
            options = {"summary": {f.name: True for f, v in body.summary.ListFields() if v}}
            yield {"type": "metric", "metric": {"name": body.name, **options}}
        elif kind == "files":
            yield {"type": "files", "files": {"files": [{"path": f.path} for f in body.files]}}
        elif kind == "artifact":
            yield {
                "type": "artifact",
                "artifact": {"name": body.name, "type": body.type, "aliases": list(body.aliases)},
            }
        elif kind == "exit":
            yield {"type": "exit", "exit": {"exit_code": body.exit_code}}


def _items(items: Any) -> dict[str, Any]:
    """Protobuf key/value items as a dict; nested keys joined by ``.`` (as leet prints them)."""
    return {(item.key or ".".join(item.nested_key)): _value(item.value_json) for item in items}


def _value(json_text: str) -> Any:
    try:
        return json.loads(json_text)
    except json.JSONDecodeError:
        return json_text


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

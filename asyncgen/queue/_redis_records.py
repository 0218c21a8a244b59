"""What the Redis store writes and reads: a job record as a hash and back, its Lua
scripts, the server's version, and the numbers its URL may carry."""

from __future__ import annotations

import functools
import json
from importlib import resources
from typing import Any

from ._models import JobRecord

__all__ = [
    "JSON_FIELDS",
    "RECORD_FIELDS",
    "SCRIPTS",
    "from_hash",
    "has_xackdel",
    "lane_kind",
    "load_scripts",
    "positive_int",
    "seconds_option",
    "to_hash",
    "version_of",
]

SCRIPTS = (
    "add",
    "claim",
    "heartbeat",
    "complete",
    "fail",
    "cancel",
    "purge",
    "stats",
    "requeue",
    "postpone",
    "progress",
)
RECORD_FIELDS = tuple(JobRecord.model_fields)
JSON_FIELDS = ("payload", "result", "depends_on", "context", "history", "members")


@functools.cache
def load_scripts() -> dict[str, str]:
    folder = resources.files(__package__).joinpath("_lua")
    common = folder.joinpath("common.lua").read_text()
    return {name: common + folder.joinpath(f"{name}.lua").read_text() for name in SCRIPTS}


def lane_kind(lane: str, prefix: str) -> str:
    """The kind a lane serves: its key is ``<prefix>lane:<priority>:<kind>``."""
    return lane[len(prefix) + len("lane:") :].split(":", 1)[1]


def version_of(text: object) -> tuple[int, ...]:
    return tuple(int(part) for part in str(text or "0").split(".")[:2] if part.isdigit())


def has_xackdel(info: dict[str, Any]) -> bool:
    """Whether the server (its INFO server section) has XACKDEL: Redis 8.2+, Valkey 9.2+."""
    if "valkey_version" in info:
        return version_of(info["valkey_version"]) >= (9, 2)
    return version_of(info.get("redis_version")) >= (8, 2)


def positive_int(value: str | None, default: int, name: str) -> int:
    if value is None:
        return default
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")
    return int(value)


def seconds_option(value: str | None, default: float, name: str) -> float:
    if value is None:
        return default
    try:
        seconds = float(value)
    except ValueError:
        raise ValueError(f"{name} must be a number of seconds, got {value!r}") from None
    if seconds < 0:
        raise ValueError(f"{name} must be >= 0 seconds (0: keep until purged), got {value!r}")
    return seconds


def to_hash(record: JobRecord) -> dict[str, str]:
    """A record as hash fields: JSON for structured values, repr for floats, None left out."""
    data = record.model_dump(mode="json")
    fields: dict[str, str] = {}
    for name in RECORD_FIELDS:
        value = data[name]
        if value is None or (name in ("context", "history", "members") and not value):
            continue
        if name in JSON_FIELDS:
            fields[name] = json.dumps(value)
        else:
            fields[name] = repr(value) if isinstance(value, float) else str(value)
    return fields


def from_hash(fields: dict[str, str]) -> JobRecord:
    data: dict[str, Any] = {name: fields[name] for name in RECORD_FIELDS if name in fields}
    for name in JSON_FIELDS:
        if name in data:
            data[name] = json.loads(data[name])
    return JobRecord.model_validate(data)

"""A Batch API run's folder: ``state.json`` and the request files, kept whole on disk.

Both are written to a hidden file, synced and renamed into place, so a crash leaves the
last whole state and no half-written request file under a real name.
"""

from __future__ import annotations

import json
import os
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

__all__ = ["BatchRecord", "RequestFile", "RunFolder"]


@dataclass
class BatchRecord:
    """One provider batch as the state file keeps it."""

    marker: str  # sent as metadata, so a batch created just before a crash is found again
    chunk: str  # the request file's name in the run's folder
    requests: int
    round: int = 1
    id: str | None = None
    status: str = "pending"  # pending (not created yet), then the provider's
    done: bool = False  # its files were read (or it will never have any)


class RunFolder:
    """The folder of one run: its state file and its request files."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.path.mkdir(parents=True, exist_ok=True)
        self._state = path / "state.json"

    def load(self) -> list[BatchRecord]:
        """The batches recorded so far (none in a new folder)."""
        if not self._state.exists():
            return []
        data = json.loads(self._state.read_text())
        return [BatchRecord(**record) for record in data["batches"]]

    def save(self, records: list[BatchRecord]) -> None:
        """Write the state whole (a temporary file renamed over it), synced to disk."""
        data = {"version": 1, "batches": [asdict(r) for r in records]}
        fd, tmp = tempfile.mkstemp(dir=self.path, prefix=".state-")
        with os.fdopen(fd, "w") as stream:
            json.dump(data, stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(tmp, self._state)

    def lines(self, name: str) -> Iterator[dict[str, Any]]:
        """The request lines of one request file, one at a time."""
        with (self.path / name).open("rb") as stream:
            for raw in stream:
                if raw.strip():
                    yield json.loads(raw)


class RequestFile:
    """A request file being written: hidden until it is whole, then renamed in place."""

    def __init__(self, folder: Path, number: int) -> None:
        self.marker = uuid.uuid4().hex
        self.name = f"requests-{number:05d}-{self.marker[:8]}.jsonl"
        self._final = folder / self.name
        self._tmp = folder / f".{self.name}"
        self._stream = self._tmp.open("wb")
        self.requests = self.size = 0

    def write(self, data: bytes) -> None:
        self._stream.write(data)
        self.requests += 1
        self.size += len(data)

    def close(self) -> RequestFile:
        self._stream.flush()
        os.fsync(self._stream.fileno())
        self._stream.close()
        os.replace(self._tmp, self._final)
        return self

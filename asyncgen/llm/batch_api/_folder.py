"""A Batch API run's folder: ``state.json`` and the request files, kept whole on disk.

Both are written to a hidden file, synced and renamed into place, so a crash leaves the
last whole state and no half-written request file under a real name. A folder deleted
while a run goes on is made again at the next write (the run still holds its records,
and request files are fetched back from the provider when they are needed); a damaged
``state.json`` is refused with :class:`BatchStateError`, never guessed at.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, BinaryIO

from ._lines import line_fingerprint

__all__ = ["BatchRecord", "BatchStateError", "RequestFile", "RunFolder"]

STATE = "state.json"


class BatchStateError(ValueError):
    """A run folder's ``state.json`` that cannot be read as the batches it records."""


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
        self._state = path / STATE

    def load(self) -> list[BatchRecord]:
        """The batches recorded so far (none in a new folder).

        Raises:
            BatchStateError: ``state.json`` is not what asyncgen wrote (bad JSON, not a
                mapping with a ``batches`` list, a record with unknown or wrong fields).
        """
        return read_state(self.path)

    def save(self, records: list[BatchRecord]) -> None:
        """Write the state whole (a temporary file renamed over it), synced to disk; a
        folder deleted meanwhile is made again (the records are in memory)."""
        data = {"version": 1, "batches": [asdict(r) for r in records]}
        encoded = json.dumps(data).encode()
        place(self._state, lambda stream: stream.write(encoded))

    def has(self, name: str) -> bool:
        """True when the request file ``name`` is in the folder."""
        return (self.path / name).is_file()

    async def write(self, name: str, chunks: AsyncIterator[bytes]) -> None:
        """Write a request file whole from ``chunks`` (kept in an unnamed temporary file
        until complete, so a folder deleted meanwhile loses nothing)."""
        with tempfile.TemporaryFile() as spool:
            async for chunk in chunks:
                spool.write(chunk)
            place(self.path / name, lambda stream: _copy(spool, stream))

    def lines(self, name: str) -> Iterator[dict[str, Any]]:
        """The request lines of one request file, one at a time."""
        with (self.path / name).open("rb") as stream:
            for raw in stream:
                if raw.strip():
                    yield json.loads(raw)

    def in_flight(self, records: list[BatchRecord]) -> dict[str, str]:
        """Ids in batches not finished yet whose request file is here, each with its
        request's fingerprint."""
        flying: dict[str, str] = {}
        for record in records:
            if not record.done and self.has(record.chunk):
                for line in self.lines(record.chunk):
                    flying[line["custom_id"]] = line_fingerprint(line)[1]
        return flying


def read_state(folder: Path) -> list[BatchRecord]:
    """The batches ``folder/state.json`` records (none when there is no such file); the
    folder is never created.

    Raises:
        BatchStateError: The file is damaged or not asyncgen's.
    """
    path = folder / STATE
    if not path.is_file():
        return []
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise _damaged(path, f"not JSON: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("batches"), list):
        raise _damaged(path, "not a mapping with a 'batches' list")
    unknown = sorted(set(data) - {"version", "batches"})
    if unknown:
        raise _damaged(path, f"unknown key(s) {', '.join(map(repr, unknown))}")
    return [_record(path, number, item) for number, item in enumerate(data["batches"], 1)]


_TYPES: dict[str, tuple[type, ...]] = {
    "marker": (str,),
    "chunk": (str,),
    "requests": (int,),
    "round": (int,),
    "id": (str, type(None)),
    "status": (str,),
    "done": (bool,),
}


def _record(path: Path, number: int, item: object) -> BatchRecord:
    if not isinstance(item, dict):
        raise _damaged(path, f"batch {number} is not a mapping")
    unknown = sorted(set(item) - {field.name for field in fields(BatchRecord)})
    if unknown:
        raise _damaged(path, f"batch {number} has unknown key(s) {', '.join(map(repr, unknown))}")
    for key, value in item.items():
        wrong = isinstance(value, bool) and bool not in _TYPES[key]
        if wrong or not isinstance(value, _TYPES[key]):
            raise _damaged(path, f"batch {number}: {key} is {value!r}")
    missing = sorted({"marker", "chunk", "requests"} - set(item))
    if missing:
        raise _damaged(path, f"batch {number} lacks {', '.join(missing)}")
    chunk = str(item["chunk"])
    if "/" in chunk or "\\" in chunk or chunk.startswith("."):
        raise _damaged(path, f"batch {number}: chunk {chunk!r} is not a file of the folder")
    return BatchRecord(**item)


def _damaged(path: Path, why: str) -> BatchStateError:
    return BatchStateError(
        f"{path} is damaged ({why}). It records the batches in flight: restore it, or "
        "forget them (asyncgen run ... --batch-api --forget-batches, or delete its folder); "
        "jobs with no answer written then run again, and batches still running are paid "
        "for without being read"
    )


class RequestFile:
    """A request file being written: hidden until it is whole, then renamed in place."""

    def __init__(self, folder: Path, number: int) -> None:
        self.marker = uuid.uuid4().hex
        self.name = f"requests-{number:05d}-{self.marker[:8]}.jsonl"
        self._final = folder / self.name
        # unnamed, so a folder deleted meanwhile loses nothing; close() closes it
        self._stream = tempfile.TemporaryFile()  # noqa: SIM115
        self.requests = self.size = 0

    def write(self, data: bytes) -> None:
        self._stream.write(data)
        self.requests += 1
        self.size += len(data)

    def close(self) -> RequestFile:
        """Give the file its real name, synced (in a folder made again if it was deleted
        meanwhile: the temporary file still holds every line)."""
        try:
            place(self._final, lambda stream: _copy(self._stream, stream))
        finally:
            self._stream.close()
        return self


PLACE_ATTEMPTS = 5


def place(path: Path, fill: Callable[[BinaryIO], object]) -> None:
    """Write ``path`` whole: ``fill`` writes a hidden file beside it, which is synced and
    renamed over it, so a reader or a crash sees the old file or the new one, never a part.

    A folder deleted meanwhile (by a user tidying up mid-run) is made again and the file
    written once more, up to :data:`PLACE_ATTEMPTS` times; ``fill`` must be able to run
    again.
    """
    for attempt in range(1, PLACE_ATTEMPTS + 1):
        try:
            # exist_ok still raises FileExistsError when the folder goes between its
            # mkdir and its check: the same race, so the same answer
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")
            try:
                with os.fdopen(fd, "wb") as stream:
                    fill(stream)
                    stream.flush()
                    os.fsync(stream.fileno())
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            return
        except (FileNotFoundError, FileExistsError):
            if attempt == PLACE_ATTEMPTS:
                raise


def _copy(source: BinaryIO, target: BinaryIO) -> None:
    source.seek(0)
    shutil.copyfileobj(source, target)

"""The results file of ``asyncgen run``: one writer at a time, whole lines only, resumable.

- An exclusive lock (``OUTPUT.lock`` beside it, holding who took it) keeps a second run
  on the same output from sending, and billing, every job twice.
- Each result is one ``write`` of one whole line; a write that fails part-way (disk
  full) is cut back off, so the file stays valid JSONL whatever happens.
- Resuming reads the old output in bounded lines. A torn last line (a run killed
  mid-write) is cut off and its job runs again; any other bad line is reported by number.
- The last line for an id is its result: ``--retry-failed`` appends a new line for each
  job it re-runs, and that new line wins.
- Each line holds its request's fingerprint: a job whose request changed since (model,
  messages, params, schema) runs again rather than keep an answer to another question.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from ..llm import GenerationResult
from ._files import MAX_REPORTED, Done, UsageProblem, read_lines

__all__ = ["RERUN_ERRORS", "OutputLock", "OutputWriteError", "ResultWriter", "Resume"]

# Failures that say nothing about the job itself: the key ran out of credits, or the
# run's own spend limit stopped it. Running the command again runs these jobs again.
# Jobs stopped by the key or the spend limit, not by their own request: they run again.
RERUN_ERRORS = frozenset({"InsufficientCreditsError", "BudgetExceededError", "InvalidKeyError"})


class OutputWriteError(Exception):
    """A result could not be written (disk full, file too large): the run stops."""


class OutputLock:
    """An exclusive, non-blocking lock on an output file, for the life of one run.

    Args:
        output: The results file; the lock is ``OUTPUT.lock`` beside the file it names
            once links are followed, so ``-o link.jsonl`` and ``-o target.jsonl`` share it.

    Raises:
        UsageProblem: Another process holds it (its pid and host are named).
    """

    def __init__(self, output: Path) -> None:
        self.output = output
        real = output.resolve()
        self.path = real.with_name(real.name + ".lock")
        self._fd: int | None = None

    def __enter__(self) -> OutputLock:
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(fd, 300).decode("utf-8", "replace").strip() or "unknown"
                os.close(fd)
                raise UsageProblem(
                    f"{self.output} is being written by another asyncgen run ({holder}): "
                    "wait for it or stop it; two runs on one output would send (and bill) "
                    "every job twice"
                ) from None
            if self._still_ours(fd):
                break
            os.close(fd)  # the holder removed the file as we opened it: take the new one
        os.ftruncate(fd, 0)
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}, since {stamp}\n".encode())
        self._fd = fd
        return self

    def _still_ours(self, fd: int) -> bool:
        try:
            return os.path.samestat(os.fstat(fd), os.stat(self.path))
        except FileNotFoundError:
            return False

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._fd is not None:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
            os.close(self._fd)  # closing releases the lock
            self._fd = None


@dataclass(slots=True)
class Resume:
    """What an earlier run's output says: the ids it finished (to skip while their
    request is unchanged) and how many it left to run again."""

    done: dict[str, Done] = field(default_factory=dict)
    rerun: int = 0
    torn_tail: int | None = None  # byte offset where an unfinished last line starts
    missing_newline: bool = False  # a whole last record, but no newline after it

    @classmethod
    def read(cls, path: Path, *, retry_failed: bool) -> Resume:
        """Read ``path`` (if it exists) in bounded lines.

        Raises:
            UsageProblem: Lines that are not result records, by number (a torn last
                line is not one: it is cut off by the writer).
        """
        resume = cls()
        if not path.exists():
            return resume
        latest: dict[str, tuple[str, str | None]] = {}  # id -> (status, fingerprint)
        problems: list[str] = []
        offset = 0
        with path.open("rb") as stream:
            for line in read_lines(stream):
                start, offset = offset, stream.tell()
                found = _status(line.text) if line.text is not None else None
                if not line.complete and found is None:
                    resume.torn_tail = start
                    break
                resume.missing_newline = not line.complete
                if found is not None:
                    latest[found[0]] = found[1], found[2]
                elif line.text is None or line.text.strip():
                    problems.append(f"line {line.number}: {line.problem or 'not a result record'}")
        if problems:
            shown = "; ".join(problems[:MAX_REPORTED])
            raise UsageProblem(
                f"{path} has {len(problems)} line(s) that are not results ({shown}): it is "
                "not an output of asyncgen run, or was edited; remove those lines or give "
                "another -o"
            )
        for job_id, (status, fingerprint) in latest.items():  # the last line wins
            if status == "ok" or (status == "failed" and not retry_failed):
                resume.done[job_id] = Done(fingerprint, status == "failed")
            resume.rerun += status == "rerun"
        return resume


def _status(text: str) -> tuple[str, str, str | None] | None:
    try:
        record = json.loads(text)
        job_id, ok, error_type = record["id"], record["ok"], record.get("error_type")
        fingerprint = record.get("fingerprint")
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    if not isinstance(job_id, str) or not isinstance(ok, bool):
        return None
    fingerprint = fingerprint if isinstance(fingerprint, str) else None
    if ok:
        return job_id, "ok", fingerprint
    return job_id, "rerun" if error_type in RERUN_ERRORS else "failed", fingerprint


class ResultWriter:
    """Appends one JSON line per finished job, each in one write, flushed to the OS.

    Args:
        path: The results file (created if missing).
        resume: What the earlier output holds: an unfinished last line left by a killed
            run is cut off first, and a whole last record gets its missing newline, so
            every line stays whole.
    """

    def __init__(self, path: Path, resume: Resume | None = None) -> None:
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        if resume is not None and resume.torn_tail is not None:
            os.ftruncate(self._fd, resume.torn_tail)
        elif resume is not None and resume.missing_newline:
            os.write(self._fd, b"\n")

    def write(self, result: GenerationResult) -> None:
        """Append ``result`` as one line.

        Raises:
            OutputWriteError: The line could not be written whole; what was written of
                it is cut off again, so the file holds only whole lines.
        """
        self.write_record(result.to_record())

    def write_record(self, record: dict[str, Any]) -> None:
        """Append one result record (the Batch API writes records, not results).

        Raises:
            OutputWriteError: As :meth:`write`.
        """
        data = (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")
        size = os.fstat(self._fd).st_size
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view) :]
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, size)
            raise OutputWriteError(
                f"cannot write results to {self.path}: {exc.strerror or exc}. The results "
                "written so far are kept and the file is whole; make room and run the same "
                "command again to resume"
            ) from exc

    def close(self) -> None:
        """Close the file."""
        os.close(self._fd)

    def __enter__(self) -> ResultWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

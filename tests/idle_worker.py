"""A worker process left idle from the start of the test session (started only when the
session has collected the test that checks it), so that "idle past a minute" costs the
suite no wall time when other tests run meanwhile."""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.processes import asyncgen_argv

__all__ = ["CHECKED_BY", "IdleWorker", "start", "started", "stop"]

CHECKED_BY = "test_worker_processes_idle_past_a_minute_still_run_jobs"


@dataclass
class IdleWorker:
    """``asyncgen worker --processes 2`` on an empty SQLite queue, and when it began."""

    process: subprocess.Popen[str]
    url: str
    output: Path
    began: float

    def idled(self) -> float:
        """Seconds since it started."""
        return time.monotonic() - self.began


_IDLE: list[IdleWorker] = []


def start() -> None:
    """Start the idle worker (once)."""
    if _IDLE:
        return
    folder = Path(tempfile.mkdtemp(prefix="asyncgen-idle-"))
    url = f"sqlite:///{folder}/idle.db"
    output = folder / "worker.log"
    with output.open("w") as sink:
        process = subprocess.Popen(
            asyncgen_argv("worker", url, "--tasks", "tests.queue_tasks", "--processes", "2"),
            env={**os.environ, "ASYNCGEN_TEST_TASK_LOG": str(folder / "tasks.log")},
            stdout=sink,
            stderr=subprocess.STDOUT,
            text=True,
        )
    _IDLE.append(IdleWorker(process, url, output, time.monotonic()))


def started() -> IdleWorker:
    """The idle worker (started now if the session did not start it)."""
    start()
    return _IDLE[0]


def stop() -> None:
    """End the idle worker if a test left it running."""
    for idle in _IDLE:
        if idle.process.poll() is None:
            idle.process.kill()
            idle.process.wait(10)

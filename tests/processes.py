"""Processes for the tests: ``asyncgen`` command lines, and worker processes reaped after
each test even when it fails."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

__all__ = ["asyncgen_argv", "reap", "worker_process"]

_SPAWNED: list[subprocess.Popen[str]] = []


def asyncgen_argv(*args: str) -> list[str]:
    """The command line of ``python -m asyncgen ARGS`` in this interpreter."""
    return [sys.executable, "-m", "asyncgen", *args]


def worker_process(
    url: str, log: Path, *extra: str, output: Path | None = None
) -> subprocess.Popen[str]:
    """``asyncgen worker URL --tasks tests.queue_tasks``, logging task starts to ``log``.

    Its stdout and stderr go to ``output`` when given, else nowhere.
    """
    env = {**os.environ, "ASYNCGEN_TEST_TASK_LOG": str(log)}
    with output.open("w") if output else open(os.devnull, "w") as sink:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "asyncgen",
                "worker",
                url,
                "--tasks",
                "tests.queue_tasks",
                *extra,
            ],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            text=True,
        )
    _SPAWNED.append(process)
    return process


def reap() -> None:
    """Kill every worker process a test left running (it failed before stopping them)."""
    while _SPAWNED:
        process = _SPAWNED.pop()
        if process.poll() is None:
            process.kill()
            process.wait(10)

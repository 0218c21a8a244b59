"""Tasks for the queue tests; worker subprocesses import this module with --tasks."""

from __future__ import annotations

import asyncio
import datetime
import os
import time
from pathlib import Path

import structlog
from pydantic import BaseModel

from asyncgen.queue import GroupOutcome, report_progress, task


def _log(line: str) -> None:
    path = os.environ.get("ASYNCGEN_TEST_TASK_LOG")
    if path:
        with Path(path).open("a") as stream:
            stream.write(line + "\n")


@task(name="add")
async def add(a: int, b: int, seconds: float = 0.0) -> int:
    """Add after a wait, logging each start and finish to $ASYNCGEN_TEST_TASK_LOG."""
    _log(f"start {a}")
    await asyncio.sleep(seconds)
    _log(f"done {a}")
    return a + b


@task(name="shout")
def shout(text: str) -> str:
    """A sync task: runs in a thread."""
    return text.upper()


@task(name="explode")
async def explode(message: str) -> None:
    """Always fails."""
    raise RuntimeError(message)


@task(name="leak")
async def leak(key: str) -> None:
    """Fails with a message that carries an API key, as careless code does."""
    raise RuntimeError(f"upstream refused Authorization: Bearer {key}")


@task(name="slow", timeout=0.3)
async def slow(seconds: float) -> float:
    """Sleeps; its task-level timeout is 0.3 s."""
    await asyncio.sleep(seconds)
    return seconds


@task(name="stamp")
async def stamp(kind: str) -> object:
    """Returns a value JSON holds only after conversion ("model", "datetime"), or one it
    cannot hold at all ("object")."""
    if kind == "model":
        return Stamp(at=datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC), tags={"a"})
    if kind == "datetime":
        return datetime.date(2026, 1, 2)
    return object()


class Stamp(BaseModel):
    at: datetime.datetime
    tags: set[str]


@task(name="chatty")
async def chatty(text: str) -> str:
    """Logs PROCESSING_COMPLETE (inside the submitter's conversation, if any)."""
    structlog.get_logger("tests.agent").info("PROCESSING_COMPLETE", chars=len(text))
    return text.upper()


@task(name="hold")
async def hold(label: str, seconds: float = 120.0) -> str:
    """Waits; logs "start LABEL" and, if stopped, "stopped LABEL <epoch seconds>"."""
    _log(f"start {label}")
    try:
        await asyncio.sleep(seconds)
    except asyncio.CancelledError:
        _log(f"stopped {label} {time.time()!r}")
        raise
    return label


@task(name="tally")
def tally(group: GroupOutcome, label: str) -> dict[str, object]:
    """A group's on_complete: logs "tally <group id>" (a side file counts its runs) and
    returns the members' results in order with how they ended."""
    _log(f"tally {group.id}")
    return {"label": label, "results": group.results, "ended": group.summary()}


@task(name="crawl")
async def crawl(steps: int, seconds: float = 0.0, hold: str = "") -> int:
    """Reports progress step by step; waits while the file ``hold`` exists (a test
    reads the progress meanwhile)."""
    for step in range(1, steps + 1):
        report_progress(step / steps, f"step {step} of {steps}")
        await asyncio.sleep(seconds)
    held = Path(hold) if hold else None
    while held is not None and await asyncio.to_thread(held.exists):  # noqa: ASYNC110
        await asyncio.sleep(0.02)  # a file, not an event: another process removes it
    return steps


@task(name="crawl_sync")
def crawl_sync(steps: int, hold: str = "") -> int:
    """crawl in a thread: report_progress from a sync task."""
    for step in range(1, steps + 1):
        report_progress(step / steps, f"step {step} of {steps}")
    while hold and Path(hold).exists():
        time.sleep(0.02)
    return steps

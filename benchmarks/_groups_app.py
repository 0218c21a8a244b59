"""The tasks of bench_groups.py, served by ``asyncgen worker URL --tasks _groups_app``.

Each run of ``tally`` (a group's on_complete) appends a line to a file named after its
group in $BENCH_SIDE_FILES, so the benchmark counts the runs from outside the queue.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from asyncgen.queue import GroupOutcome, task

SIDE = Path(os.environ.get("BENCH_SIDE_FILES", "side-files"))


@task(name="member")
async def member(index: int, seconds: float = 0.0) -> int:
    """A group member: waits ``seconds``, returns its index."""
    await asyncio.sleep(seconds)
    return index


@task(name="tally")
def tally(group: GroupOutcome) -> list[int]:
    """A group's on_complete: notes its run in a side file, returns the members' results."""
    with (SIDE / group.id).open("a") as stream:
        stream.write(f"{os.getpid()}\n")
    return [int(value) for value in group.results]

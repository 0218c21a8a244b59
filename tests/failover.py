"""What the Sentinel and Cluster failover tests share: a producer that submits durably
while a primary dies, and four `asyncgen run` processes that share one limit across it."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from pathlib import Path

import asyncgen
from asyncgen import open_queue
from asyncgen.testing import ModelProfile, SimConfig, SimServer
from tests import queue_tasks
from tests.test_shared_limit import finish, fresh_name, start_runs


class DurableProducer:
    """A thread that submits to ``url`` as fast as it can until the block ends: the ids
    acknowledged, and the transient errors met (the switch: said, not lost)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.acknowledged: list[str] = []
        self.refused: list[BaseException] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._produce)

    def __enter__(self) -> DurableProducer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def _produce(self) -> None:
        queue = open_queue(self.url)
        queue.register(queue_tasks.add)
        number = 0
        while not self._stop.is_set():
            number += 1
            try:
                self.acknowledged.append(queue.blocking.submit(queue_tasks.add.call(number, 0)))
            except asyncgen.TransientError as exc:
                self.refused.append(exc)
                time.sleep(0.05)
        queue.blocking.close()

    def stored(self) -> int:
        """How many of the acknowledged submits are in the queue now."""
        return asyncio.run(_stored(open_queue(self.url), self.acknowledged))


async def _stored(queue: asyncgen.JobQueue, ids: list[str]) -> int:
    try:
        return sum([await queue.store.get(job_id) is not None for job_id in ids])
    finally:
        await queue.aclose()


def limited_runs(
    tmp_path: Path, sim: SimServer, url: str, fail_over: Callable[[str], None]
) -> list[dict[str, object]]:
    """Four `asyncgen run` processes of 50 jobs share --rpm 1200 through ``url`` against a
    20-a-second sliding window; ``fail_over(limit_name)`` runs once 60 requests are in.
    Returns every output line."""
    sim.configure(SimConfig(default=ModelProfile(rpm=1200, limiter="sliding")))
    name = fresh_name()
    started = start_runs(tmp_path, sim, url, name, 4, 50)
    deadline = time.monotonic() + 60
    while sim.requests() < 60 and time.monotonic() < deadline:
        time.sleep(0.02)
    fail_over(name)
    return finish(started)

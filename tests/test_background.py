"""Supervised fire-and-forget: kept, reported, bounded, drained."""

from __future__ import annotations

import asyncio
import gc
import io
import json
import time
import weakref
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
import structlog

from asyncgen import (
    BackgroundTasks,
    BackgroundTasksFull,
    BlockingBackgroundTasks,
    TaskFailure,
    configure_logging,
)


async def sleeper(seconds: float, done: list[float], value: float = 0.0) -> float:
    await asyncio.sleep(seconds)
    done.append(value)
    return value


async def failing(message: str) -> None:
    await asyncio.sleep(0.01)
    raise RuntimeError(message)


def orphan_waiter(
    registry: weakref.WeakValueDictionary[int, asyncio.Future[None]], finished: list[int]
) -> Callable[[int], Coroutine[Any, Any, None]]:
    """A job whose only link to the world is a weak one (as with a callback registry
    that holds weak references): nothing but its task keeps it alive."""

    async def wait(i: int) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        registry[i] = future
        await future
        finished.append(i)

    return wait


def release(registry: weakref.WeakValueDictionary[int, asyncio.Future[None]]) -> None:
    for future in list(registry.values()):
        if not future.done():
            future.set_result(None)


class TestKeeping:
    async def test_no_task_is_lost_to_garbage_collection(self) -> None:
        """Every reference dropped and gc forced: all 50 still finish. The same jobs
        under bare create_task are collected mid-run (the defect this replaces)."""
        registry: weakref.WeakValueDictionary[int, asyncio.Future[None]] = (
            weakref.WeakValueDictionary()
        )
        finished: list[int] = []
        wait = orphan_waiter(registry, finished)
        tasks = BackgroundTasks()
        for i in range(50):
            await tasks.spawn(wait(i))  # the returned task is dropped at once
        await asyncio.sleep(0.01)
        gc.collect()
        release(registry)
        await tasks.drain(timeout=5)
        assert sorted(finished) == list(range(50))
        assert tasks.stats.done == 50

        bare: list[int] = []
        loose = orphan_waiter(registry, bare)
        for i in range(100, 150):
            asyncio.get_running_loop().create_task(loose(i))
        await asyncio.sleep(0.01)
        gc.collect()
        release(registry)
        await asyncio.sleep(0.05)
        assert len(bare) < 50  # without a strong reference, tasks vanish

    async def test_a_failing_task_is_reported_and_the_others_finish(self) -> None:
        stream = io.StringIO()
        configure_logging(json=True, stream=stream)
        failures: list[TaskFailure] = []
        done: list[float] = []
        async with BackgroundTasks(on_error=failures.append, name="bot") as tasks:
            for i in range(5):
                await tasks.spawn(sleeper(0.05, done, i))
            await tasks.spawn(
                failing("upstream said Authorization: Bearer sk-abcdef123456789"),
                name="reply to 42",
            )
        assert sorted(done) == [0, 1, 2, 3, 4]
        assert [f.name for f in failures] == ["reply to 42"]
        assert isinstance(failures[0].error, RuntimeError)
        stats = tasks.stats
        assert (stats.running, stats.done, stats.failed, stats.cancelled) == (0, 5, 1, 0)
        lines = [json.loads(line) for line in stream.getvalue().splitlines()]
        failed = [line for line in lines if line["event"] == "background_task_failed"]
        assert len(failed) == 1
        assert failed[0]["task"] == "reply to 42"
        assert failed[0]["tasks"] == "bot"
        assert "sk-abcdef123456789" not in stream.getvalue()

    async def test_a_broken_error_callback_breaks_nothing(self) -> None:
        def broken(failure: TaskFailure) -> None:
            raise ValueError("reporter down")

        done: list[float] = []
        tasks = BackgroundTasks(on_error=broken)
        await tasks.spawn(failing("x"))
        await tasks.spawn(sleeper(0.05, done))
        stats = await tasks.drain(timeout=5)
        assert (stats.done, stats.failed) == (1, 1)

    async def test_the_caller_context_follows_the_task(self) -> None:
        """structlog's bound values (a conversation's ids) reach the background task."""
        seen: list[object] = []

        async def look() -> None:
            seen.append(structlog.contextvars.get_contextvars().get("user_id"))

        tasks = BackgroundTasks()
        with structlog.contextvars.bound_contextvars(user_id="u-7"):
            await tasks.spawn(look())
        await tasks.drain()
        assert seen == ["u-7"]


class TestLimits:
    async def test_at_the_limit_spawn_waits_its_turn(self) -> None:
        done: list[float] = []
        tasks = BackgroundTasks(limit=2)
        began = time.monotonic()
        for i in range(6):
            await tasks.spawn(sleeper(0.1, done, i))
        assert time.monotonic() - began >= 0.15  # the last two waited for two rounds
        assert tasks.stats.running <= 2
        await tasks.drain()
        assert done == [0, 1, 2, 3, 4, 5]  # first come, first served

    async def test_refuse_mode_says_so_and_never_starts_the_coroutine(self) -> None:
        done: list[float] = []
        tasks = BackgroundTasks(limit=1, when_full="refuse")
        await tasks.spawn(sleeper(0.1, done, 1))
        refused = sleeper(0, done, 2)
        with pytest.raises(BackgroundTasksFull, match="1 tasks running, the limit"):
            await tasks.spawn(refused)
        with pytest.raises(BackgroundTasksFull):
            tasks.spawn_nowait(sleeper(0, done, 3))
        assert tasks.stats.refused == 2
        await tasks.drain()
        assert done == [1]
        fresh = BackgroundTasks(limit=1)
        fresh.spawn_nowait(sleeper(0, done, 4))  # a free slot: started at once
        await fresh.drain()
        assert done == [1, 4]

    async def test_a_waiting_spawn_cancelled_gives_its_turn_on(self) -> None:
        done: list[float] = []
        tasks = BackgroundTasks(limit=1)
        await tasks.spawn(sleeper(0.05, done, 1))
        waiting = asyncio.ensure_future(tasks.spawn(sleeper(0, done, 2)))
        behind = asyncio.ensure_future(tasks.spawn(sleeper(0, done, 3)))
        await asyncio.sleep(0.01)
        assert tasks.stats.waiting == 2
        waiting.cancel()
        await behind
        await tasks.drain()
        assert done == [1, 3]

    @pytest.mark.parametrize(
        ("options", "message"),
        [({"limit": 0}, "limit must be"), ({"when_full": "drop"}, "when_full must be")],
    )
    def test_bad_options(self, options: dict[str, Any], message: str) -> None:
        with pytest.raises(ValueError, match=message):
            BackgroundTasks(**options)

    async def test_spawn_wants_a_coroutine(self) -> None:
        tasks = BackgroundTasks()
        with pytest.raises(TypeError, match="call the function"):
            await tasks.spawn(sleeper)  # type: ignore[arg-type]


class TestDrain:
    async def test_drain_waits_for_running_work_and_cancels_the_rest(self) -> None:
        done: list[float] = []
        cancelled: list[str] = []

        async def long() -> None:
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                cancelled.append("long")
                raise

        tasks = BackgroundTasks()
        await tasks.spawn(sleeper(0.05, done, 1))
        await tasks.spawn(long())
        began = time.monotonic()
        stats = await tasks.drain(timeout=0.3)
        assert 0.25 <= time.monotonic() - began < 5
        assert done == [1]
        assert cancelled == ["long"]
        assert (stats.done, stats.cancelled, stats.running) == (1, 1, 0)
        with pytest.raises(RuntimeError, match="takes no new tasks"):
            await tasks.spawn(sleeper(0, done))

    async def test_drain_zero_cancels_at_once(self) -> None:
        tasks = BackgroundTasks()
        await tasks.spawn(asyncio.sleep(30))
        stats = await tasks.drain(timeout=0)
        assert stats.cancelled == 1


class TestBlocking:
    def test_sync_code_submits_async_and_plain_functions(self) -> None:
        done: list[float] = []
        tasks = BlockingBackgroundTasks(limit=4)
        with structlog.contextvars.bound_contextvars(user_id="sync-user"):
            seen = tasks.submit(lambda: structlog.contextvars.get_contextvars().get("user_id"))
            futures = [tasks.submit(sleeper, 0.05, done, i) for i in range(8)]
        assert seen.result(5) == "sync-user"
        assert [f.result(5) for f in futures] == list(range(8))
        failed = tasks.submit(failing, "boom")
        with pytest.raises(RuntimeError, match="boom"):
            failed.result(5)
        stats = tasks.drain(timeout=5)
        assert (stats.done, stats.failed) == (9, 1)

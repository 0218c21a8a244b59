"""gather_bounded and map_bounded: order, limits, failures, deadlines, cancellation."""

from __future__ import annotations

import asyncio
import functools
import inspect
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import aclosing
from typing import cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asyncgen import (
    DeadlineExceededError,
    Outcome,
    RetryPolicy,
    ServerError,
    gather_bounded,
    map_bounded,
    retry,
)


class Gauge:
    """Counts calls in flight and remembers the most seen at once."""

    def __init__(self) -> None:
        self.now = 0
        self.peak = 0
        self.started: list[int] = []

    async def call(self, index: int, yields: int, fail: bool = False) -> int:
        self.now += 1
        self.peak = max(self.peak, self.now)
        self.started.append(index)
        try:
            for _ in range(yields):
                await asyncio.sleep(0)
            if fail:
                raise ValueError(f"call {index} failed")
            return index
        finally:
            self.now -= 1


jobs = st.lists(st.tuples(st.integers(0, 5), st.booleans()), max_size=40)


class TestGatherBoundedProperties:
    @given(work=jobs, limit=st.integers(1, 12))
    @settings(max_examples=150, deadline=None)
    def test_order_failures_and_limit(self, work: list[tuple[int, bool]], limit: int) -> None:
        """Outcomes come in input order, failures stay in their slot, the limit holds."""
        gauge = Gauge()
        calls = [functools.partial(gauge.call, i, y, f) for i, (y, f) in enumerate(work)]
        outcomes = asyncio.run(gather_bounded(calls, limit=limit))
        assert [o.index for o in outcomes] == list(range(len(work)))
        for outcome, (_, failed) in zip(outcomes, work, strict=True):
            assert outcome.ok is not failed
            if failed:
                assert isinstance(outcome.error, ValueError)
            else:
                assert outcome.value == outcome.index
        assert gauge.peak <= limit

    @given(n=st.integers(1, 60), limit=st.integers(1, 12), yields=st.integers(1, 4))
    @settings(max_examples=100, deadline=None)
    def test_limit_is_reached_when_there_is_enough_work(
        self, n: int, limit: int, yields: int
    ) -> None:
        """With n calls that each wait, min(n, limit) of them run at once."""
        gauge = Gauge()
        calls = [functools.partial(gauge.call, i, yields) for i in range(n)]
        asyncio.run(gather_bounded(calls, limit=limit))
        assert gauge.peak == min(n, limit)


class TestGatherBounded:
    async def test_empty_input(self) -> None:
        """No calls give no outcomes."""
        assert await gather_bounded([], limit=3) == []

    @pytest.mark.parametrize("limit", [0, -1])
    async def test_limit_below_one_is_a_value_error(self, limit: int) -> None:
        """A limit below 1 is refused with a message naming it."""
        with pytest.raises(ValueError, match="limit must be >= 1"):
            await gather_bounded([], limit=limit)

    @pytest.mark.parametrize("limit", [1.5, True, "4"])
    async def test_limit_of_wrong_type_is_a_type_error(self, limit: object) -> None:
        """A limit that is not an int is refused."""
        with pytest.raises(TypeError, match="limit must be an int"):
            await gather_bounded([], limit=cast(int, limit))

    async def test_negative_deadline_is_a_value_error(self) -> None:
        """A negative deadline is refused."""
        with pytest.raises(ValueError, match="deadline"):
            await gather_bounded([], limit=1, deadline=-1)

    async def test_sliding_window_not_batches(self) -> None:
        """Short calls keep starting while one long call holds its slot."""
        release = asyncio.Event()
        order: list[str] = []

        async def long() -> str:
            await release.wait()
            order.append("long done")
            return "long"

        async def short(i: int) -> int:
            order.append(f"short {i}")
            await asyncio.sleep(0)
            if i == 4:
                release.set()
            return i

        calls: list[Callable[[], Awaitable[object]]] = [long]
        calls += [functools.partial(short, i) for i in range(5)]
        outcomes = await gather_bounded(calls, limit=2)
        assert order.index("short 4") < order.index("long done")
        assert [o.value for o in outcomes] == ["long", 0, 1, 2, 3, 4]

    async def test_nothing_starts_before_it_has_a_slot(self) -> None:
        """When the first call finishes, only ``limit`` calls have started."""
        gauge = Gauge()
        seen: list[int] = []

        async def first() -> int:
            await asyncio.sleep(0)
            seen.append(len(gauge.started))
            return -1

        calls = [first] + [functools.partial(gauge.call, i, 3) for i in range(8)]
        await gather_bounded(calls, limit=3)
        assert seen == [2]

    async def test_on_done_sees_each_outcome_as_it_finishes(self) -> None:
        """on_done (sync or async) is called once per call, in completion order."""
        finished: list[int] = []

        async def record(outcome: Outcome[int]) -> None:
            finished.append(outcome.index)

        gauge = Gauge()
        calls = [functools.partial(gauge.call, i, 5 - i) for i in range(5)]
        await gather_bounded(calls, limit=5, on_done=record)
        assert finished == [4, 3, 2, 1, 0]
        synced: list[int] = []
        await gather_bounded(calls, limit=1, on_done=lambda o: synced.append(o.index))
        assert synced == [0, 1, 2, 3, 4]

    async def test_failing_on_done_does_not_lose_results(self) -> None:
        """A broken progress callback is logged; every result is still returned."""

        def broken(outcome: Outcome[int]) -> None:
            raise RuntimeError("progress bar bug")

        gauge = Gauge()
        calls = [functools.partial(gauge.call, i, 1) for i in range(4)]
        outcomes = await gather_bounded(calls, limit=2, on_done=broken)
        assert [o.value for o in outcomes] == [0, 1, 2, 3]

    async def test_deadline_keeps_finished_results(self) -> None:
        """Calls finished before the deadline keep results; the rest get DeadlineExceeded."""
        invoked: list[int] = []

        async def sleeper(i: int, seconds: float) -> int:
            invoked.append(i)
            await asyncio.sleep(seconds)
            return i

        plan = [0.01, 0.02, 30.0, 0.01, 30.0, 0.01]
        calls = [functools.partial(sleeper, i, s) for i, s in enumerate(plan)]
        outcomes = await gather_bounded(calls, limit=2, deadline=0.5)
        assert [o.ok for o in outcomes] == [True, True, False, True, False, False]
        assert [o.value for o in outcomes[:2]] == [0, 1]
        for late in (outcomes[2], outcomes[4], outcomes[5]):
            assert isinstance(late.error, DeadlineExceededError)
        assert "still running" in str(outcomes[2].error)
        assert "had not started" in str(outcomes[5].error)
        assert 5 not in invoked

    async def test_retries_never_sleep_past_the_deadline(self) -> None:
        """A retry whose wait would end after the deadline gives up with the real error."""
        calls = 0

        async def flaky() -> None:
            nonlocal calls
            calls += 1
            raise ServerError("down", status=503)

        policy = RetryPolicy(max_attempts=5, base_delay=30.0)
        loop = asyncio.get_running_loop()
        began = loop.time()
        outcomes = await gather_bounded(
            [functools.partial(retry, flaky, policy=policy)], limit=1, deadline=10.0
        )
        assert isinstance(outcomes[0].error, ServerError)
        assert calls == 1
        assert loop.time() - began < 5.0

    async def test_attempts_counted_through_retry(self) -> None:
        """Outcome.attempts reports the retries made inside the call."""
        tries = 0

        async def flaky() -> str:
            nonlocal tries
            tries += 1
            if tries < 3:
                raise ServerError("down", status=503)
            return "ok"

        policy = RetryPolicy(base_delay=0.0, jitter=0.0)
        outcomes = await gather_bounded([functools.partial(retry, flaky, policy=policy)], limit=1)
        assert (outcomes[0].value, outcomes[0].attempts) == ("ok", 3)

    async def test_cancellation_propagates_and_cancels_every_call(self) -> None:
        """Cancelling the caller cancels running calls, starts no more, leaks no task."""
        running = asyncio.Event()
        cancelled: list[int] = []
        started: list[int] = []

        async def forever(i: int) -> None:
            started.append(i)
            if len(started) == 3:
                running.set()
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                cancelled.append(i)
                raise

        before = asyncio.all_tasks()
        task = asyncio.create_task(
            gather_bounded([functools.partial(forever, i) for i in range(10)], limit=3)
        )
        await running.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert sorted(cancelled) == [0, 1, 2]
        assert started == [0, 1, 2]
        assert asyncio.all_tasks() == before


def test_keyboard_interrupt_propagates_after_others_are_cancelled() -> None:
    """A KeyboardInterrupt in one call stops the batch; the other calls are cancelled."""
    cleaned: list[int] = []

    async def sleeper(i: int) -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            cleaned.append(i)

    async def interrupter() -> None:
        await asyncio.sleep(0.01)
        raise KeyboardInterrupt

    async def main() -> None:
        calls: list[Callable[[], Awaitable[None]]] = [interrupter]
        calls += [functools.partial(sleeper, i) for i in range(3)]
        await gather_bounded(calls, limit=4)

    with pytest.raises(KeyboardInterrupt):
        asyncio.run(main())
    assert sorted(cleaned) == [0, 1, 2]


async def echo(item: int) -> int:
    await asyncio.sleep(0)
    return item


class TestMapBounded:
    async def test_ordered_over_sync_iterable(self) -> None:
        """Outcomes come back in input order with their indices."""
        async with aclosing(map_bounded(echo, range(50), limit=4)) as results:
            got = [o.unwrap() async for o in results]
        assert got == list(range(50))

    async def test_async_iterable_source(self) -> None:
        """An async generator works as the source."""

        async def source() -> AsyncIterator[int]:
            for i in range(20):
                await asyncio.sleep(0)
                yield i

        got = [o.value async for o in map_bounded(echo, source(), limit=3)]
        assert got == list(range(20))

    async def test_unordered_yields_as_calls_finish(self) -> None:
        """With ordered=False a fast call is yielded before a slow earlier one."""

        async def slow_first(i: int) -> int:
            for _ in range(20 if i == 0 else 1):
                await asyncio.sleep(0)
            return i

        got = [o.index async for o in map_bounded(slow_first, range(4), limit=4, ordered=False)]
        assert got[-1] == 0
        assert sorted(got) == [0, 1, 2, 3]

    async def test_errors_become_outcomes(self) -> None:
        """An exception from fn is that item's error; the others succeed."""

        async def picky(i: int) -> int:
            if i % 3 == 0:
                raise ValueError(i)
            return i

        outcomes = [o async for o in map_bounded(picky, range(7), limit=2)]
        assert [o.ok for o in outcomes] == [i % 3 != 0 for i in range(7)]

    async def test_limit_holds(self) -> None:
        """No more than ``limit`` calls run at once."""
        gauge = Gauge()
        async for _ in map_bounded(lambda i: gauge.call(i, 3), range(100), limit=5):
            pass
        assert gauge.peak == 5

    async def test_infinite_input_is_pulled_lazily(self) -> None:
        """An endless source is read only as far as the window allows."""
        pulled = 0

        def counting() -> Iterator[int]:
            nonlocal pulled
            for i in itertools.count():
                pulled += 1
                yield i

        async with aclosing(map_bounded(echo, counting(), limit=4, window=8)) as results:
            async for outcome in results:
                if outcome.index == 9:
                    break
        assert 10 <= pulled <= 10 + 8

    async def test_slow_head_applies_backpressure(self) -> None:
        """While the head item is stuck, at most ``window`` items are started."""
        release = asyncio.Event()
        pulled: list[int] = []

        async def stuck_head(i: int) -> int:
            if i == 0:
                await release.wait()
            return i

        def source() -> Iterator[int]:
            for i in range(1000):
                pulled.append(i)
                yield i

        results = map_bounded(stuck_head, source(), limit=4, window=10)
        first = asyncio.ensure_future(anext(results))
        for _ in range(50):
            await asyncio.sleep(0)
        assert len(pulled) == 10
        release.set()
        assert (await first).index == 0
        rest = [o.index async for o in results]
        assert rest == list(range(1, 1000))

    async def test_source_error_propagates(self) -> None:
        """An error raised by the input iterator ends the map with that error."""

        def broken() -> Iterator[int]:
            yield 1
            raise OSError("disk gone")

        with pytest.raises(OSError, match="disk gone"):
            async for _ in map_bounded(echo, broken(), limit=2):
                pass

    async def test_closing_cancels_running_calls(self) -> None:
        """Leaving early and closing cancels calls still running."""
        cancelled: list[int] = []
        started: list[int] = []

        async def slow(i: int) -> int:
            if i == 0:
                return 0
            started.append(i)
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                cancelled.append(i)
                raise
            return i

        async with aclosing(map_bounded(slow, range(10), limit=3)) as results:
            async for _ in results:
                break
        assert started  # workers fill the free slots at once
        assert sorted(cancelled) == sorted(started)
        assert len(started) <= 3

    async def test_window_below_limit_is_refused(self) -> None:
        """A window smaller than the limit is a ValueError."""
        with pytest.raises(ValueError, match="window"):
            async for _ in map_bounded(echo, [1], limit=4, window=2):
                pass


class TestRefusals:
    async def test_coroutine_objects_are_refused_up_front(self) -> None:
        """Coroutines instead of callables: a TypeError naming the fix, no 'never awaited'."""

        async def fetch(n: int) -> int:
            return n

        calls = [fetch(1), fetch(2)]
        with pytest.raises(TypeError, match=r"item 0 is a coroutine object: pass functools"):
            await gather_bounded(calls, limit=2)  # type: ignore[arg-type]
        closed = [inspect.getcoroutinestate(c) == inspect.CORO_CLOSED for c in calls]
        assert all(closed)  # so no "never awaited" warning at exit

    async def test_a_huge_limit_over_a_short_input_starts_few_workers(self) -> None:
        """map_bounded with limit 100,000 over 4 items starts workers for the items only."""
        before = len(asyncio.all_tasks())
        seen: list[int] = []

        async def record(item: int) -> int:
            seen.append(len(asyncio.all_tasks()) - before)
            await asyncio.sleep(0)
            return item

        async with aclosing(map_bounded(record, range(4), limit=100_000)) as outcomes:
            got = [o.value async for o in outcomes]
        assert got == [0, 1, 2, 3]
        assert max(seen) <= 5  # one worker per item pulled, plus the one that finds the end

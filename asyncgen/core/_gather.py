"""Bounded, ordered concurrency: a sliding window of workers, never fixed batches.

Both runners start ``limit`` worker tasks that each pull the next call when they are
free, so a slow call holds one slot, not a whole batch, and no more than ``limit``
tasks ever exist however long the input is.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterable, Awaitable, Callable, Coroutine, Iterable
from typing import Any, TypeVar

import structlog

from ._context import attempt_counter, deadline_after
from ._errors import DeadlineExceededError
from ._outcome import Outcome

__all__ = ["gather_bounded", "map_bounded"]

T = TypeVar("T")
X = TypeVar("X")

OnDone = Callable[[Outcome[T]], object]

_log = structlog.get_logger("asyncgen.gather")
_END: Any = object()


def _check_limit(limit: int) -> None:
    if isinstance(limit, bool) or not isinstance(limit, int):
        raise TypeError(f"limit must be an int, got {type(limit).__name__}")
    if limit < 1:
        raise ValueError(f"limit must be >= 1 (the most calls running at once), got {limit}")


def _check_calls(calls: list[Any]) -> None:
    """Refuse coroutine objects (and other non-callables) before anything runs.

    A coroutine object has already been made and can be awaited only once, so it cannot
    wait for a free slot; it is closed here, so that no "never awaited" warning follows.
    """
    for index, call in enumerate(calls):
        if callable(call):
            continue
        for other in calls:
            if inspect.iscoroutine(other):
                other.close()
        what = "a coroutine object" if inspect.iscoroutine(call) else type(call).__name__
        raise TypeError(
            f"gather_bounded takes zero-argument callables, and item {index} is {what}: "
            "pass functools.partial(fetch, url) or lambda: fetch(url), not fetch(url)"
        )


async def _run_one(index: int, call: Callable[[], Awaitable[T]], cell: list[int]) -> Outcome[T]:
    """Run one call and turn what it returns or raises into an Outcome."""
    loop_time = asyncio.get_running_loop().time
    cell[0] = 1
    start = loop_time()
    try:
        value = await call()
    except Exception as exc:
        return Outcome(index=index, error=exc, attempts=cell[0], elapsed=loop_time() - start)
    return Outcome(index=index, value=value, attempts=cell[0], elapsed=loop_time() - start)


async def _notify(on_done: OnDone[T], outcome: Outcome[T]) -> None:
    # A broken progress callback must not throw away paid-for results: log it loudly.
    try:
        result = on_done(outcome)
        if inspect.isawaitable(result):
            await result
    except Exception:
        _log.exception("on_done_callback_failed", index=outcome.index)


async def gather_bounded(
    calls: Iterable[Callable[[], Awaitable[T]]],
    *,
    limit: int,
    deadline: float | None = None,
    on_done: OnDone[T] | None = None,
) -> list[Outcome[T]]:
    """Run zero-argument async callables, at most ``limit`` at a time, in input order.

    A call starts only when a slot is free (a sliding window). Its exception becomes its
    slot's ``Outcome.error`` and the others go on. With a ``deadline``, calls finished
    before it keep their results and the rest get :class:`DeadlineExceededError`;
    retries inside the calls see the deadline and do not sleep past it.

    Args:
        calls: Zero-argument async callables, e.g. ``functools.partial(fetch, url)``
            (not coroutine objects such as ``fetch(url)``: those cannot wait for a slot).
        limit: The most calls running at once (>= 1).
        deadline: Seconds from now after which unfinished calls are abandoned.
        on_done: Called with each Outcome as it finishes (sync or async); its errors are
            logged, not raised.

    Returns:
        One Outcome per call, in the order of ``calls``.

    Raises:
        ValueError: ``limit`` < 1 or ``deadline`` < 0.
        TypeError: An item of ``calls`` is not callable (e.g. a coroutine object); the
            coroutines given are closed and nothing runs.
        asyncio.CancelledError: When the caller is cancelled; the calls are cancelled first.
    """
    _check_limit(limit)
    if deadline is not None and deadline < 0:
        raise ValueError(f"deadline must be >= 0 seconds, got {deadline}")
    pending = list(calls)
    _check_calls(pending)
    results: list[Outcome[T] | None] = [None] * len(pending)
    started: dict[int, float] = {}
    work = enumerate(pending)

    async def worker() -> None:
        cell = attempt_counter()
        clock = asyncio.get_running_loop().time
        for index, call in work:
            started[index] = clock()
            outcome = await _run_one(index, call, cell)
            del started[index]
            results[index] = outcome
            if on_done is not None:
                await _notify(on_done, outcome)

    workers = min(limit, len(pending))
    if deadline is None:
        async with asyncio.TaskGroup() as group:
            for _ in range(workers):
                group.create_task(worker())
        return results  # type: ignore[return-value]
    await _run_with_deadline(worker, workers, deadline)
    return _fill_expired(results, started, deadline)


async def _run_with_deadline(
    worker: Callable[[], Coroutine[Any, Any, None]], workers: int, deadline: float
) -> None:
    with deadline_after(deadline):
        try:
            async with asyncio.timeout(deadline), asyncio.TaskGroup() as group:
                for _ in range(workers):
                    group.create_task(worker())
        except TimeoutError:
            _log.warning("deadline_exceeded", deadline=deadline)


def _fill_expired(
    results: list[Outcome[T] | None], started: dict[int, float], deadline: float
) -> list[Outcome[T]]:
    now = asyncio.get_running_loop().time()
    filled: list[Outcome[T]] = []
    for index, outcome in enumerate(results):
        if outcome is None:
            began = started.get(index)
            state = "was still running" if began is not None else "had not started"
            error = DeadlineExceededError(f"deadline of {deadline:g} s passed; the call {state}")
            elapsed = now - began if began is not None else 0.0
            outcome = Outcome(
                index=index, error=error, attempts=0 if began is None else 1, elapsed=elapsed
            )
        filled.append(outcome)
    return filled


async def map_bounded(
    fn: Callable[[X], Awaitable[T]],
    items: Iterable[X] | AsyncIterable[X],
    *,
    limit: int,
    ordered: bool = True,
    window: int | None = None,
) -> AsyncGenerator[Outcome[T], None]:
    """Apply ``fn`` to every item, at most ``limit`` at a time, yielding Outcomes.

    Items are pulled lazily, so the input may be any length (or an async stream) and
    memory stays proportional to ``window``, not to the input: no item starts until
    fewer than ``window`` items are started but not yet consumed. When the head of an
    ordered window is slow, that is the backpressure: the rest wait for it. A slow
    consumer also holds the producers back.

    Close the iterator when leaving early (``contextlib.aclosing``) so that running
    calls are cancelled at once rather than when it is garbage collected.

    Args:
        fn: Async function of one item.
        items: An iterable or async iterable of items.
        limit: The most calls running at once (>= 1).
        ordered: Yield in input order (True) or as calls finish (False).
        window: The most items started but not yet yielded; default ``2 * limit``.

    Yields:
        One Outcome per item; ``index`` is the item's position in the input.

    Raises:
        ValueError: ``limit`` < 1 or ``window`` < ``limit``.
        Exception: Whatever the input iterator itself raises, after cancelling the calls.
    """
    _check_limit(limit)
    size = 2 * limit if window is None else window
    if size < limit:
        raise ValueError(f"window must be >= limit ({limit}), got {window}")
    runner = _Mapper(fn, items, limit=limit, window=size, ordered=ordered)
    try:
        while True:
            outcome = await runner.next()
            if outcome is _END:
                return
            yield outcome
    finally:
        await runner.aclose()


class _Mapper:
    """The state of one map_bounded run: a source, workers and a reorder buffer."""

    def __init__(
        self,
        fn: Callable[[Any], Awaitable[Any]],
        items: Iterable[Any] | AsyncIterable[Any],
        *,
        limit: int,
        window: int,
        ordered: bool,
    ) -> None:
        self._fn = fn
        self._sync_source = iter(items) if not isinstance(items, AsyncIterable) else None
        self._async_source = aiter(items) if isinstance(items, AsyncIterable) else None
        self._source_lock = asyncio.Lock()
        self._permits = asyncio.Semaphore(window)
        self._ordered = ordered
        self._ready: dict[int, Outcome[Any]] = {}
        self._arrivals: deque[Outcome[Any]] = deque()
        self._wake = asyncio.Event()
        self._claimed = 0
        self._head = 0
        self._exhausted = False
        self._failure: BaseException | None = None
        self._limit = limit
        self._live = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._spawn()

    def _spawn(self) -> None:
        """Start one more worker, up to ``limit``: workers grow with the items pulled, so
        a huge limit over a short input costs nothing (4 items start at most 5 workers)."""
        if len(self._tasks) < self._limit:
            self._live += 1
            self._tasks.append(asyncio.get_running_loop().create_task(self._work()))

    async def _pull(self) -> tuple[int, Any]:
        if self._exhausted:
            return -1, _END
        if self._sync_source is not None:
            item = next(self._sync_source, _END)
        else:
            async with self._source_lock:
                item = await anext(self._async_source, _END)  # type: ignore[arg-type]
        if item is _END:
            self._exhausted = True
            return -1, _END
        index, self._claimed = self._claimed, self._claimed + 1
        return index, item

    async def _work(self) -> None:
        cell = attempt_counter()
        try:
            while True:
                await self._permits.acquire()
                index, item = await self._pull()
                if item is _END:
                    self._permits.release()
                    return
                self._spawn()
                outcome = await _run_one(index, functools.partial(self._fn, item), cell)
                if self._ordered:
                    self._ready[index] = outcome
                else:
                    self._arrivals.append(outcome)
                self._wake.set()
        except Exception as exc:  # the source failed: the whole map fails
            self._failure = exc
        finally:
            self._live -= 1
            self._wake.set()

    def _take(self) -> Outcome[Any] | None:
        if self._ordered:
            return self._ready.pop(self._head, None)
        return self._arrivals.popleft() if self._arrivals else None

    async def next(self) -> Any:
        while True:
            if self._failure is not None:
                raise self._failure
            outcome = self._take()
            if outcome is not None:
                self._head += 1
                self._permits.release()
                return outcome
            if self._live == 0:
                return _END
            self._wake.clear()
            await self._wake.wait()

    async def aclose(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

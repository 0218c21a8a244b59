"""Supervised fire-and-forget: background tasks that are kept, counted, reported, drained.

A bare ``asyncio.create_task(handle(message))`` in a chat bot's handler has three
defects: the loop keeps only a weak reference, so the task can be garbage-collected
mid-run; its exception is never looked at (a "Task exception was never retrieved" at
exit, if that); and at shutdown it is simply lost. :class:`BackgroundTasks` keeps every
task until it ends, reports each failure (log line and callback) without touching the
others, can bound how many run at once, and drains on shutdown.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextvars
import inspect
import math
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Literal, TypeVar, overload

import structlog

from ..core._bridge import call_soon, run_blocking
from ..core._logging import mask_secrets

__all__ = [
    "BackgroundStats",
    "BackgroundTasks",
    "BackgroundTasksFull",
    "BlockingBackgroundTasks",
    "TaskFailure",
]

T = TypeVar("T")

_log = structlog.get_logger("asyncgen.background")


class BackgroundTasksFull(RuntimeError):
    """A BackgroundTasks at its limit refused a task (``when_full="refuse"``)."""


@dataclass(frozen=True, slots=True)
class TaskFailure:
    """A background task that raised: given to ``on_error``.

    Attributes:
        name: The task's name (given to ``spawn``, else the coroutine's).
        error: The exception it raised.
        elapsed: Seconds it ran.
    """

    name: str
    error: BaseException
    elapsed: float


@dataclass(frozen=True, slots=True)
class BackgroundStats:
    """Counts since the BackgroundTasks was made.

    Attributes:
        running: Tasks running now.
        waiting: Spawns waiting for a free slot (``when_full="wait"``).
        done: Tasks that returned.
        failed: Tasks that raised (each reported).
        cancelled: Tasks cancelled (by ``drain`` past its timeout, or by their code).
        refused: Spawns refused because the limit was reached (``when_full="refuse"``).
    """

    running: int
    waiting: int
    done: int
    failed: int
    cancelled: int
    refused: int


class BackgroundTasks:
    """Run coroutines in the background, supervised: ``async with`` or held by an app.

    Example::

        tasks = BackgroundTasks(limit=100, on_error=report)

        async def on_message(message):
            await reply(message, "Thinking...")
            await tasks.spawn(answer(message), name=f"answer {message.id}")

        ...
        await tasks.drain(timeout=30)  # at shutdown

    Each task runs in a copy of the spawning context, so values bound with
    ``structlog.contextvars`` (or :func:`asyncgen.conversation`) follow it.

    Args:
        limit: Tasks allowed to run at once (None: no limit).
        when_full: At the limit, ``spawn`` either waits for a free slot ("wait") or
            raises :class:`BackgroundTasksFull` ("refuse").
        on_error: Called with a :class:`TaskFailure` for each task that raises (after
            the failure is logged). Its own errors are logged, never raised.
        name: Used in log lines.

    Raises:
        ValueError: A limit below 1, or an unknown ``when_full``.
    """

    def __init__(
        self,
        *,
        limit: int | None = None,
        when_full: Literal["wait", "refuse"] = "wait",
        on_error: Callable[[TaskFailure], object] | None = None,
        name: str = "background",
    ) -> None:
        if limit is not None and (
            isinstance(limit, bool) or not isinstance(limit, int) or limit < 1
        ):
            raise ValueError(f"limit must be a whole number >= 1 or None, got {limit!r}")
        if when_full not in ("wait", "refuse"):
            raise ValueError(f'when_full must be "wait" or "refuse", got {when_full!r}')
        self.limit = limit
        self.when_full = when_full
        self.on_error = on_error
        self.name = name
        self._tasks: set[asyncio.Task[Any]] = set()
        self._free = limit if limit is not None else 0  # free slots (with a limit)
        self._queue: collections.deque[asyncio.Future[None]] = collections.deque()  # FIFO
        self._closed = False
        self._done = self._failed = self._cancelled = self._refused = 0

    def __repr__(self) -> str:
        return f"BackgroundTasks({self.name!r}, running={len(self._tasks)}, limit={self.limit})"

    @property
    def stats(self) -> BackgroundStats:
        """Running, waiting, done, failed, cancelled and refused counts."""
        return BackgroundStats(
            running=len(self._tasks),
            waiting=len(self._queue),
            done=self._done,
            failed=self._failed,
            cancelled=self._cancelled,
            refused=self._refused,
        )

    def __len__(self) -> int:
        return len(self._tasks)

    async def spawn(
        self,
        coro: Coroutine[Any, Any, T],
        *,
        name: str | None = None,
        context: contextvars.Context | None = None,
    ) -> asyncio.Task[T]:
        """Start ``coro`` in the background and return its task at once.

        At the limit: waits for a slot, first come first served (``when_full="wait"``),
        or raises.

        Args:
            coro: The coroutine (``fn(...)``, not ``fn``).
            name: The task's name in logs and in :class:`TaskFailure`.
            context: Run it in this context (default: a copy of the caller's).

        Raises:
            BackgroundTasksFull: At the limit with ``when_full="refuse"`` (the coroutine
                is closed, never started).
            RuntimeError: After ``drain`` began.
            TypeError: ``coro`` is not a coroutine.
        """
        self._check(coro)
        if not self._take_now():
            if self.when_full == "refuse":
                self._refuse(coro)
            try:
                await self._take()
            except BaseException:
                coro.close()
                raise
            if self._closed:  # drained while this spawn waited for a slot
                self._give()
                self._check(coro)
        return self._start(coro, name, context)

    def spawn_nowait(
        self,
        coro: Coroutine[Any, Any, T],
        *,
        name: str | None = None,
        context: contextvars.Context | None = None,
    ) -> asyncio.Task[T]:
        """Start ``coro`` now, or raise if the limit is reached (whatever ``when_full``).

        For sync callbacks inside a running loop. Raises as :meth:`spawn`.
        """
        self._check(coro)
        if not self._take_now():
            self._refuse(coro)
        return self._start(coro, name, context)

    def _check(self, coro: object) -> None:
        if not inspect.iscoroutine(coro):
            raise TypeError(f"spawn() takes a coroutine (call the function), got {coro!r}")
        if self._closed:
            coro.close()
            raise RuntimeError(f"{self!r} is draining: it takes no new tasks")

    def _take_now(self) -> bool:
        if self.limit is None:
            return True
        if self._free > 0 and not self._queue:
            self._free -= 1
            return True
        return False

    async def _take(self) -> None:
        """Wait for a slot: a finishing task hands its slot to the first waiter."""
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append(turn)
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                self._give()  # handed a slot just as it was cancelled: pass it on
            else:
                self._queue.remove(turn)
            raise

    def _give(self) -> None:
        while self._queue:
            turn = self._queue.popleft()
            if not turn.done():
                turn.set_result(None)
                return
        self._free += 1

    def _refuse(self, coro: Coroutine[Any, Any, Any]) -> None:
        coro.close()
        self._refused += 1
        raise BackgroundTasksFull(
            f"{self.name}: {self.limit} tasks running, the limit; try again later, or "
            'use when_full="wait" to queue'
        )

    def _start(
        self, coro: Coroutine[Any, Any, T], name: str | None, context: contextvars.Context | None
    ) -> asyncio.Task[T]:
        label = name or getattr(coro, "__qualname__", None) or repr(coro)
        began = time.monotonic()
        loop = asyncio.get_running_loop()
        task = loop.create_task(coro, name=label, context=context or contextvars.copy_context())
        self._tasks.add(task)
        task.add_done_callback(lambda finished: self._finished(finished, began))
        return task

    def _finished(self, task: asyncio.Task[Any], began: float) -> None:
        self._tasks.discard(task)
        if self.limit is not None:
            self._give()
        if task.cancelled():
            self._cancelled += 1
            return
        error = task.exception()  # retrieved: no "never retrieved" warning at exit
        if error is None:
            self._done += 1
            return
        self._failed += 1
        failure = TaskFailure(task.get_name(), error, time.monotonic() - began)
        _log.error(
            "background_task_failed",
            tasks=self.name,
            task=failure.name,
            error_type=type(error).__name__,
            error=mask_secrets(str(error)),
            elapsed=round(failure.elapsed, 3),
        )
        if self.on_error is not None:
            try:
                self.on_error(failure)
            except Exception as exc:  # a broken reporter must not break the others
                _log.error(
                    "background_on_error_failed", tasks=self.name, error=mask_secrets(repr(exc))
                )

    async def drain(self, timeout: float | None = None) -> BackgroundStats:  # noqa: ASYNC109 - the drain's grace, as in Worker
        """Take no new tasks; wait up to ``timeout`` seconds for the running ones, then
        cancel what is left and wait for it to end. Returns the final counts.

        Args:
            timeout: Seconds running tasks get (None: as long as they take; 0: cancel now).
        """
        if timeout is not None and not 0 <= timeout < math.inf:
            raise ValueError(f"timeout must be >= 0 seconds or None, got {timeout}")
        self._closed = True
        if self._tasks and timeout != 0:
            await asyncio.wait(set(self._tasks), timeout=timeout)
        left = set(self._tasks)
        for task in left:
            task.cancel()
        if left:
            _log.warning(
                "background_tasks_cancelled", tasks=self.name, count=len(left), after=timeout
            )
            await asyncio.wait(left)
        return self.stats

    async def __aenter__(self) -> BackgroundTasks:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.drain()


class BlockingBackgroundTasks:
    """:class:`BackgroundTasks` for sync code (Flask, scripts): tasks run on asyncgen's
    background loop; ``submit`` returns at once with a ``concurrent.futures.Future``.

    Args:
        **options: As for :class:`BackgroundTasks` (limit, when_full, on_error, name).
            With ``when_full="wait"``, ``submit`` blocks the calling thread for a slot.
    """

    def __init__(self, **options: Any) -> None:
        self.tasks = BackgroundTasks(**options)  # used on the bridge loop only

    def __repr__(self) -> str:
        return f"Blocking{self.tasks!r}"

    @property
    def stats(self) -> BackgroundStats:
        """As :attr:`BackgroundTasks.stats`."""
        return self.tasks.stats

    @overload
    def submit(
        self, fn: Callable[..., Coroutine[Any, Any, T]], /, *args: Any, **kwargs: Any
    ) -> concurrent.futures.Future[T]: ...

    @overload
    def submit(
        self, fn: Callable[..., T], /, *args: Any, **kwargs: Any
    ) -> concurrent.futures.Future[T]: ...

    def submit(
        self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any
    ) -> concurrent.futures.Future[Any]:
        """Run ``fn(*args, **kwargs)`` in the background: an async function on the loop,
        a plain one in a thread. Returns a future of its result.

        Raises:
            BackgroundTasksFull: At the limit with ``when_full="refuse"``.
        """
        context = contextvars.copy_context()  # the caller's, into the task (and thread)

        async def spawn() -> asyncio.Task[Any]:
            coro: Coroutine[Any, Any, Any] = (
                fn(*args, **kwargs)
                if inspect.iscoroutinefunction(fn)
                else asyncio.to_thread(fn, *args, **kwargs)
            )
            label = getattr(fn, "__qualname__", None)
            return await self.tasks.spawn(coro, name=label, context=context)

        task = run_blocking(spawn)
        outcome: concurrent.futures.Future[Any] = concurrent.futures.Future()

        def copy(done: asyncio.Task[Any]) -> None:
            if done.cancelled():
                outcome.cancel()
            elif (error := done.exception()) is not None:
                outcome.set_exception(error)
            else:
                outcome.set_result(done.result())

        call_soon(lambda: task.add_done_callback(copy))
        return outcome

    def drain(self, timeout: float | None = None) -> BackgroundStats:
        """As :meth:`BackgroundTasks.drain`, blocking."""
        return run_blocking(self.tasks.drain, timeout)

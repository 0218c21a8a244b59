"""The sync bridge: blocking twins of coroutine functions, on one persistent loop.

Every blocking call runs on a single event loop in a daemon thread ("asyncgen-loop"),
started on first use. Because the loop outlives each call, whatever the coroutines
build on it (httpx connection pools, TLS contexts, rate limiters) is reused by the next
call instead of being rebuilt, which ``asyncio.run`` per call cannot do.

It works from any number of threads at once (a threaded WSGI server), from a thread
whose own loop is running (Jupyter, an async framework calling sync code), and after
``os.fork`` (a new loop is started in the child).
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextvars
import functools
import inspect
import os
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from typing import Any, ParamSpec, TypeVar

__all__ = [
    "blocking",
    "blocking_iter",
    "call_soon",
    "in_bridge_thread",
    "iterate_blocking",
    "on_shutdown",
    "run_blocking",
    "start",
]

P = ParamSpec("P")
T = TypeVar("T")

_SHUTDOWN_GRACE = 5.0


class _LoopThread:
    """An event loop running forever in a daemon thread, restarted after a fork."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._closers: list[Callable[[], Awaitable[object]]] = []

    def loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            alive = self._thread is not None and self._thread.is_alive()
            if self._loop is None or self._pid != os.getpid() or not alive:
                self._start()
            assert self._loop is not None
            return self._loop

    def _start(self) -> None:
        loop = asyncio.new_event_loop()
        ready = threading.Event()
        thread = threading.Thread(
            target=self._serve, args=(loop, ready), name="asyncgen-loop", daemon=True
        )
        thread.start()
        ready.wait()
        self._loop, self._thread, self._pid = loop, thread, os.getpid()
        self._closers = []

    @staticmethod
    def _serve(loop: asyncio.AbstractEventLoop, ready: threading.Event) -> None:
        asyncio.set_event_loop(loop)
        loop.call_soon(ready.set)
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def in_loop_thread(self) -> bool:
        return self._thread is threading.current_thread()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        loop = self.loop()
        # Run in a copy of the caller's context, so structlog bindings cross the bridge.
        ctx = contextvars.copy_context()
        future = ctx.run(asyncio.run_coroutine_threadsafe, coro, loop)
        try:
            return future.result()
        except KeyboardInterrupt:
            future.cancel()
            raise

    def add_closer(self, closer: Callable[[], Awaitable[object]]) -> None:
        self._closers.append(closer)

    def shutdown(self) -> None:
        with self._lock:
            loop, thread = self._loop, self._thread
            if loop is None or thread is None or self._pid != os.getpid():
                return
            self._loop = self._thread = None
        if thread.is_alive():
            closing = asyncio.run_coroutine_threadsafe(self._close_all(), loop)
            try:
                closing.result(_SHUTDOWN_GRACE)
            except Exception:
                closing.cancel()
            loop.call_soon_threadsafe(loop.stop)
            thread.join(_SHUTDOWN_GRACE)

    async def _close_all(self) -> None:
        closers, self._closers = self._closers, []
        await asyncio.gather(*(closer() for closer in closers), return_exceptions=True)
        current = asyncio.current_task()
        others = [t for t in asyncio.all_tasks() if t is not current]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)


_LOOP = _LoopThread()
atexit.register(_LOOP.shutdown)


def run_blocking(
    fn: Callable[P, Coroutine[Any, Any, T]], /, *args: P.args, **kwargs: P.kwargs
) -> T:
    """Run ``await fn(*args, **kwargs)`` on the bridge loop and block until it is done.

    Raises:
        RuntimeError: When called from a coroutine running on the bridge loop itself,
            where blocking would deadlock: await the async function there instead.
        BaseException: Whatever ``fn`` raises, with its own type.
    """
    if _LOOP.in_loop_thread():
        raise RuntimeError(
            f"{getattr(fn, '__qualname__', fn)!s}: a blocking call from inside asyncgen's "
            "own event loop would deadlock; await the async version instead"
        )
    return _LOOP.run(fn(*args, **kwargs))


def blocking(fn: Callable[P, Coroutine[Any, Any, T]]) -> Callable[P, T]:
    """Return a blocking twin of ``fn``: same signature, name and docstring.

    The twin runs ``fn`` on asyncgen's persistent background loop, so resources built
    there (connection pools above all) survive from one call to the next.

    Args:
        fn: A coroutine function.

    Raises:
        TypeError: When ``fn`` is not a coroutine function.
    """
    if not inspect.iscoroutinefunction(fn):
        raise TypeError(f"blocking() needs an async def function, got {fn!r}")

    @functools.wraps(fn)
    def twin(*args: P.args, **kwargs: P.kwargs) -> T:
        return run_blocking(fn, *args, **kwargs)

    return twin


def iterate_blocking(items: AsyncIterator[T]) -> Iterator[T]:
    """Yield ``items`` in sync code, each taken on asyncgen's background loop. Leaving
    the loop early closes ``items`` (when it can be closed: an async generator's
    ``aclose``), there too."""

    async def following() -> tuple[bool, T | None]:
        try:
            return True, await anext(items)
        except StopAsyncIteration:
            return False, None

    async def close() -> None:
        aclose = getattr(items, "aclose", None)
        if aclose is not None:
            await aclose()

    try:
        while True:
            more, item = run_blocking(following)
            if not more:
                return
            yield item  # type: ignore[misc]  # T, when more is True
    finally:
        run_blocking(close)


def blocking_iter(fn: Callable[P, AsyncIterator[T]]) -> Callable[P, Iterator[T]]:
    """Return a blocking twin of an async generator function: same signature, name and
    docstring; it yields what ``fn`` yields (see :func:`iterate_blocking`)."""

    @functools.wraps(fn)
    def twin(*args: P.args, **kwargs: P.kwargs) -> Iterator[T]:
        return iterate_blocking(fn(*args, **kwargs))

    return twin


def start(coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
    """Start ``coro`` on the bridge loop without waiting; return its future."""
    return asyncio.run_coroutine_threadsafe(coro, _LOOP.loop())


def call_soon(callback: Callable[[], object]) -> None:
    """Run a plain callback on the bridge loop's thread, soon (thread-safe)."""
    _LOOP.loop().call_soon_threadsafe(callback)


def in_bridge_thread() -> bool:
    """True when running on the bridge loop's thread (inside a blocking twin's call)."""
    return _LOOP.in_loop_thread()


def on_shutdown(closer: Callable[[], Awaitable[object]]) -> None:
    """Register a coroutine function to run on the bridge loop when the process exits.

    Used for resources that live on the bridge loop, such as HTTP clients.
    """
    _LOOP.add_closer(closer)

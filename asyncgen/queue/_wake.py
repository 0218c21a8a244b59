"""In-process wake-ups for a store that cannot block on its server (SQLite, memory).

Workers and result waiters in the process that changed the store are woken at once;
those in other processes fall back to polling (a worker: 5 ms, doubling to 50 ms).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading

__all__ = ["Wakeups"]


class Wakeups:
    """Wake every waiter of this process, on whichever event loop it waits (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()

    def notify(self) -> None:
        """Wake every current waiter (callable from any thread)."""
        with self._lock:
            waiting, self._events = self._events, set()
        for loop, event in waiting:
            with contextlib.suppress(RuntimeError):  # its loop has closed meanwhile
                loop.call_soon_threadsafe(event.set)

    async def wait(self, within: float) -> None:
        """Return on the next :meth:`notify`, or after ``within`` seconds."""
        event = asyncio.Event()
        entry = (asyncio.get_running_loop(), event)
        with self._lock:
            self._events.add(entry)
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), within)
        finally:
            with self._lock:
                self._events.discard(entry)

"""Opening the backend a client asks for: ``httpx`` (default) or ``aiohttp``."""

from __future__ import annotations

import asyncio
import weakref

from ...core._bridge import in_bridge_thread, on_shutdown
from ._aiohttp import AiohttpTransport, require_aiohttp
from ._httpx import HttpxTransport
from ._transport import Options, Transport

__all__ = ["Pools", "open_transport", "require_aiohttp"]


def open_transport(backend: str, options: Options) -> Transport:
    """A new transport of ``backend`` ("httpx" or "aiohttp"); call inside the event loop.

    httpx loads anyio's event-loop backend on its first request (~30 ms of imports, more
    on a busy machine); it is loaded here instead, so that a rate-limited first request
    is not that late after its booked start (a limiter cannot see lateness after it
    admits a request, and a late start crowds the next second at the server).
    """
    if backend == "aiohttp":
        return AiohttpTransport(options)
    import anyio

    anyio.Event()  # loads the running loop's anyio backend
    return HttpxTransport(options)


class Pools:
    """One transport per event loop, opened on first use: a client serves async code and
    the blocking twins (which run on asyncgen's background loop) alike."""

    def __init__(self, backend: str, options: Options) -> None:
        if backend not in ("httpx", "aiohttp"):
            raise ValueError(f"backend must be 'httpx' or 'aiohttp', got {backend!r}")
        if backend == "aiohttp":
            require_aiohttp()
        self.backend = backend
        self.options = options
        self._pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Transport] = (
            weakref.WeakKeyDictionary()
        )

    def current(self) -> Transport:
        """The running loop's transport (opened now if it has none, or a closed one)."""
        loop = asyncio.get_running_loop()
        pool = self._pools.get(loop)
        if pool is None or pool.is_closed:
            pool = self._pools[loop] = open_transport(self.backend, self.options)
            if in_bridge_thread():  # the bridge loop lives until exit: close the pool then
                on_shutdown(pool.aclose)
        return pool

    def open_count(self) -> int:
        """Transports open now (one per loop that sent and has not closed)."""
        return sum(1 for pool in list(self._pools.values()) if not pool.is_closed)

    async def close_current(self) -> None:
        """Close the running loop's transport, if it has one."""
        pool = self._pools.pop(asyncio.get_running_loop(), None)
        if pool is not None:
            await pool.aclose()

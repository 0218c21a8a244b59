"""Opening the backend a client asks for: ``httpx`` (default) or ``aiohttp``."""

from __future__ import annotations

from ._aiohttp import AiohttpTransport, require_aiohttp
from ._httpx import HttpxTransport
from ._transport import Options, Transport

__all__ = ["open_transport", "require_aiohttp"]


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

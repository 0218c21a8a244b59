"""What crosses the line between ChatClient and its HTTP backend.

A request is bytes out and a :class:`Reply` (status, headers, body bytes) back, or a
:class:`StreamReply` read as it arrives; transport failures come back as asyncgen's
errors. The two backends (``_httpx.py``, ``_aiohttp.py``) implement :class:`Transport`;
``_backends.py`` opens the one a client asks for.
"""

from __future__ import annotations

import contextlib
import json
import ssl
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ...core._logging import mask_secrets

__all__ = [
    "JSON_HEADERS",
    "SSE",
    "Options",
    "Reply",
    "StreamReply",
    "Transport",
    "byte_lines",
    "encode_json",
    "error_detail",
    "stream_headers",
]

JSON_HEADERS = {"Content-Type": "application/json"}
SSE = "text/event-stream"  # what a streamed answer is read as


def stream_headers(body: bytes | None, accept: str) -> dict[str, str]:
    return {**(JSON_HEADERS if body is not None else {}), "Accept": accept}


def encode_json(body: Any) -> bytes:
    """A request body as httpx's ``json=`` would send it (compact, UTF-8, no NaN)."""
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


@dataclass(frozen=True, slots=True)
class Reply:
    """An HTTP answer: status, case-insensitive headers, and the body as bytes."""

    status: int
    headers: Mapping[str, str]
    content: bytes

    def json(self) -> Any:
        """The body parsed as JSON (raises ValueError when it is not)."""
        return json.loads(self.content)

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")


class StreamReply(Protocol):
    """A response being read as it arrives."""

    status: int
    headers: Mapping[str, str]

    async def read(self) -> bytes: ...

    def lines(self) -> AsyncIterator[bytes]:
        """The body's lines as they arrive, undecoded, without their line endings."""
        ...

    def chunks(self) -> AsyncIterator[bytes]:
        """The body's bytes as they arrive."""
        ...


class Transport(Protocol):
    """Sends one request on a pooled connection; failures already asyncgen errors.

    ``what`` names the request in errors; ``read_timeout`` (seconds for a connection from
    the pool, each read and each write) replaces the client's timeout for one call (the
    Batch API's file transfers take longer than an answer).
    """

    async def send(
        self,
        method: str,
        url: str,
        body: bytes | None,
        *,
        what: str,
        read_timeout: float | None = None,
    ) -> Reply:
        """Send a JSON body (or none) and read the whole answer."""
        ...

    async def upload(
        self,
        url: str,
        fields: Mapping[str, str],
        file: Path,
        *,
        content_type: str,
        what: str,
        read_timeout: float | None = None,
    ) -> Reply:
        """POST a multipart form: ``fields`` and ``file`` (read as it is sent)."""
        ...

    async def aclose(self) -> None: ...

    def stream(
        self,
        method: str,
        url: str,
        body: bytes | None,
        *,
        what: str,
        accept: str = SSE,
        read_timeout: float | None = None,
    ) -> contextlib.AbstractAsyncContextManager[StreamReply]:
        """Send, and read the answer as it comes (server-sent events, a file)."""
        ...

    @property
    def is_closed(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class Options:
    """What both backends are built from (one ChatClient's settings)."""

    headers: dict[str, str]
    timeout: float
    connect_timeout: float
    max_connections: int
    max_keepalive: int
    verify: ssl.SSLContext | str | bool
    http2: bool

    def __post_init__(self) -> None:
        positive = self.timeout > 0 and self.connect_timeout > 0 and self.max_connections >= 1
        if not positive or self.max_keepalive < 0:
            raise ValueError("timeouts and max_connections must be positive")


async def byte_lines(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """The lines of a byte stream, undecoded, without their line endings.

    httpx's ``aiter_lines()`` decodes with ``errors="replace"``, which would hide bytes
    that are not UTF-8 behind U+FFFD; the callers decode strictly and refuse them.
    """
    pending = b""
    async for chunk in chunks:
        pending += chunk
        *complete, pending = pending.split(b"\n")
        for line in complete:
            yield line.rstrip(b"\r")
    if pending:
        yield pending.rstrip(b"\r")


def error_detail(exc: BaseException) -> str:
    """A transport failure's own words for an error message: secrets masked, short."""
    return mask_secrets(str(exc))[:200] or "connection dropped"

"""The two HTTP backends behind ChatClient, each mapped straight to asyncgen's errors.

A request is bytes out and a :class:`Reply` (status, headers, body bytes) back; nothing
else crosses this line, so the client and the error mapping are the same on both:

- ``httpx`` (default): httpx's pool, HTTP/2 when the server offers it;
- ``aiohttp`` (``asyncgen[fast]``): aiohttp's HTTP/1.1 pool used directly, not through
  httpx's models, several times cheaper in CPU per request at high concurrency.
"""

from __future__ import annotations

import contextlib
import json
import ssl
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx

from ...core._errors import (
    AsyncGenError,
    BadRequestError,
    ConnectionFailedError,
    RequestTimeoutError,
)
from ...core._logging import mask_secrets

__all__ = [
    "AiohttpTransport",
    "HttpxTransport",
    "Options",
    "Reply",
    "Transport",
    "byte_lines",
    "encode_json",
    "open_transport",
    "require_aiohttp",
]

JSON_HEADERS = {"Content-Type": "application/json"}
SSE = "text/event-stream"  # what a streamed answer is read as


def _stream_headers(body: bytes | None, accept: str) -> dict[str, str]:
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


class HttpxTransport:
    """httpx.AsyncClient's pool (HTTP/2 capable)."""

    def __init__(self, options: Options) -> None:
        self._timeout = options.timeout
        self._connect_timeout = options.connect_timeout
        self._pool = httpx.AsyncClient(
            timeout=httpx.Timeout(options.timeout, connect=options.connect_timeout),
            limits=httpx.Limits(
                max_connections=options.max_connections,
                max_keepalive_connections=options.max_keepalive,
            ),
            http2=options.http2,
            headers=options.headers,
            verify=options.verify,
        )

    @property
    def is_closed(self) -> bool:
        return self._pool.is_closed

    def _timeout_for(self, timeout: float | None) -> Any:
        if timeout is None:
            return httpx.USE_CLIENT_DEFAULT
        return httpx.Timeout(timeout, connect=self._connect_timeout)

    async def send(
        self,
        method: str,
        url: str,
        body: bytes | None,
        *,
        what: str,
        read_timeout: float | None = None,
    ) -> Reply:
        headers = JSON_HEADERS if body is not None else None
        try:
            response = await self._pool.request(
                method, url, content=body, headers=headers, timeout=self._timeout_for(read_timeout)
            )
        except httpx.TransportError as exc:
            raise map_httpx_error(exc, what=what, timeout=read_timeout or self._timeout) from exc
        return Reply(response.status_code, response.headers, response.content)

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
        try:
            with file.open("rb") as stream:
                response = await self._pool.post(
                    url,
                    data=dict(fields),
                    files={"file": (file.name, stream, content_type)},
                    timeout=self._timeout_for(read_timeout),
                )
        except httpx.TransportError as exc:
            raise map_httpx_error(exc, what=what, timeout=read_timeout or self._timeout) from exc
        return Reply(response.status_code, response.headers, response.content)

    @contextlib.asynccontextmanager
    async def stream(
        self,
        method: str,
        url: str,
        body: bytes | None,
        *,
        what: str,
        accept: str = SSE,
        read_timeout: float | None = None,
    ) -> AsyncIterator[StreamReply]:
        headers = _stream_headers(body, accept)
        try:
            async with self._pool.stream(
                method, url, content=body, headers=headers, timeout=self._timeout_for(read_timeout)
            ) as response:
                yield _HttpxStream(response)
        except httpx.TransportError as exc:
            raise map_httpx_error(exc, what=what, timeout=read_timeout or self._timeout) from exc

    async def aclose(self) -> None:
        await self._pool.aclose()


class _HttpxStream:
    def __init__(self, response: httpx.Response) -> None:
        self.status = response.status_code
        self.headers: Mapping[str, str] = response.headers
        self._response = response

    async def read(self) -> bytes:
        return await self._response.aread()

    def lines(self) -> AsyncIterator[bytes]:
        return byte_lines(self._response.aiter_bytes())

    def chunks(self) -> AsyncIterator[bytes]:
        return self._response.aiter_bytes()


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


def map_httpx_error(exc: httpx.TransportError, *, what: str, timeout: float) -> AsyncGenError:
    """Return the asyncgen error for an httpx transport failure."""
    name = type(exc).__name__
    if isinstance(exc, httpx.TimeoutException):
        return RequestTimeoutError(f"{what}: no answer in time ({name}, timeout {timeout:g} s)")
    if isinstance(exc, httpx.NetworkError | httpx.RemoteProtocolError | httpx.ProxyError):
        return ConnectionFailedError(f"{what}: connection failed ({name}: {_detail(exc)})")
    return BadRequestError(f"{what}: the request could not be sent ({name}: {_detail(exc)})")


def _detail(exc: BaseException) -> str:
    return mask_secrets(str(exc))[:200] or "connection dropped"


def require_aiohttp() -> None:
    """Raise ImportError saying how to install the ``fast`` extra when aiohttp is missing."""
    try:
        import aiohttp  # noqa: F401
    except ImportError as exc:
        raise ImportError(
            "backend='aiohttp' needs the fast extra: pip install 'asyncgen[fast]'"
        ) from exc


def _ssl_for(verify: ssl.SSLContext | str | bool) -> ssl.SSLContext | bool:
    if isinstance(verify, ssl.SSLContext):
        return verify
    if isinstance(verify, str):
        return ssl.create_default_context(cafile=verify)
    return bool(verify)


class AiohttpTransport:
    """aiohttp's HTTP/1.1 connection pool, used directly.

    ``timeout`` bounds the wait for a pooled connection and each read (as httpx's does),
    ``connect_timeout`` the TCP/TLS connect; aiohttp keeps up to ``max_connections``
    connections alive (it has no separate keep-alive cap).
    """

    def __init__(self, options: Options) -> None:
        import aiohttp

        self._aiohttp = aiohttp
        self._timeout = options.timeout
        self._connect_timeout = options.connect_timeout
        connector = aiohttp.TCPConnector(
            limit=options.max_connections, limit_per_host=0, ssl=_ssl_for(options.verify)
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            headers=options.headers,
            timeout=aiohttp.ClientTimeout(
                total=None,
                connect=options.timeout,
                sock_connect=options.connect_timeout,
                sock_read=options.timeout,
            ),
            auto_decompress=True,
            raise_for_status=False,
        )

    @property
    def is_closed(self) -> bool:
        return self._session.closed

    def _timeout_for(self, timeout: float | None) -> dict[str, Any]:
        """The keyword that replaces the session's timeouts for one call (none: keep)."""
        if timeout is None:
            return {}
        return {
            "timeout": self._aiohttp.ClientTimeout(
                total=None, connect=timeout, sock_connect=self._connect_timeout, sock_read=timeout
            )
        }

    async def send(
        self,
        method: str,
        url: str,
        body: bytes | None,
        *,
        what: str,
        read_timeout: float | None = None,
    ) -> Reply:
        headers = JSON_HEADERS if body is not None else None
        try:
            async with self._session.request(
                method,
                url,
                data=body,
                headers=headers,
                allow_redirects=False,
                **self._timeout_for(read_timeout),
            ) as response:
                content = await response.read()
                return Reply(response.status, response.headers, content)
        except (TimeoutError, self._aiohttp.ClientError, OSError) as exc:
            raise self._error(exc, what, read_timeout) from exc

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
        try:
            with file.open("rb") as stream:
                form = self._aiohttp.FormData()
                for name, value in fields.items():
                    form.add_field(name, value)
                form.add_field("file", stream, filename=file.name, content_type=content_type)
                async with self._session.post(
                    url, data=form, allow_redirects=False, **self._timeout_for(read_timeout)
                ) as response:
                    content = await response.read()
                    return Reply(response.status, response.headers, content)
        except (TimeoutError, self._aiohttp.ClientError, OSError) as exc:
            raise self._error(exc, what, read_timeout) from exc

    @contextlib.asynccontextmanager
    async def stream(
        self,
        method: str,
        url: str,
        body: bytes | None,
        *,
        what: str,
        accept: str = SSE,
        read_timeout: float | None = None,
    ) -> AsyncIterator[StreamReply]:
        headers = _stream_headers(body, accept)
        try:
            async with self._session.request(
                method,
                url,
                data=body,
                headers=headers,
                allow_redirects=False,
                **self._timeout_for(read_timeout),
            ) as response:
                yield _AiohttpStream(response)
        except (TimeoutError, self._aiohttp.ClientError, OSError) as exc:
            raise self._error(exc, what, read_timeout) from exc

    def _error(self, exc: BaseException, what: str, timeout: float | None) -> AsyncGenError:
        """asyncgen's error for an aiohttp failure (a timeout, a bad URL, a lost link)."""
        name = type(exc).__name__
        if isinstance(exc, TimeoutError):
            seconds = timeout or self._timeout
            return RequestTimeoutError(f"{what}: no answer in time ({name}, timeout {seconds:g} s)")
        if isinstance(exc, self._aiohttp.InvalidURL):
            return BadRequestError(f"{what}: the request could not be sent ({_detail(exc)})")
        return ConnectionFailedError(f"{what}: connection failed ({name}: {_detail(exc)})")

    async def aclose(self) -> None:
        await self._session.close()


class _AiohttpStream:
    def __init__(self, response: Any) -> None:
        self.status: int = response.status
        self.headers: Mapping[str, str] = response.headers
        self._response = response

    async def read(self) -> bytes:
        content: bytes = await self._response.read()
        return content

    async def lines(self) -> AsyncIterator[bytes]:
        async for line in self._response.content:
            yield line.rstrip(b"\r\n")

    async def chunks(self) -> AsyncIterator[bytes]:
        async for chunk in self._response.content.iter_any():
            yield chunk


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

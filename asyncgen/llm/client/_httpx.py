"""The default backend: httpx's connection pool (HTTP/2 when the server offers it)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import httpx

from ...core._errors import (
    AsyncGenError,
    BadRequestError,
    ConnectionFailedError,
    RequestTimeoutError,
)
from ._transport import (
    JSON_HEADERS,
    SSE,
    Options,
    Reply,
    StreamReply,
    byte_lines,
    error_detail,
    stream_headers,
)

__all__ = ["HttpxTransport", "map_httpx_error"]


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
        headers = stream_headers(body, accept)
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


def map_httpx_error(exc: httpx.TransportError, *, what: str, timeout: float) -> AsyncGenError:
    """Return the asyncgen error for an httpx transport failure."""
    name = type(exc).__name__
    if isinstance(exc, httpx.TimeoutException):
        return RequestTimeoutError(f"{what}: no answer in time ({name}, timeout {timeout:g} s)")
    if isinstance(exc, httpx.NetworkError | httpx.RemoteProtocolError | httpx.ProxyError):
        return ConnectionFailedError(f"{what}: connection failed ({name}: {error_detail(exc)})")
    return BadRequestError(f"{what}: the request could not be sent ({name}: {error_detail(exc)})")

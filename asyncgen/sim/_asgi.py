"""The simulator's ASGI vocabulary: the callables' types and how an answer is sent."""

from __future__ import annotations

import json
import math
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

__all__ = [
    "Message",
    "Receive",
    "Reset",
    "Scope",
    "Send",
    "event",
    "json_reply",
    "raw_reply",
    "read_body",
    "retry_headers",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class Reset(Exception):
    """Raised to make the server drop the connection mid-answer."""


def retry_headers(kind: str, wait: float) -> dict[str, str]:
    """A 429's wait as ``retry-after``, ``retry-after-ms`` or ``both`` headers."""
    headers = {
        "retry-after": str(math.ceil(wait)),
        "retry-after-ms": str(math.ceil(wait * 1000)),
    }
    if kind == "both":
        return headers
    return {name: value for name, value in headers.items() if name == kind}


async def read_body(receive: Receive) -> bytes:
    """The request's whole body."""
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def event(send: Send, payload: dict[str, Any]) -> None:
    """Send one server-sent event of a stream."""
    body = b"data: " + json.dumps(payload).encode() + b"\n\n"
    await send({"type": "http.response.body", "body": body, "more_body": True})


async def json_reply(
    send: Send, status: int, payload: Any, headers: dict[str, str] | None = None
) -> None:
    """Send ``payload`` as a JSON answer."""
    await raw_reply(send, status, json.dumps(payload).encode(), headers)


async def raw_reply(
    send: Send, status: int, body: bytes, headers: dict[str, str] | None = None
) -> None:
    """Send a whole answer (JSON unless ``headers`` say otherwise)."""
    pairs = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    pairs += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": pairs})
    await send({"type": "http.response.body", "body": body})

"""A small local stand-in for a messenger's bot API (Telegram-like), over real HTTP.

Bot side (what a bot calls)::

    GET  /bot/getUpdates?offset=N&timeout=S   new user messages (long poll, up to S s)
    POST /bot/sendMessage      {"chat_id", "text"}                -> {"message_id", ...}
    POST /bot/editMessageText  {"chat_id", "message_id", "text"}  -> the edited message

Test side (what a user, or a test, does)::

    POST /test/send   {"chat_id", "user_id", "text"}  a user writes; -> {"update_id", "at"}
    GET  /test/log    every message the bot sent or edited, with its time ("at", epoch s)

Run one with ``MessengerServer()`` (a thread serving 127.0.0.1 on a free port); a bot
talks to it (or to a real bot API with these routes) through :class:`Messenger`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import httpx
import uvicorn

Scope = dict[str, Any]


@dataclass
class _State:
    updates: list[dict[str, Any]] = field(default_factory=list)
    outbox: list[dict[str, Any]] = field(default_factory=list)  # sends and edits, in order
    messages: dict[int, dict[str, Any]] = field(default_factory=dict)
    arrived: asyncio.Condition | None = None


class MessengerApp:
    """The ASGI app behind :class:`MessengerServer`."""

    def __init__(self) -> None:
        self.state = _State()

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        if self.state.arrived is None:
            self.state.arrived = asyncio.Condition()
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        path, method = scope["path"], scope["method"]
        query = urllib.parse.parse_qs(scope.get("query_string", b"").decode())
        data = json.loads(body) if body else {}
        routes: dict[tuple[str, str], Callable[[], Awaitable[Any]]] = {
            ("GET", "/bot/getUpdates"): lambda: self._updates(query),
            ("POST", "/bot/sendMessage"): lambda: self._send(data),
            ("POST", "/bot/editMessageText"): lambda: self._edit(data),
            ("POST", "/test/send"): lambda: self._user_writes(data),
            ("GET", "/test/log"): lambda: self._log(),
        }
        route = routes.get((method, path))
        if route is None:
            await _reply(send, 404, {"ok": False, "description": f"no route {method} {path}"})
            return
        try:
            result = await route()
        except (KeyError, ValueError) as exc:
            await _reply(send, 400, {"ok": False, "description": f"bad request: {exc}"})
            return
        await _reply(send, 200, {"ok": True, "result": result})

    async def _updates(self, query: dict[str, list[str]]) -> list[dict[str, Any]]:
        offset = int(query.get("offset", ["0"])[0])
        wait = min(float(query.get("timeout", ["0"])[0]), 30.0)
        assert self.state.arrived is not None
        async with self.state.arrived:
            if not any(u["update_id"] >= offset for u in self.state.updates) and wait > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.state.arrived.wait(), wait)
        return [u for u in self.state.updates if u["update_id"] >= offset]

    async def _send(self, data: dict[str, Any]) -> dict[str, Any]:
        message = {
            "message_id": len(self.state.messages) + 1,
            "chat_id": data["chat_id"],
            "text": str(data["text"]),
        }
        self.state.messages[message["message_id"]] = message
        self.state.outbox.append({"kind": "send", **message, "at": time.time()})
        return message

    async def _edit(self, data: dict[str, Any]) -> dict[str, Any]:
        message = self.state.messages[int(data["message_id"])]
        if message["chat_id"] != data["chat_id"]:
            raise ValueError("message_id belongs to another chat")
        message["text"] = str(data["text"])
        self.state.outbox.append({"kind": "edit", **message, "at": time.time()})
        return message

    async def _user_writes(self, data: dict[str, Any]) -> dict[str, Any]:
        update = {
            "update_id": len(self.state.updates) + 1,
            "at": time.time(),
            "message": {
                "chat_id": data["chat_id"],
                "user_id": data["user_id"],
                "text": str(data["text"]),
            },
        }
        assert self.state.arrived is not None
        async with self.state.arrived:
            self.state.updates.append(update)
            self.state.arrived.notify_all()
        return {"update_id": update["update_id"], "at": update["at"]}

    async def _log(self) -> list[dict[str, Any]]:
        return list(self.state.outbox)


async def _reply(send: Any, status: int, payload: dict[str, Any]) -> None:
    body = json.dumps(payload).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class MessengerServer:
    """The stand-in messenger served on 127.0.0.1 (a free port) from a thread."""

    def __init__(self) -> None:
        self.app = MessengerApp()
        # IPPROTO_TCP: asyncio then sets TCP_NODELAY (no 40 ms delayed-ACK stalls).
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(256)
        self.port = self._sock.getsockname()[1]
        config = uvicorn.Config(self.app, log_level="critical", lifespan="off", access_log=False)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, name="messenger", daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> MessengerServer:
        self._thread.start()
        deadline = time.monotonic() + 15
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the messenger stand-in did not start")
            time.sleep(0.01)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._server.should_exit = True
        self._thread.join(10)
        self._sock.close()

    def user_writes(self, chat_id: int, user_id: str, text: str) -> dict[str, Any]:
        """A user sends the bot a message (a test's helper)."""
        reply = httpx.post(
            f"{self.url}/test/send", json={"chat_id": chat_id, "user_id": user_id, "text": text}
        )
        reply.raise_for_status()
        result: dict[str, Any] = reply.json()["result"]
        return result

    def outbox(self) -> list[dict[str, Any]]:
        """Every message the bot sent or edited, in order, with times."""
        reply = httpx.get(f"{self.url}/test/log")
        reply.raise_for_status()
        result: list[dict[str, Any]] = reply.json()["result"]
        return result


@dataclass(frozen=True)
class Message:
    """An incoming user message."""

    update_id: int
    chat_id: int
    user_id: str
    text: str


class Messenger:
    """A client of the messenger's bot API (Telegram-like routes)."""

    def __init__(self, url: str) -> None:
        self._http = httpx.AsyncClient(base_url=f"{url.rstrip('/')}/bot", timeout=60)

    async def _call(self, method: str, **payload: Any) -> Any:
        reply = await self._http.post(f"/{method}", json=payload)
        reply.raise_for_status()
        return reply.json()["result"]

    async def send_message(self, chat_id: int, text: str) -> int:
        return int((await self._call("sendMessage", chat_id=chat_id, text=text))["message_id"])

    async def edit_message_text(self, chat_id: int, message_id: int, text: str) -> None:
        await self._call("editMessageText", chat_id=chat_id, message_id=message_id, text=text)

    async def get_updates(self, offset: int, wait: float) -> list[Message]:
        reply = await self._http.get(
            "/getUpdates", params={"offset": offset, "timeout": wait}, timeout=wait + 10
        )
        reply.raise_for_status()
        return [
            Message(
                u["update_id"],
                u["message"]["chat_id"],
                str(u["message"]["user_id"]),
                u["message"]["text"],
            )
            for u in reply.json()["result"]
        ]

    async def aclose(self) -> None:
        await self._http.aclose()

"""Helpers shared by the benchmarks: a loopback HTTP server and the JSON report."""

from __future__ import annotations

import json
import platform
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


async def ok_app(scope: Scope, receive: Receive, send: Send) -> None:
    """The smallest useful ASGI app: 200 with a short JSON body."""
    if scope["type"] != "http":
        return
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": b'{"ok": true}'})


@contextmanager
def serve_in_process(app: str, *, path: Path | None = None) -> Iterator[str]:
    """Serve the ASGI app ``module:attr`` with uvicorn in a child process; yield its URL.

    The parent binds and listens on a free 127.0.0.1 port and hands the socket to the
    child, so there is no race for the port and connections queue until it is ready. A
    separate process keeps the server off the measured process's CPU and GIL (a server
    in a thread of the client's process adds ~40 ms per request here).
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    port = sock.getsockname()[1]
    # socket(fileno=...) reads the real family and protocol back, so asyncio sets
    # TCP_NODELAY on accepted connections (uvicorn's fd= option assumes AF_UNIX and
    # loses it, which costs a 40 ms delayed-ACK stall per response).
    code = (
        "import socket, sys, uvicorn; sys.path.insert(0, sys.argv[1]); "
        "sock = socket.socket(fileno=int(sys.argv[3])); "
        "config = uvicorn.Config(sys.argv[2], log_level='warning', lifespan='off', "
        "access_log=False); uvicorn.Server(config).run(sockets=[sock])"
    )
    where = str(path or Path(__file__).parent)
    child = subprocess.Popen(
        [sys.executable, "-c", code, where, app, str(sock.fileno())], pass_fds=[sock.fileno()]
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        child.terminate()
        child.wait(10)
        sock.close()


def write_report(name: str, figures: dict[str, Any], path: Path | None = None) -> Path:
    """Write the figures with a note of the machine; return the file's path."""
    target = path or RESULTS / f"{name}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "benchmark": name,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **figures,
    }
    target.write_text(json.dumps(report, indent=2) + "\n")
    return target

"""``asyncgen dashboard QUEUE_URL``: serve the live dashboard on 127.0.0.1; and the page of
one ``asyncgen run --dashboard``, served while the run lasts."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import sys
from collections.abc import AsyncIterator
from typing import Any

from ..core._errors import StoreError
from ._args import load_settings, whole
from ._files import UsageProblem
from ._interrupts import start_work

__all__ = ["DASHBOARD_PORT", "add_dashboard_parser", "bound", "run_board"]

TOKEN_VARIABLE = "ASYNCGEN_DASHBOARD_TOKEN"


def add_dashboard_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Declare ``asyncgen dashboard``."""
    board = commands.add_parser(
        "dashboard",
        help="serve a live dashboard for a queue",
        description="Serve a web page showing the queue at URL: jobs by state and kind, "
        "running jobs by worker, throughput, a searchable job list and the dead letters. "
        f"Read-only unless a token is given (--token or ${TOKEN_VARIABLE}): signed in with "
        "it, dead jobs can be requeued or cancelled. Needs asyncgen[dashboard].",
    )
    board.add_argument(
        "url",
        nargs="?",
        help="queue URL (default: ASYNCGEN_QUEUE_URL or queue_url in the settings file)",
    )
    board.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)"
    )
    board.add_argument(
        "--port",
        type=whole("port", minimum=1, maximum=65535),
        default=8700,
        help="port (default 8700)",
    )
    board.add_argument(
        "--token",
        default=None,
        help=f"allow actions to whoever signs in with this token (prefer "
        f"${TOKEN_VARIABLE}: command lines show in ps)",
    )
    board.set_defaults(handler=dashboard_command)


def dashboard_command(args: argparse.Namespace) -> int:
    """Serve until interrupted; returns the exit code."""
    settings = load_settings(None)
    url = args.url or settings.queue_url
    token = args.token or os.environ.get(TOKEN_VARIABLE) or None
    try:
        from ..dashboard import create_app
        from ..queue import open_queue

        queue = open_queue(url, create=False)  # a typo must not make a new queue file
        app = create_app(queue, token=token)
    except ImportError as exc:
        raise UsageProblem(str(exc)) from None
    except (ValueError, StoreError) as exc:
        raise UsageProblem(f"queue URL: {exc}") from None
    import uvicorn

    sock = bound(args.host, args.port, flag="--port")
    mode = "actions need the token" if token else "read-only (no --token)"
    sys.stdout.write(
        f"asyncgen dashboard for {queue.url} on http://{args.host}:{args.port}/ ({mode})\n"
    )
    sys.stdout.flush()
    config = uvicorn.Config(app, log_level="warning", access_log=False)
    try:
        start_work()
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()
    return 0


def bound(host: str, port: int, *, flag: str) -> socket.socket:
    """A listening socket on ``host:port``, or a UsageProblem naming ``flag``."""
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
    except OSError as exc:
        raise UsageProblem(f"{flag} {port}: cannot serve on {host} ({exc.strerror})") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise UsageProblem(
            f"{flag} {port}: cannot serve on {host}:{port} ({exc.strerror or exc}): another "
            f"program may be using it; give another {flag}"
        ) from None
    return sock


DASHBOARD_PORT = 8701


@contextlib.asynccontextmanager
async def run_board(port: int | None, total: int, title: str) -> AsyncIterator[Any]:
    """With a port: serve the batch page on 127.0.0.1 while the run lasts; yield the
    board to feed (None without a port)."""
    if port is None:
        yield None
        return
    try:
        from ..dashboard import RunBoard, create_run_app

        board = RunBoard(total, title=title)
        app = create_run_app(board)
    except ImportError as exc:
        raise UsageProblem(f"--dashboard: {exc}") from None
    import uvicorn

    # Bound here, so a port in use is a usage error, not uvicorn exiting the process.
    sock = bound("127.0.0.1", port, flag="--dashboard")
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    sys.stderr.write(f"asyncgen: dashboard of this run: http://127.0.0.1:{port}/\n")
    try:
        yield board
    finally:
        board.finished = True
        server.should_exit = True
        await serving
        sock.close()

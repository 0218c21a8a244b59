"""Serving the simulator with uvicorn on 127.0.0.1, in a thread or a child process."""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from types import TracebackType
from typing import Any

import httpx
import uvicorn

from ._app import SimApp
from ._config import SimConfig
from ._http2 import TlsFiles, make_tls_files, serve_http2

__all__ = ["SimServer", "listen", "serve_socket"]

_START_TIMEOUT = 15.0


def listen(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """Return a listening TCP socket (port 0: a free one).

    Created with IPPROTO_TCP so asyncio sets TCP_NODELAY on accepted connections;
    without it every answer stalls ~40 ms on a delayed ACK.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    return sock


def _uvicorn(app: SimApp, log_level: str) -> uvicorn.Server:
    config = uvicorn.Config(
        app,
        log_level=log_level,
        lifespan="off",
        access_log=False,
        timeout_graceful_shutdown=1,
        timeout_keep_alive=30,
    )
    return uvicorn.Server(config)


def serve_socket(sock: socket.socket, config: SimConfig, *, log_level: str = "warning") -> None:
    """Serve the simulator on ``sock`` until interrupted (blocks)."""
    _uvicorn(SimApp(config), log_level).run(sockets=[sock])


class SimServer:
    """A running simulator: its URL and its counters.

    Start it with :func:`asyncgen.testing.sim_server` or :meth:`start`.
    """

    def __init__(
        self, config: SimConfig | None = None, *, process: bool = False, http2: bool = False
    ) -> None:
        self.config = config or SimConfig()
        self.process = process
        self.http2 = http2
        self._tls: TlsFiles | None = None
        self._tls_dir: tempfile.TemporaryDirectory[str] | None = None
        self._stop = threading.Event()
        self._sock: socket.socket | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._child: subprocess.Popen[bytes] | None = None
        self.port = 0

    @property
    def url(self) -> str:
        """The server root, e.g. ``http://127.0.0.1:43123``."""
        return f"{'https' if self.http2 else 'http'}://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible API root (``.../v1``), for ChatClient."""
        return f"{self.url}/v1"

    @property
    def verify(self) -> ssl.SSLContext | bool:
        """What a client passes as ``verify``: the throwaway CA's context under HTTP/2."""
        return self._tls.client_context() if self._tls is not None else True

    def start(self) -> SimServer:
        """Start serving; return when the server answers."""
        if self.http2:
            self._tls, self._tls_dir = make_tls_files()
        self._sock = listen()
        self.port = self._sock.getsockname()[1]
        if self.process:
            self._start_process(self._sock)
        else:
            self._start_thread(self._sock)
        self._wait_ready()
        return self

    def _start_thread(self, sock: socket.socket) -> None:
        if self._tls is not None:
            self._thread = threading.Thread(
                target=serve_http2,
                args=(sock, self.config),
                kwargs={
                    "certfile": str(self._tls.certfile),
                    "keyfile": str(self._tls.keyfile),
                    "stop": self._stop,
                },
                name="asyncgen-sim-h2",
                daemon=True,
            )
            self._thread.start()
            return
        self._server = _uvicorn(SimApp(self.config), "critical")
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="asyncgen-sim", daemon=True
        )
        self._thread.start()

    def _start_process(self, sock: socket.socket) -> None:
        fd = sock.fileno()
        spec: dict[str, Any] = {
            "fd": fd,
            "http2": self._tls is not None,
            "config": self.config.model_dump(mode="json"),
        }
        if self._tls is not None:
            spec |= {"certfile": str(self._tls.certfile), "keyfile": str(self._tls.keyfile)}
        command = [sys.executable, "-m", "asyncgen.sim._child"]
        self._child = subprocess.Popen(command, stdin=subprocess.PIPE, pass_fds=[fd])
        assert self._child.stdin is not None
        # The pipe stays open: the child ends when it closes, so it dies with this process
        # even when this one is killed with SIGKILL (the kernel closes the pipe then).
        self._child.stdin.write(json.dumps(spec).encode() + b"\n")
        self._child.stdin.flush()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline:
            try:
                httpx.get(
                    f"{self.url}/sim/stats", timeout=1.0, verify=self.verify
                ).raise_for_status()
                return
            except httpx.HTTPError:
                time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"the simulator did not answer on {self.url} within {_START_TIMEOUT} s")

    def stats(self) -> dict[str, Any]:
        """Chat requests received so far: ``total``, ``requests`` by model, ``statuses``."""
        return dict(httpx.get(f"{self.url}/sim/stats", timeout=5.0, verify=self.verify).json())

    def requests(self, model: str | None = None) -> int:
        """How many chat requests arrived (for ``model``, or in all)."""
        stats = self.stats()
        return int(stats["total"] if model is None else stats["requests"].get(model, 0))

    def reset(self) -> None:
        """Zero the counters and rate-limit windows."""
        httpx.post(f"{self.url}/sim/reset", timeout=5.0, verify=self.verify).raise_for_status()

    def configure(self, config: SimConfig) -> None:
        """Replace the configuration (and zero the counters)."""
        self.config = config
        response = httpx.post(
            f"{self.url}/sim/config",
            content=config.model_dump_json(),
            timeout=5.0,
            verify=self.verify,
        )
        response.raise_for_status()

    def stop(self) -> None:
        """Stop serving and release the port."""
        self._stop.set()
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)
        if self._child is not None:
            if self._child.stdin is not None:
                self._child.stdin.close()
            self._child.terminate()
            try:
                self._child.wait(10)
            except subprocess.TimeoutExpired:
                self._child.kill()
                self._child.wait()
        if self._sock is not None:
            self._sock.close()
        if self._tls_dir is not None:
            self._tls_dir.cleanup()
        self._server = self._thread = self._child = self._sock = None
        self._tls = self._tls_dir = None

    def __enter__(self) -> SimServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

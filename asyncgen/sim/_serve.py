"""Serving the simulator from a command or a child process: :func:`serve`."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable

from ._config import SimConfig
from ._http2 import make_tls_files, serve_http2
from ._server import listen, serve_socket

__all__ = ["serve"]


def serve(
    config: SimConfig | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    sock: socket.socket | None = None,
    http2: bool = False,
    certfile: str | None = None,
    keyfile: str | None = None,
    log_level: str = "warning",
    announce: Callable[[str], object] | None = None,
) -> None:
    """Serve the simulator until interrupted (blocks).

    Args:
        config: Profiles, limits and faults; None: instant, faultless answers.
        host: The address to bind (loopback by default).
        port: The port (0: any free one).
        sock: A listening socket to serve on instead of binding ``host``/``port``.
        http2: TLS + HTTP/2 with hypercorn (the ``sim-http2`` extra); without
            ``certfile``/``keyfile`` a throwaway CA and certificate are made.
        certfile: The server certificate, with ``http2``.
        keyfile: The server key, with ``http2``.
        log_level: uvicorn's log level.
        announce: Called with each line worth showing (the URL, the CA file).

    Raises:
        OSError: The address cannot be bound.
        ImportError: ``http2`` without the ``sim-http2`` extra.
    """
    config = config or SimConfig()
    say = announce or (lambda text: None)
    sock = sock if sock is not None else listen(host, port)
    where = sock.getsockname()
    if not http2:
        say(f"http://{where[0]}:{where[1]}/v1")
        serve_socket(sock, config, log_level=log_level)
        return
    if not (certfile and keyfile):
        files, _folder = make_tls_files()
        certfile, keyfile = str(files.certfile), str(files.keyfile)
        say(f"CA certificate for clients: {files.ca}")
    say(f"https://{where[0]}:{where[1]}/v1 (HTTP/2)")
    with contextlib.suppress(KeyboardInterrupt):
        serve_http2(sock, config, certfile=certfile, keyfile=keyfile)

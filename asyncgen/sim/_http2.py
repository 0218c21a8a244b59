"""Serving the simulator over TLS with HTTP/2 (hypercorn), for HTTP/2 tests and benchmarks.

uvicorn speaks HTTP/1.1 only; hypercorn negotiates h2 by ALPN. Certificates come from
trustme: a throwaway CA whose certificate clients are given to trust. Needs the
``sim-http2`` extra (hypercorn, trustme).
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import tempfile
import threading
from pathlib import Path
from typing import Any

from ._app import SimApp
from ._config import SimConfig

__all__ = ["TlsFiles", "make_tls_files", "serve_http2"]


class TlsFiles:
    """Paths of a throwaway CA certificate and a server key + certificate for 127.0.0.1."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.ca = folder / "ca.pem"
        self.certfile = folder / "server.pem"
        self.keyfile = folder / "server.key"

    def client_context(self) -> ssl.SSLContext:
        """An SSL context that trusts the throwaway CA."""
        return ssl.create_default_context(cafile=str(self.ca))


def make_tls_files() -> tuple[TlsFiles, tempfile.TemporaryDirectory[str]]:
    """Issue a CA and a 127.0.0.1 certificate into a temporary folder.

    Raises:
        ImportError: trustme is not installed (``pip install 'asyncgen[sim-http2]'``).
    """
    try:
        import trustme
    except ImportError as exc:
        raise ImportError("the HTTP/2 simulator needs: pip install 'asyncgen[sim-http2]'") from exc
    folder = tempfile.TemporaryDirectory(prefix="asyncgen-sim-tls-")
    files = TlsFiles(Path(folder.name))
    ca = trustme.CA()
    issued = ca.issue_cert("127.0.0.1", "localhost")
    ca.cert_pem.write_to_path(str(files.ca))
    issued.private_key_pem.write_to_path(str(files.keyfile))
    issued.cert_chain_pems[0].write_to_path(str(files.certfile))
    for extra in issued.cert_chain_pems[1:]:
        extra.write_to_path(str(files.certfile), append=True)
    return files, folder


def serve_http2(
    sock: socket.socket,
    config: SimConfig,
    *,
    certfile: str,
    keyfile: str,
    stop: threading.Event | None = None,
) -> None:
    """Serve the simulator on ``sock`` with TLS and HTTP/2 until ``stop`` is set (blocks).

    Raises:
        ImportError: hypercorn is not installed (``pip install 'asyncgen[sim-http2]'``).
    """
    try:
        import hypercorn.asyncio
        import hypercorn.config
    except ImportError as exc:
        raise ImportError("the HTTP/2 simulator needs: pip install 'asyncgen[sim-http2]'") from exc
    settings = hypercorn.config.Config()
    # hypercorn adopts the descriptor; give it its own so both sides can close theirs.
    settings.bind = [f"fd://{os.dup(sock.fileno())}"]
    settings.certfile, settings.keyfile = certfile, keyfile
    settings.accesslog = None
    settings.errorlog = None
    settings.keep_alive_timeout = 30
    # hypercorn closes a connection after 1,000 requests by default, cutting the h2
    # streams still in flight on it; real providers do not, so neither do we.
    settings.keep_alive_max_requests = 2**31
    settings.graceful_timeout = 1

    async def stopped() -> None:
        await asyncio.to_thread(stop.wait)  # type: ignore[union-attr]

    app: Any = SimApp(config)  # a plain ASGI callable; hypercorn's types want its own
    trigger = stopped if stop is not None else None  # None: hypercorn handles signals
    asyncio.run(hypercorn.asyncio.serve(app, settings, shutdown_trigger=trigger))

"""A real redis-server on a free loopback port, for tests (``asyncgen.testing``)."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

__all__ = ["RedisServer", "free_port"]

_START_TIMEOUT = 10.0


class RedisServer:
    """Run ``redis-server`` on 127.0.0.1 in a private directory; stop it on exit.

    Args:
        password: Require this password (``requirepass``).
        appendonly: Persist every write to an append-only file (fsync every second);
            ``restart()`` then brings the data back.
        directory: Where the server keeps its files (default: a new temporary one).
        tls: ``(cert_file, key_file, ca_file)`` to serve TLS only (``rediss://``).
        options: More redis-server flags, e.g. ``["--maxmemory", "2mb"]``.

    Raises:
        RuntimeError: redis-server is not installed (says how to install it), or did
            not answer within 10 s.
    """

    def __init__(
        self,
        *,
        password: str | None = None,
        appendonly: bool = False,
        directory: str | Path | None = None,
        tls: tuple[str, str, str] | None = None,
        options: Sequence[str] = (),
    ) -> None:
        self.binary = shutil.which("redis-server")
        if self.binary is None:
            raise RuntimeError(
                "redis-server is not installed: `apt-get install -y redis-server` "
                "(or `brew install redis`)"
            )
        self._tmp = None if directory else tempfile.TemporaryDirectory(prefix="asyncgen-redis-")
        self.directory = Path(directory or self._tmp.name)  # type: ignore[union-attr]
        self.password = password
        self.appendonly = appendonly
        self.tls = tls
        self.options = list(options)
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``redis://[:password@]127.0.0.1:PORT/0`` (``rediss://`` with TLS)."""
        auth = f":{self.password}@" if self.password else ""
        scheme = "rediss" if self.tls else "redis"
        return f"{scheme}://{auth}127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        """Start on a free port (the same one again after :meth:`stop`)."""
        self.port = self.port or free_port()
        args = [
            self.binary or "redis-server",
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.directory),
            "--save",
            "",
            "--appendonly",
            "yes" if self.appendonly else "no",
            "--appendfsync",
            "everysec",
            "--daemonize",
            "no",
            "--loglevel",
            "warning",
        ]
        if self.tls:
            cert, key, ca = self.tls
            args += [
                "--port",
                "0",
                "--tls-port",
                str(self.port),
                "--tls-cert-file",
                cert,
                "--tls-key-file",
                key,
                "--tls-ca-cert-file",
                ca,
                "--tls-auth-clients",
                "no",
            ]
        else:
            args += ["--port", str(self.port)]
        if self.password:
            args += ["--requirepass", self.password]
        args += self.options
        self.process = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=self.directory
        )
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.process.returncode}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5),
            ):
                return
            time.sleep(0.02)
        raise RuntimeError(f"redis-server did not listen on port {self.port} within 10 s")

    def stop(self, *, kill: bool = False) -> None:
        """Stop the server: SIGTERM (a clean shutdown) or, with ``kill``, SIGKILL."""
        if self.process is None:
            return
        if kill:
            self.process.kill()
        else:
            self.process.terminate()
        self.process.wait(10)
        self.process = None

    def restart(self, *, kill: bool = False) -> None:
        """Stop and start again on the same port and directory."""
        self.stop(kill=kill)
        self.start()

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop(kill=True)
        if self._tmp is not None:
            self._tmp.cleanup()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])

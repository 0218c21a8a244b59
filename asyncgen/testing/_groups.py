"""What the Sentinel group and the Cluster group share: servers in folders of one
temporary directory, started together and ended with SIGKILL, replicas waited for, and
redis-py clients of single servers (``asyncgen.testing``)."""

from __future__ import annotations

import contextlib
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from ._redis_server import RedisServer

if TYPE_CHECKING:  # redis-py is imported where used: only group users pay for it
    from redis import Redis

__all__ = ["START_TIMEOUT", "ServerGroup", "connect", "replication", "unanswered"]

START_TIMEOUT = 20.0  # seconds a group's servers have to start, meet and sync


class ServerGroup:
    """Redis servers in folders of one temporary directory: a context manager that
    starts them (:meth:`start`, the subclass's) and ends them with SIGKILL."""

    servers: list[RedisServer]

    def __init__(self, prefix: str) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix=prefix)
        self.directory = Path(self._tmp.name)

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        """End every server (SIGKILL)."""
        for server in self.servers:
            server.stop(kill=True)

    def __enter__(self) -> Self:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()
        self._tmp.cleanup()

    def folder(self, name: str) -> Path:
        """A new folder of the group's directory (a server's own)."""
        made = self.directory / name
        made.mkdir()
        return made

    @staticmethod
    def kill(server: RedisServer) -> RedisServer:
        """End ``server`` with SIGKILL (no shutdown, no last write); returns it."""
        server.stop(kill=True)
        return server

    @staticmethod
    def wait_synced(replicas: list[RedisServer]) -> None:
        """Wait until every replica's link to its master is up."""
        deadline = time.monotonic() + START_TIMEOUT
        for replica in replicas:
            with connect(replica.port) as found:
                while replication(found).get("master_link_status") != "up":
                    if time.monotonic() > deadline:
                        raise RuntimeError(
                            f"replica on port {replica.port} did not sync in {START_TIMEOUT:g} s"
                        )
                    time.sleep(0.02)


def connect(port: int) -> Redis:
    """A client of the server or sentinel on 127.0.0.1:``port`` (redis-py, which any use
    of a Sentinel or Cluster URL needs anyway)."""
    from redis import Redis

    return Redis(port=port, socket_timeout=2.0, decode_responses=True)


def unanswered() -> tuple[type[Exception], ...]:
    """What a server or sentinel that is not (yet) answering raises."""
    from redis.exceptions import RedisError

    return (RedisError, OSError)


def replication(found: Redis) -> dict[str, Any]:
    """The server's INFO replication, or nothing while it does not answer."""
    with contextlib.suppress(*unanswered()):
        return dict(found.info("replication"))
    return {}

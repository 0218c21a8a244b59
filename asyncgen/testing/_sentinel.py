"""A Redis master, its replicas and three sentinels on loopback ports, for failover tests
(``asyncgen.testing``)."""

from __future__ import annotations

import contextlib
import subprocess
import time

from ._groups import START_TIMEOUT, ServerGroup, connect, unanswered
from ._redis_server import RedisServer, free_port

__all__ = ["SentinelGroup"]


class SentinelGroup(ServerGroup):
    """``redis-server`` as a master and replicas, watched by ``redis-server --sentinel``.

    Use it as a context manager; :attr:`url` is the ``redis+sentinel://`` URL of the
    group. :meth:`kill_master` ends the master with SIGKILL, and :meth:`wait_for_failover`
    waits until the sentinels have promoted a replica.

    Args:
        replicas: Replicas of the master.
        sentinels: Sentinels (a quorum of a majority of them decides a failover).
        service: The name the sentinels know the group by.
        down_after: Milliseconds without an answer before a sentinel takes the master
            as down (Sentinel's ``down-after-milliseconds``).
        failover_timeout: Sentinel's ``failover-timeout``, in milliseconds.
        appendonly: Persist every write to an append-only file (fsync every second).

    Raises:
        RuntimeError: redis-server is not installed, or a server or sentinel did not
            answer within 20 s.
    """

    def __init__(
        self,
        *,
        replicas: int = 1,
        sentinels: int = 3,
        service: str = "mymaster",
        down_after: int = 1000,
        failover_timeout: int = 3000,
        appendonly: bool = True,
    ) -> None:
        self.service = service
        self.down_after = down_after
        self.failover_timeout = failover_timeout
        super().__init__("asyncgen-sentinel-")
        self.servers = [
            RedisServer(directory=self.folder(f"server-{i}"), appendonly=appendonly)
            for i in range(1 + replicas)
        ]
        self.sentinel_ports = [0] * sentinels  # chosen once the servers hold theirs
        self._sentinels: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        """``redis+sentinel://127.0.0.1:P1,127.0.0.1:P2,.../SERVICE/0``."""
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)
        return f"redis+sentinel://{hosts}/{self.service}/0"

    def start(self) -> SentinelGroup:
        """Start the master, its replicas (synced), then the sentinels."""
        master, *replicas = self.servers
        master.start()
        for replica in replicas:
            replica.options += ["--replicaof", "127.0.0.1", str(master.port)]
            replica.start()
        self.wait_synced(replicas)
        for index in range(len(self.sentinel_ports)):
            self._sentinels.append(self._launch(index, master.port))
        for index in range(len(self.sentinel_ports)):
            self._wait_known(index, master.port, len(replicas))
        return self

    def _launch(self, index: int, master_port: int) -> subprocess.Popen[bytes]:
        """Start sentinel ``index`` on a free port (chosen now: a port picked before the
        servers started could be one of theirs)."""
        port = self.sentinel_ports[index] = free_port()
        quorum = len(self.sentinel_ports) // 2 + 1
        config = self.directory / f"sentinel-{index}.conf"
        config.write_text(
            f"port {port}\nbind 127.0.0.1\ndir {self.directory}\n"
            f"sentinel monitor {self.service} 127.0.0.1 {master_port} {quorum}\n"
            f"sentinel down-after-milliseconds {self.service} {self.down_after}\n"
            f"sentinel failover-timeout {self.service} {self.failover_timeout}\n"
            f"sentinel parallel-syncs {self.service} 1\n"
        )
        binary = self.servers[0].binary or "redis-server"
        return subprocess.Popen(
            [binary, str(config), "--sentinel"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=self.directory,
        )

    def master_port(self) -> int:
        """The master's port, as the first sentinel that answers says it."""
        for port in self.sentinel_ports:
            with contextlib.suppress(*unanswered()), connect(port) as sentinel:
                host_port = sentinel.sentinel_get_master_addr_by_name(self.service)
                if host_port:
                    return int(host_port[1])
        raise RuntimeError("no sentinel answered")

    def master(self) -> RedisServer:
        """The server that is the master now."""
        port = self.master_port()
        return next(server for server in self.servers if server.port == port)

    def kill_master(self) -> RedisServer:
        """End the current master with SIGKILL (no shutdown, no last write); returns it."""
        return self.kill(self.master())

    def wait_for_failover(self, old_port: int, *, within: float = 30.0) -> int:
        """Wait until the sentinels name a master other than ``old_port``; its port."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            with contextlib.suppress(RuntimeError):
                port = self.master_port()
                if port != old_port:
                    return port
            time.sleep(0.05)
        raise RuntimeError(f"no failover from port {old_port} within {within:g} s")

    def stop(self) -> None:
        """End the sentinels and every server (SIGKILL)."""
        for process in self._sentinels:
            process.kill()
            process.wait(10)
        self._sentinels.clear()
        super().stop()

    def _wait_known(self, index: int, master_port: int, replicas: int) -> None:
        """Wait until sentinel ``index`` answers and knows the master's replicas; one that
        exited (its port was taken meanwhile) starts again on another port, twice at most."""
        deadline = time.monotonic() + START_TIMEOUT
        relaunched = 0
        while time.monotonic() < deadline:
            if self._sentinels[index].poll() is not None and relaunched < 2:
                self._sentinels[index] = self._launch(index, master_port)
                relaunched += 1
            with contextlib.suppress(*unanswered()), connect(self.sentinel_ports[index]) as found:
                if len(found.sentinel_slaves(self.service)) >= replicas:
                    return
            time.sleep(0.05)
        raise RuntimeError(
            f"sentinel on port {self.sentinel_ports[index]} did not know the group within "
            f"{START_TIMEOUT:g} s"
        )

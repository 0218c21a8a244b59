"""A Redis Cluster on loopback ports, for tests (``asyncgen.testing``): masters that share
the 16,384 slots, each with its replicas, formed in about a second."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from ._groups import START_TIMEOUT, ServerGroup, connect, unanswered
from ._redis_server import RedisServer, free_port

if TYPE_CHECKING:  # redis-py is imported where used: only Cluster users pay for it
    from redis import Redis

__all__ = ["ClusterGroup"]

SLOTS = 16384
BUS_OFFSET = 10000  # a node's cluster bus listens on its port + 10000


class ClusterGroup(ServerGroup):
    """``redis-server --cluster-enabled yes`` as masters with replicas, the slots shared
    out evenly, the nodes introduced to one another (``CLUSTER MEET``) and the replicas
    attached (``CLUSTER REPLICATE``): what ``redis-cli --cluster create`` does, without its
    seconds of waiting.

    Use it as a context manager; :attr:`url` is the ``redis+cluster://`` URL of every
    node. :meth:`kill_master_of` ends the master that serves a key with SIGKILL, and
    :meth:`wait_for_failover` waits until a replica serves its slots.

    Args:
        masters: Masters (each serves an even share of the slots); 3 at least, as Redis
            asks of a cluster that fails over.
        replicas: Replicas of each master.
        node_timeout: Milliseconds without an answer before the others take a node as
            failing (``cluster-node-timeout``); a replica takes over soon after.
        appendonly: Persist every write to an append-only file (fsync every second).

    Raises:
        RuntimeError: redis-server is not installed, or the cluster did not form within
            20 s.
    """

    def __init__(
        self,
        *,
        masters: int = 3,
        replicas: int = 0,
        node_timeout: int = 1000,
        appendonly: bool = False,
    ) -> None:
        if masters < 1:
            raise ValueError(f"a cluster has at least one master, got masters={masters}")
        self.node_timeout = node_timeout
        super().__init__("asyncgen-cluster-")
        options = [
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-node-timeout",
            str(node_timeout),
            "--repl-diskless-sync-delay",  # a replica syncs at once, not after 5 s
            "0",
        ]
        self.servers = [
            RedisServer(directory=self.folder(f"node-{i}"), appendonly=appendonly, options=options)
            for i in range(masters * (1 + replicas))
        ]
        for server in self.servers:  # a node listens on its port + 10000 too (the bus)
            server.port = _cluster_port()
        self.masters = masters
        self.replicas = replicas

    @property
    def url(self) -> str:
        """``redis+cluster://127.0.0.1:P1,127.0.0.1:P2,...``: every node of the cluster."""
        hosts = ",".join(f"127.0.0.1:{server.port}" for server in self.servers)
        return f"redis+cluster://{hosts}"

    def start(self) -> ClusterGroup:
        """Start every node, share the slots out, attach the replicas, wait until every
        node says the cluster is ok."""
        for server in self.servers:
            server.start()
        primaries = self.servers[: self.masters]
        share = -(-SLOTS // self.masters)
        for i, server in enumerate(primaries):
            with connect(server.port) as client:
                slots = range(i * share, min(SLOTS, (i + 1) * share))
                client.execute_command("CLUSTER ADDSLOTS", *slots)
        with connect(self.servers[0].port) as first:
            for server in self.servers[1:]:
                first.execute_command("CLUSTER MEET", "127.0.0.1", server.port)
        self._wait(lambda client: _known(client) == len(self.servers), "meet")
        for i, server in enumerate(self.servers[self.masters :]):
            master = primaries[i % self.masters]
            with connect(master.port) as client:
                master_id = client.execute_command("CLUSTER MYID")
            with connect(server.port) as client:
                client.execute_command("CLUSTER REPLICATE", master_id)
        self._wait(lambda client: _state(client) == "ok", "serve every slot")
        self.wait_synced(self.servers[self.masters :])
        return self

    def master_of(self, key: str) -> RedisServer:
        """The server that serves ``key``'s slot now."""
        from redis.crc import key_slot

        slot = key_slot(key.encode())
        for server in self.servers:
            if server.process is None:
                continue
            with contextlib.suppress(*unanswered()), connect(server.port) as client:
                for start, end, (_host, port, *_rest), *_replicas in client.execute_command(
                    "CLUSTER SLOTS"
                ):
                    if start <= slot <= end:
                        return next(s for s in self.servers if s.port == int(port))
        raise RuntimeError(f"no node answered for the slot of {key!r}")

    def kill_master_of(self, key: str) -> RedisServer:
        """End the master that serves ``key``'s slot with SIGKILL; returns it."""
        return self.kill(self.master_of(key))

    def wait_for_failover(self, key: str, old_port: int, *, within: float = 30.0) -> int:
        """Wait until a node other than ``old_port`` serves ``key``'s slot and the cluster
        is ok again; that node's port."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            with contextlib.suppress(RuntimeError, StopIteration):
                port = self.master_of(key).port
                if port != old_port and self._all_ok():
                    return port
            time.sleep(0.05)
        raise RuntimeError(f"no failover from port {old_port} within {within:g} s")

    def _all_ok(self) -> bool:
        for server in self.servers:
            if server.process is not None:
                with connect(server.port) as client:
                    if _state(client) != "ok":
                        return False
        return True

    def _wait(self, ready: Callable[[Redis], bool], what: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        for server in self.servers:
            with connect(server.port) as client:
                while not ready(client):
                    if time.monotonic() > deadline:
                        raise RuntimeError(
                            f"the cluster's nodes did not {what} within {START_TIMEOUT:g} s"
                        )
                    time.sleep(0.02)


def _cluster_port() -> int:
    """A free port whose cluster-bus twin (port + 10000) is free too."""
    for _ in range(100):
        port = free_port()
        if port + BUS_OFFSET < 65536:
            with contextlib.suppress(OSError), socket.socket() as bus:
                bus.bind(("127.0.0.1", port + BUS_OFFSET))
                return port
    raise RuntimeError("found no free port pair for a cluster node")


def _state(client: Redis) -> str:
    """``ok`` once the node sees every slot served (redis-py parses CLUSTER INFO)."""
    with contextlib.suppress(*unanswered()):
        info: dict[str, str] = client.execute_command("CLUSTER INFO")  # type: ignore[no-untyped-call]
        return str(info.get("cluster_state", ""))
    return ""


def _known(client: Redis) -> int:
    """The nodes this one knows past the handshake (redis-py parses CLUSTER NODES)."""
    with contextlib.suppress(*unanswered()):
        nodes: dict[str, dict[str, str]] = client.execute_command("CLUSTER NODES")  # type: ignore[no-untyped-call]
        return sum(1 for node in nodes.values() if "handshake" not in node["flags"])
    return 0

"""A Redis store's connection: one pool per event loop, the server checked, the Lua
scripts run by their hash, redis-py's errors said as asyncgen's."""

from __future__ import annotations

import asyncio
import dataclasses
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from ..core._bridge import in_bridge_thread, on_shutdown
from ..core._errors import (
    AuthenticationError,
    ConnectionFailedError,
    ReplicationError,
    ServerError,
    UnsupportedServerError,
)
from ..core._redis import RedisTarget, close_redis, open_redis, unreachable_errors
from ._redis_records import has_xackdel, load_scripts, version_of

if TYPE_CHECKING:  # redis-py is imported where used: only Redis users pay for it
    from redis.asyncio import Redis

    from ..core._redis import RedisClient

__all__ = ["DEFAULT_DURABLE_TIMEOUT", "MIN_REDIS_VERSION", "SPARED", "RedisConnection"]

MIN_REDIS_VERSION = (6, 2)
DEFAULT_MAX_CONNECTIONS = 32  # per event loop; ?max_connections= in the URL sets it
POOL_TIMEOUT = 20.0  # seconds a call waits for a free connection
DEFAULT_DURABLE_TIMEOUT = 5.0  # seconds a durable write waits for its replicas
RESULT_POLL = 0.05  # seconds between checks when no connection is spared for a blocking wait
SPARED: Any = object()  # block's answer when it slept instead of blocking


@dataclass(frozen=True)
class RoundTrip:
    """One round trip: a script (by its hash) run once per argument list after the
    shared head (prefix, now, XACKDEL), then ``WAIT`` for ``replicas`` if any."""

    sha: str
    head: list[str | int]
    calls: list[list[str | int]]
    replicas: int


class RedisConnection:
    """The connections of one store to its Redis server (or to the master that Sentinel
    names, followed across a failover).

    Args:
        target: The server, or the Sentinel group whose master it follows.
        max_connections: Per event loop (default 32); more calls wait their turn.
        durable: Replicas that must have a durable write (``run_many(durable=True)``)
            before it counts as done (Redis ``WAIT``); 0: the master's word is enough.
        durable_timeout: Seconds a durable write waits for its replicas.
        prefix: The store's key prefix, the first argument of every script.
        clock: Returns now in epoch seconds, the second argument of every script.
    """

    def __init__(
        self,
        target: RedisTarget,
        *,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        durable: int = 0,
        durable_timeout: float = DEFAULT_DURABLE_TIMEOUT,
        prefix: str,
        clock: Callable[[], float],
    ) -> None:
        self.target = target
        self.durable = durable
        self.durable_timeout = durable_timeout
        self.prefix = prefix
        self.clock = clock
        self.max_connections = max_connections
        self.where = target.where  # without the password: every message names it
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, RedisClient] = (
            weakref.WeakKeyDictionary()
        )
        self._blockers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
            weakref.WeakKeyDictionary()
        )
        self._gates: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
            weakref.WeakKeyDictionary()
        )
        self._shards: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, dict[tuple[str, int], Redis]
        ] = weakref.WeakKeyDictionary()  # a cluster's masters, for durable writes
        self._sources = load_scripts()
        self._shas: dict[str, str] = {}
        self._ackdel: bool | None = None

    async def client(self) -> RedisClient:
        """This event loop's client, opened on first use (the server checked once)."""
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            # A blocking pool: a burst of calls waits for a free connection instead of
            # failing with "Too many connections" (redis-py's default pool). RESP2: the
            # scripts' replies are flat lists either way, and its parser is the cheaper.
            client = open_redis(
                self.target,
                max_connections=self.max_connections,
                pool_timeout=POOL_TIMEOUT,
                decode_responses=True,
                protocol=2,
            )
            self._clients[loop] = client
            if in_bridge_thread():  # the blocking twins' loop lives until exit: close then
                on_shutdown(lambda: close_redis(client))
        if self._ackdel is None:
            await self._check_server(client)
        return client

    async def _check_server(self, client: RedisClient) -> None:
        info = await self.guard(client.info("server"))
        version = version_of(info.get("redis_version"))
        if version < MIN_REDIS_VERSION:
            raise UnsupportedServerError(
                f"the Redis server at {self.where} is version {info.get('redis_version')}; "
                "asyncgen's queue needs Redis 6.2 or newer (exclusive stream ranges): upgrade it"
            )
        self._ackdel = has_xackdel(info)

    async def guard(self, awaitable: Any) -> Any:
        """Await a redis-py call; translate its errors into asyncgen's at the boundary.

        On a cluster the calls of this event loop are bounded here: a cluster's pools
        fail a call beyond ``max_connections`` instead of making it wait its turn.
        """
        if self.target.cluster:
            loop = asyncio.get_running_loop()
            gate = self._gates.get(loop)
            if gate is None:
                gate = self._gates[loop] = asyncio.Semaphore(self.max_connections)
            async with gate:
                return await self._translated(awaitable)
        return await self._translated(awaitable)

    async def _translated(self, awaitable: Any) -> Any:
        from redis import exceptions as redis_errors

        try:
            return await awaitable
        except (
            redis_errors.AuthenticationError,
            redis_errors.AuthenticationWrongNumberOfArgsError,
            redis_errors.NoPermissionError,
        ) as exc:
            raise self._refused() from exc
        except redis_errors.OutOfMemoryError as exc:  # maxmemory reached under noeviction
            raise ServerError(
                f"Redis at {self.where} is out of memory (maxmemory) and refuses writes: "
                "purge finished jobs (queue.purge), lower result_ttl, or give it more memory"
            ) from exc
        except unreachable_errors() as exc:  # a cluster's CLUSTERDOWN / TRYAGAIN too
            raise ConnectionFailedError(f"cannot reach Redis at {self.where}: {exc}") from exc
        except redis_errors.ResponseError as exc:
            if str(exc).startswith(("NOAUTH", "WRONGPASS")):
                raise self._refused() from exc
            raise

    def _refused(self) -> AuthenticationError:
        if self.target.password is None:
            return AuthenticationError(
                f"Redis at {self.where} needs a password: put it in the queue URL "
                "(redis://:PASSWORD@host:port/0, or redis://USER:PASSWORD@... with ACLs)"
            )
        return AuthenticationError(
            f"Redis at {self.where} refused the user or password in the queue URL: check them"
        )

    async def run(self, script: str, *args: str | int) -> Any:
        """Run one of the Lua scripts (EVALSHA; loaded again after a Redis restart)."""
        return (await self.run_many(script, [list(args)]))[0]

    async def run_many(
        self, script: str, calls: list[list[str | int]], *, durable: bool = False
    ) -> list[Any]:
        """Run a script once per argument list, in one round trip (a pipeline).

        With ``durable`` (and replicas asked for), the round trip ends with ``WAIT``: it
        returns once that many replicas have the writes.

        Raises:
            ReplicationError: Fewer replicas than asked confirmed the writes in time
                (they are on the master; whether they survive a failover is unknown).
        """
        from redis import exceptions as redis_errors

        client = await self.client()
        # The prefix is the call's one key: on a cluster it routes the call to the slot
        # that the prefix's hash tag names, where every key of this queue lives.
        head: list[str | int] = [self.prefix, repr(self.clock()), "1" if self._ackdel else "0"]
        sha = self._shas.get(script) or await self._load(client, script)
        trip = RoundTrip(sha, head, calls, self.durable if durable else 0)
        try:
            return await self._send(client, trip)
        except redis_errors.NoScriptError:  # Redis restarted and forgot the script
            trip = dataclasses.replace(trip, sha=await self._load(client, script))
            return await self._send(client, trip)

    async def _load(self, client: RedisClient, script: str) -> str:
        self._shas[script] = str(await self.guard(client.script_load(self._sources[script])))
        return self._shas[script]

    async def _send(self, client: RedisClient, trip: RoundTrip) -> list[Any]:
        if len(trip.calls) == 1 and not trip.replicas:
            return [await self.guard(client.evalsha(trip.sha, 1, *trip.head, *trip.calls[0]))]
        if trip.replicas and self.target.cluster:
            return await self._send_to_shard(client, trip)
        return await self._pipelined(client, trip)

    async def _send_to_shard(self, client: RedisClient, trip: RoundTrip) -> list[Any]:
        """Durable writes on a cluster: the writes and their WAIT on one connection to the
        master that serves the queue's slot (a cluster pipeline may send a keyless WAIT
        to another node, or split a retry from it: a "confirmed" that covers nothing).
        A slot that moved (a failover, a resharding) is learned through the cluster
        client, and the writes are sent once more to its new master."""
        from redis import exceptions as redis_errors
        from redis.asyncio.cluster import RedisCluster

        assert isinstance(client, RedisCluster)
        for _ in range(2):
            node = client.get_node_from_key(self.prefix)
            if node is None:  # no node serves the slot (yet): as CLUSTERDOWN would say
                raise ConnectionFailedError(
                    f"no master of {self.where} serves the slot of queue keys {self.prefix!r}"
                    " now: a failover is under way; try again"
                )
            shard = self._shard(node.host, int(node.port))
            try:
                return await self._pipelined(shard, trip)
            except redis_errors.MovedError:  # nothing ran: the node no longer serves the slot
                await self.guard(client.exists(self.prefix))  # follows MOVED: the map learns
        raise ConnectionFailedError(
            f"the slot of queue keys {self.prefix!r} at {self.where} moved twice during one "
            "write: a resharding or failover is under way; try again"
        )

    def _shard(self, host: str, port: int) -> Redis:
        """This event loop's plain client of one cluster node (for durable writes)."""
        loop = asyncio.get_running_loop()
        shards = self._shards.setdefault(loop, {})
        shard = shards.get((host, port))
        if shard is None:
            shard = shards[host, port] = cast(
                "Redis",
                open_redis(
                    self.target.node(host, port),
                    max_connections=self.max_connections,
                    pool_timeout=POOL_TIMEOUT,
                    decode_responses=True,
                    protocol=2,
                ),
            )
        return shard

    async def _pipelined(self, client: RedisClient, trip: RoundTrip) -> list[Any]:
        replicas = trip.replicas
        async with client.pipeline(transaction=False) as pipe:
            for args in trip.calls:
                pipe.evalsha(trip.sha, 1, *trip.head, *args)
            if replicas:  # on the same connection, after the writes: WAIT covers them
                pipe.execute_command("WAIT", replicas, int(self.durable_timeout * 1000))
            replies = list(await self.guard(pipe.execute()))
        if replicas:
            confirmed = int(replies.pop())
            if confirmed < replicas:
                raise ReplicationError(
                    f"{len(trip.calls)} write(s) at {self.where} were confirmed by {confirmed} "
                    f"of the {replicas} replica(s) that durable= asks for within "
                    f"{self.durable_timeout:g} s: they may not survive a failover"
                )
        return replies

    async def block(self, client: RedisClient, keys: list[str], within: float) -> Any:
        """BLPOP on ``keys``, holding a connection; when too many are blocked already
        (they would starve the pool), a short sleep instead, answered with SPARED."""
        loop = asyncio.get_running_loop()
        gate = self._blockers.get(loop)
        if gate is None:
            gate = self._blockers[loop] = asyncio.Semaphore(max(1, self.max_connections // 4))
        if gate.locked():
            await asyncio.sleep(min(within, RESULT_POLL))
            return SPARED
        async with gate:
            return await self.guard(client.blpop(keys, timeout=max(within, 0.001)))

    async def close(self) -> None:
        """Close this event loop's connections."""
        for shard in self._shards.pop(asyncio.get_running_loop(), {}).values():
            await close_redis(shard)
        client = self._clients.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await close_redis(client)

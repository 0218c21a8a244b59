"""Redis from a URL, for every part of asyncgen that keeps state there (the queue, the
shared rate limiter, the response cache): one server, a group that Sentinel watches, or
a Redis Cluster.

- ``redis://[[user]:password@]host[:port][/db]``, ``rediss://`` (TLS): one server;
- ``redis+sentinel://[[user]:password@]host[:port][,host[:port]...]/service[/db]``
  (``rediss+sentinel://``: TLS to the servers): the sentinels at those addresses (port
  26379 unless given) say which server is ``service``'s master, and clients follow the
  master across a failover. The user and password are the servers'; sentinels that ask
  for a password of their own get ``?sentinel_password=`` (and ``sentinel_username``);
- ``redis+cluster://[[user]:password@]host[:port][,host[:port]...]`` (``rediss+cluster://``:
  TLS): any nodes of a Redis Cluster (one is enough; more are tried in turn at start);
  the client learns the slots from them and follows MOVED and failovers. A cluster has
  database 0 only. Every key asyncgen writes carries a hash tag (``{queue}``, ``{limiter}``)
  so each script touches one slot.

The URL is checked before redis-py sees it: redis-py passes unknown query options on to
its connection class, so a typo (``?queu=llm``) would surface later as a TypeError deep
inside it, and a password with a reserved character (``@ / ? #``) silently shifts the
host. Both are refused with a sentence that says what to change, and never show the
password.
"""

from __future__ import annotations

import functools
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeAlias

if TYPE_CHECKING:  # redis-py is imported where used: only Redis users pay for it
    from redis.asyncio import Redis
    from redis.asyncio.cluster import RedisCluster
    from redis.asyncio.sentinel import SentinelConnectionPool

    RedisClient: TypeAlias = Redis | RedisCluster
    """A client from :func:`open_redis`: one server's (or Sentinel's master's), or a
    cluster's."""

__all__ = [
    "SCHEMES",
    "RedisTarget",
    "close_redis",
    "open_redis",
    "parse_redis_url",
    "unreachable_errors",
]

SCHEMES = (
    "redis",
    "rediss",
    "redis+sentinel",
    "rediss+sentinel",
    "redis+cluster",
    "rediss+cluster",
)
DEFAULT_PORT = 6379
DEFAULT_SENTINEL_PORT = 26379
_REDIS_OPTIONS = (
    "socket_timeout",
    "socket_connect_timeout",
    "socket_keepalive",
    "health_check_interval",
    "retry_on_timeout",
    "client_name",
    "timeout",
)
_TLS_OPTIONS = (
    "ssl_keyfile",
    "ssl_certfile",
    "ssl_cert_reqs",
    "ssl_ca_certs",
    "ssl_ca_data",
    "ssl_ca_path",
    "ssl_check_hostname",
    "ssl_min_version",
    "ssl_ciphers",
    "ssl_password",
)
_SENTINEL_OPTIONS = ("sentinel_password", "sentinel_username")


@dataclass(frozen=True)
class RedisTarget:
    """Where a Redis URL points, checked; its repr and :attr:`where` never show a password.

    Attributes:
        scheme: One of SCHEMES.
        hosts: The server's address, the sentinels' addresses, or the cluster nodes' to
            start from.
        service: The name the sentinels know the group by (None for one server).
        db: The database number.
        options: redis-py's query options, parsed (``socket_timeout``, ``ssl_ca_certs``...).
    """

    scheme: str
    hosts: tuple[tuple[str, int], ...]
    service: str | None = None
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    options: dict[str, object] = field(default_factory=dict)
    url: str = field(default="", repr=False)  # one server: the URL less asyncgen's options

    @property
    def sentinel(self) -> bool:
        """True when sentinels name the master."""
        return self.service is not None

    @property
    def cluster(self) -> bool:
        """True for a Redis Cluster (``redis+cluster://``)."""
        return self.scheme.endswith("+cluster")

    @property
    def tls(self) -> bool:
        """True when the servers are reached over TLS."""
        return self.scheme.startswith("rediss")

    def node(self, host: str, port: int) -> RedisTarget:
        """One server of this target (a cluster's node), with its credentials, TLS and
        options."""
        scheme = "rediss" if self.tls else "redis"
        auth = ""
        if self.username or self.password:
            user = urllib.parse.quote(self.username or "", safe="")
            auth = f"{user}:{urllib.parse.quote(self.password or '', safe='')}@"
        address = f"[{host}]" if ":" in host else host
        query = urllib.parse.urlencode({name: str(value) for name, value in self.options.items()})
        url = f"{scheme}://{auth}{address}:{port}/0" + (f"?{query}" if query else "")
        return RedisTarget(
            scheme=scheme,
            hosts=((host, port),),
            username=self.username,
            password=self.password,
            options=self.options,
            url=url,
        )

    @property
    def where(self) -> str:
        """The address without the password, for messages: ``redis://host:6379`` or
        ``redis+sentinel://host:26379,host:26380/service``, ``redis+cluster://host:7000,...``."""
        hosts = ",".join(f"{host}:{port}" for host, port in self.hosts)
        return f"{self.scheme}://{hosts}" + (f"/{self.service}" if self.service else "")


def parse_redis_url(url: str, *, own: Sequence[str] = ()) -> tuple[RedisTarget, dict[str, str]]:
    """Check a Redis URL and split it into where it points and the caller's own options.

    Args:
        url: A URL of one of the forms above.
        own: Query options that are the caller's (e.g. the queue's ``queue``): taken out
            and returned, never passed to redis-py.

    Returns:
        The target, and the caller's options that the URL gives (the last of each).

    Raises:
        ValueError: Another scheme, a password that cuts the URL short, a database that
            is not a number, a Sentinel URL without its service, an unknown option or a
            bad value: said without the password.
    """
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme
    if scheme not in SCHEMES:
        raise ValueError(
            "not a Redis URL: use redis://, rediss://, redis+sentinel:// or redis+cluster://, "
            f"got {scheme}://"
        )
    netloc, path, query_text = parts.netloc, parts.path, parts.query
    userinfo, at, hostlist = netloc.rpartition("@")
    after_host = path + query_text + parts.fragment
    if netloc.count("@") > 1 or "@" in after_host or (not at and netloc.startswith(":")):
        raise ValueError(
            "the Redis URL's user or password holds a character that ends it early "
            "(@ / ? or #): percent-encode them in the password (%40 %2F %3F %23), e.g. "
            "urllib.parse.quote(password, safe='')"
        )
    username, _, password = userinfo.partition(":")
    sentinel, cluster = scheme.endswith("+sentinel"), scheme.endswith("+cluster")
    hosts = _hosts(
        hostlist, DEFAULT_SENTINEL_PORT if sentinel else DEFAULT_PORT, many=sentinel or cluster
    )
    segments = [segment for segment in path.split("/") if segment]
    service = None
    if sentinel:
        if not segments:
            raise ValueError(
                "a Sentinel URL names the master's service after the sentinels: "
                "redis+sentinel://host:26379,host:26380/mymaster/0"
            )
        service = urllib.parse.unquote(segments.pop(0))
    if len(segments) > 1 or (segments and not segments[0].isdigit()):
        raise ValueError(
            "the database in a Redis URL is a number (redis://host:6379/0), "
            f"got {'/'.join(segments)!r}"
        )
    if cluster and segments and segments[0] != "0":
        raise ValueError(
            f"a Redis Cluster has database 0 only: drop /{segments[0]} from the URL "
            "(keep queues apart with ?queue= instead)"
        )
    query = urllib.parse.parse_qs(query_text, keep_blank_values=True)
    mine = {name: query.pop(name)[-1] for name in own if name in query}
    options = _checked_options(query, scheme, own)
    kept = urllib.parse.urlencode(query, doseq=True)
    target = RedisTarget(
        scheme=scheme,
        hosts=hosts,
        service=service,
        db=int(segments[0]) if segments else 0,
        username=urllib.parse.unquote(username) or None,
        password=urllib.parse.unquote(password) if at else None,
        options=options,
        url=""
        if sentinel or cluster
        else urllib.parse.urlunsplit(parts._replace(query=kept, fragment="")),
    )
    return target, mine


def open_redis(
    target: RedisTarget,
    *,
    max_connections: int | None = None,
    pool_timeout: float | None = None,
    **settings: Any,
) -> RedisClient:
    """A redis-py asyncio client for ``target`` (call inside the event loop that uses it).

    Args:
        target: Where to connect.
        max_connections: With ``pool_timeout``: a pool of at most this many connections,
            where a burst of calls waits for a free one instead of failing with "Too many
            connections". On a cluster: per node, and a call beyond it fails with
            redis-py's ``MaxConnectionsError`` (a cluster's pools do not wait): callers
            that burst bound their own calls.
        pool_timeout: Seconds a call waits for a free connection (see above; not on a
            cluster).
        **settings: Client settings (``decode_responses``, ``protocol``, ``socket_timeout``
            ...); the URL's own options win over them.
    """
    from redis.asyncio import BlockingConnectionPool, ConnectionPool, Redis

    if max_connections is not None:
        settings["max_connections"] = max_connections
    if pool_timeout is not None:
        settings["timeout"] = pool_timeout
    blocking = pool_timeout is not None
    if target.cluster:
        return _open_cluster(target, settings)
    if not target.sentinel:  # the URL keeps its options: redis-py reads them from it
        pool = (BlockingConnectionPool if blocking else ConnectionPool).from_url(
            target.url, **settings
        )
        return Redis.from_pool(pool)
    from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool

    settings = {**settings, **target.options}
    sentinel_auth = {
        "password": settings.pop("sentinel_password", None),
        "username": settings.pop("sentinel_username", None),
    }
    timeouts = {k: v for k, v in settings.items() if k.startswith("socket_")}
    sentinels = Sentinel(
        list(target.hosts),
        sentinel_kwargs={**timeouts, **{k: v for k, v in sentinel_auth.items() if v}},
    )
    sentinel_pool: type[SentinelConnectionPool] = (
        _blocking_sentinel_pool() if blocking else SentinelConnectionPool
    )
    client: Redis = sentinels.master_for(
        target.service or "",
        redis_class=Redis,
        connection_pool_class=sentinel_pool,
        db=target.db,
        username=target.username,
        password=target.password,
        ssl=target.tls,
        **settings,
    )
    return client


def _open_cluster(target: RedisTarget, settings: dict[str, Any]) -> RedisCluster:
    from redis.asyncio.cluster import ClusterNode, RedisCluster

    settings = {**settings, **target.options}
    settings.pop("timeout", None)  # a cluster's pools do not wait for a free connection
    return RedisCluster(
        startup_nodes=[ClusterNode(host, port) for host, port in target.hosts],
        username=target.username,
        password=target.password,
        ssl=target.tls,
        **settings,
    )


def unreachable_errors() -> tuple[type[BaseException], ...]:
    """redis-py's errors that mean "Redis cannot answer now" (worth a retry or a local
    fallback), a cluster's too: CLUSTERDOWN and TRYAGAIN while a shard fails over, a
    slot no node serves yet, every node out of reach."""
    from redis import exceptions as redis_errors

    return (
        redis_errors.ConnectionError,
        redis_errors.TimeoutError,
        OSError,
        redis_errors.ClusterDownError,
        redis_errors.TryAgainError,
        redis_errors.SlotNotCoveredError,
        redis_errors.RedisClusterUnreachableError,
    )


async def close_redis(client: RedisClient) -> None:
    """Close a client from :func:`open_redis`: its pool, and with Sentinel the
    connections to the sentinels that name its master."""
    await client.aclose()
    manager = getattr(getattr(client, "connection_pool", None), "sentinel_manager", None)
    for sentinel in getattr(manager, "sentinels", ()):
        await sentinel.aclose()


def _hosts(text: str, default_port: int, *, many: bool) -> tuple[tuple[str, int], ...]:
    found: list[tuple[str, int]] = []
    for item in text.split(",") if many else [text]:
        host, port = item or "localhost", str(default_port)
        if item.startswith("["):  # [::1]:26379
            host, _, port_part = item[1:].partition("]")
            port = port_part.removeprefix(":") or port
        elif ":" in item:
            host, _, port = item.rpartition(":")
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"the Redis URL's port is a number from 1 to 65535, got {port!r}")
        found.append((host or "localhost", int(port)))
    return tuple(found)


def _checked_options(
    query: dict[str, list[str]], scheme: str, own: Sequence[str]
) -> dict[str, object]:
    tls = scheme.startswith("rediss")
    sentinel = scheme.endswith("+sentinel")
    if scheme.endswith("+cluster") and "timeout" in query:
        raise ValueError(
            "?timeout= (a wait for a free pooled connection) is not available on a cluster URL"
        )
    allowed = (
        *_REDIS_OPTIONS,
        *(_TLS_OPTIONS if tls else ()),
        *(_SENTINEL_OPTIONS if sentinel else ()),
    )
    options: dict[str, object] = {}
    for name, values in query.items():
        if name in _TLS_OPTIONS and not tls:
            raise ValueError(f"?{name}= is a TLS option: use a rediss:// URL")
        if name not in allowed:
            mine = f"asyncgen's are {', '.join(own)}; " if own else ""
            raise ValueError(
                f"unknown option ?{name}= in the Redis URL; {mine}redis-py's accepted here "
                f"are {', '.join(allowed)}"
            )
        from redis.connection import URL_QUERY_ARGUMENT_PARSERS

        parse: Callable[[str], object] | None = URL_QUERY_ARGUMENT_PARSERS.get(name)  # type: ignore[assignment]
        value: object = values[-1]
        if parse is not None:
            try:
                value = parse(values[-1])
            except (TypeError, ValueError):
                raise ValueError(f"?{name}= in the Redis URL: bad value {values[-1]!r}") from None
        options[name] = value
    return options


@functools.cache
def _blocking_sentinel_pool() -> type[SentinelConnectionPool]:
    from redis.asyncio import BlockingConnectionPool
    from redis.asyncio.sentinel import SentinelConnectionPool

    class BlockingSentinelPool(SentinelConnectionPool, BlockingConnectionPool):
        """A Sentinel-managed pool whose calls wait for a free connection when all are
        busy (redis-py's Sentinel pool fails them with "Too many connections")."""

    return BlockingSentinelPool

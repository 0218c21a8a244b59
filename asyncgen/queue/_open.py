"""Open a queue from its URL: SQLite, memory or Redis."""

from __future__ import annotations

from ..core._redis import SCHEMES as REDIS_SCHEMES
from ._queue import JobQueue, safe_url
from ._redis import RedisStore
from ._sqlite import SQLiteStore

__all__ = ["open_queue"]


def open_queue(url: str, *, create: bool = True) -> JobQueue:
    """Open the queue at ``url``.

    - ``sqlite:///path/jobs.db``: embedded and durable, for the processes of one machine;
    - ``memory://``: one process, gone when it ends (tests, notebooks);
    - ``redis://[:password@]host:port/db`` or ``rediss://`` (TLS): workers on many
      machines; ``?queue=NAME`` keeps several queues in one database, ``?result_ttl=S``
      sets how long results are kept (see :class:`RedisStore`). Redis 6.2+.
    - ``redis+sentinel://[:password@]host:26379,host:26380/mymaster/0``: the same on the
      master that Sentinel names, followed across a failover;
    - ``redis+cluster://[:password@]host:7000,host:7001``: the same on a Redis Cluster
      (each queue's keys in one slot; queues spread over the shards).

    Nothing connects until the queue is first used. ``create=False`` (for tools that only
    look, such as ``asyncgen jobs`` and the dashboard) refuses a SQLite file that does not
    exist instead of creating it (and its folder) from a typo.

    Raises:
        ValueError: An unsupported URL (says which forms are supported).
        StoreError: A SQLite path that cannot be used, or is missing with
            ``create=False``.
    """
    if url == "memory://":
        return JobQueue(SQLiteStore(":memory:"), url)
    if url.startswith("sqlite:///"):
        return JobQueue(SQLiteStore(url.removeprefix("sqlite:///"), create=create), url)
    if url.partition("://")[0] in REDIS_SCHEMES:
        return JobQueue(RedisStore(url), url)
    raise ValueError(
        f"unsupported queue URL {safe_url(url)!r}: use sqlite:///path/to/jobs.db, memory:// "
        "or redis://host:6379/0 (redis+sentinel://host:26379,.../mymaster/0 with Sentinel, "
        "redis+cluster://host:7000,host:7001 for a Redis Cluster)"
    )

"""An opt-in response cache: an identical request is answered from it, not sent.

``ChatClient(cache="sqlite:///cache.db")`` (or ``"redis://host:6379/0"``, or a
:class:`ResponseCache` of your own) keys each answer on the API's base URL and the
request's fingerprint (model, messages, params: see ``_request.py``). A hit returns
the stored completion with ``cached=True``, its usage (the tokens it took when it was
generated) and a cost of 0 (``cost_source="cache"``): nothing was spent. Only answers
are stored, never errors; streamed requests are not cached.

Identical means byte for byte after sorting keys: a sampled answer (temperature > 0)
is served again as it was, which is the point for evaluations and re-runs, and the
reason the cache is opt-in.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable
from urllib.parse import urlsplit

import structlog

from ...core._logging import mask_secrets
from ...core._redis import SCHEMES as REDIS_SCHEMES
from ...core._redis import close_redis, open_redis, parse_redis_url
from ._models import Completion
from ._request import request_fingerprint

if TYPE_CHECKING:  # redis-py is imported where used: only Redis caches pay for it
    from ...core._redis import RedisClient

__all__ = [
    "CachedAnswers",
    "RedisCache",
    "ResponseCache",
    "SqliteCache",
    "cache_key",
    "hit",
    "open_cache",
]

_PREFIX = "asyncgen:cache:"

_log = structlog.get_logger("asyncgen.cache")


@runtime_checkable
class ResponseCache(Protocol):
    """Where answers are kept: ``get`` and ``put`` by key; ``aclose`` releases what the
    running event loop holds (a ChatClient calls it from its own ``aclose``)."""

    async def get(self, key: str) -> Completion | None: ...

    async def put(self, key: str, completion: Completion) -> None: ...

    async def aclose(self) -> None: ...


def cache_key(scope: str, fingerprint: str) -> str:
    """The key of a request to one API (its base URL, or a client's ``cache_scope``): the
    same model name elsewhere is another model."""
    return hashlib.sha256(f"{scope}\n{fingerprint}".encode()).hexdigest()


def _stored(completion: Completion) -> str:
    return completion.model_dump_json(exclude={"parsed"})


def _loaded(data: str | bytes) -> Completion:
    return Completion.model_validate_json(data)


class SqliteCache:
    """A cache in one SQLite file (WAL): safe for several processes on one machine.

    Lookups and writes are short indexed statements run on the caller's thread (tens of
    microseconds); a busy file waits up to 5 s for its lock.

    Args:
        path: The database file (created with its table if missing).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if self.path.is_dir():
            raise ValueError(f"cache {self.path} is a directory: give a file (cache.db)")
        if not self.path.parent.is_dir():
            raise ValueError(f"the folder of cache {self.path} does not exist: create it first")
        import sqlite3  # loaded by the caches that use it, not by every client

        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(
                self.path, timeout=5.0, check_same_thread=False, isolation_level=None
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS asyncgen_cache "
                "(key TEXT PRIMARY KEY, completion TEXT NOT NULL, stored REAL NOT NULL)"
            )
        except sqlite3.DatabaseError as exc:
            raise ValueError(f"cache {self.path} is not a usable SQLite file: {exc}") from None

    def __repr__(self) -> str:
        return f"SqliteCache({str(self.path)!r})"

    async def get(self, key: str) -> Completion | None:
        with self._lock:
            row = self._db.execute(
                "SELECT completion FROM asyncgen_cache WHERE key = ?", (key,)
            ).fetchone()
        return _loaded(row[0]) if row is not None else None

    async def put(self, key: str, completion: Completion) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO asyncgen_cache (key, completion, stored) VALUES (?, ?, ?)",
                (key, _stored(completion), time.time()),
            )

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM asyncgen_cache").fetchone()[0])

    async def aclose(self) -> None:
        """Nothing to do per event loop (the file is shared by all): see :meth:`close`."""

    def close(self) -> None:
        """Close the database file."""
        with self._lock:
            self._db.close()


class RedisCache:
    """A cache in Redis, shared by every process and machine that reaches it.

    Args:
        url: ``redis://[:password@]host:port/db`` or ``rediss://``.
        ttl: Seconds an answer is kept (None: until Redis evicts it).
    """

    def __init__(self, url: str, *, ttl: float | None = None) -> None:
        if ttl is not None and not ttl > 0:
            raise ValueError(f"ttl must be > 0 seconds (or None), got {ttl}")
        self._target, _ = parse_redis_url(url)  # a bad URL fails here, said plainly
        self.ttl = ttl
        self._clients: dict[asyncio.AbstractEventLoop, RedisClient] = {}

    def __repr__(self) -> str:
        return f"RedisCache(ttl={self.ttl})"  # the URL may hold a password

    def _client(self) -> RedisClient:
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            client = self._clients[loop] = open_redis(self._target, socket_timeout=5.0)
        return client

    async def get(self, key: str) -> Completion | None:
        data = await self._client().get(_PREFIX + key)
        return _loaded(data) if data is not None else None

    async def put(self, key: str, completion: Completion) -> None:
        expire = int(self.ttl * 1000) if self.ttl is not None else None
        await self._client().set(_PREFIX + key, _stored(completion), px=expire)

    async def aclose(self) -> None:
        client = self._clients.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await close_redis(client)


def open_cache(where: str | ResponseCache) -> ResponseCache:
    """A cache from a URL (``sqlite:///relative.db``, ``sqlite:////absolute.db``,
    ``redis://...``, ``rediss://...``, ``redis+sentinel://...``, ``redis+cluster://...``)
    or the cache itself.

    Raises:
        ValueError: Another scheme, or a SQLite path that cannot hold the file.
    """
    if not isinstance(where, str):
        if not isinstance(where, ResponseCache):
            raise ValueError(f"cache must be a URL or a ResponseCache, not {type(where).__name__}")
        return where
    scheme = urlsplit(where).scheme
    if scheme == "sqlite":
        path = where.removeprefix("sqlite://").removeprefix("/")
        if not path:
            raise ValueError("a sqlite cache URL names its file: sqlite:///cache.db")
        return SqliteCache(path)
    if scheme in REDIS_SCHEMES:
        return RedisCache(where)
    raise ValueError(
        f"cache must be sqlite:///FILE or redis://HOST:PORT/DB, not {scheme or where!r}"
    )


class CachedAnswers:
    """One client's use of a cache: a lookup or a store that fails never fails the
    request (it is sent, or its answer returned, as if there were no cache), and says
    so once."""

    def __init__(self, cache: ResponseCache, scope: str) -> None:
        self.cache = cache
        self.scope = scope  # which API the keys name (the client's cache_scope)
        self._warned = False

    async def lookup(
        self, model: str, messages: list[dict[str, Any]], params: dict[str, Any]
    ) -> tuple[str, Completion | None]:
        """The request's key, and the answer stored for it (None: a miss)."""
        key = cache_key(self.scope, request_fingerprint(model, messages, params))
        try:
            return key, await self.cache.get(key)
        except Exception as exc:  # a broken cache must not stop the work
            self._failed(exc)
            return key, None

    async def store(self, key: str, completion: Completion) -> None:
        try:
            await self.cache.put(key, completion)
        except Exception as exc:  # the answer is still returned
            self._failed(exc)

    def _failed(self, exc: Exception) -> None:
        if not self._warned:
            self._warned = True
            _log.warning(
                "response_cache_failed",
                cache=repr(self.cache),
                error=mask_secrets(f"{type(exc).__name__}: {exc}"),
                action="requests are sent as if there were no cache",
            )


def hit(completion: Completion) -> Completion:
    """A stored answer as a hit: cached, no latency, and a cost of 0."""
    usage = completion.usage.model_copy(update={"cost": 0.0, "cost_source": "cache"})
    return completion.model_copy(update={"cached": True, "usage": usage, "latency": 0.0})


def saved_cost(completion: Completion) -> float:
    """What a stored answer cost when it was generated (0 when unknown)."""
    return completion.usage.cost or 0.0

"""The second peer for bench_redis.py: Dramatiq with its Redis broker and results.

Its worker processes are started with ``dramatiq _dramatiq_app --processes 1 --threads N``;
the Redis URL comes from $BENCH_REDIS_URL.
"""

from __future__ import annotations

import os
import time

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.results import Results
from dramatiq.results.backends import RedisBackend

URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")

broker = RedisBroker(url=URL)  # type: ignore[no-untyped-call]
broker.add_middleware(Results(backend=RedisBackend(url=URL)))  # type: ignore[no-untyped-call]
dramatiq.set_broker(broker)


@dramatiq.actor(store_results=True, max_retries=0)
def noop() -> float:
    """Return when it started (epoch seconds), as asyncgen's no-op task does."""
    return time.time()

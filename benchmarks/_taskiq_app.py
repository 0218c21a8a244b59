"""The peer for bench_redis.py: taskiq with taskiq-redis's stream broker, one no-op task.

Its worker processes are started with ``taskiq worker _taskiq_app:broker``; the Redis
URL comes from $BENCH_REDIS_URL.
"""

from __future__ import annotations

import os
import time

from taskiq_redis import RedisAsyncResultBackend, RedisStreamBroker

URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")

broker = RedisStreamBroker(URL, queue_name="bench").with_result_backend(
    RedisAsyncResultBackend(URL, prefix_str="result")
)


@broker.task(task_name="noop")
async def noop() -> float:
    """Return when it started (epoch seconds), as asyncgen's no-op task does."""
    return time.time()

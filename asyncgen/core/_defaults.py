"""The library's defaults, in one place: the functions, the commands and Settings use these."""

from __future__ import annotations

__all__ = [
    "DEFAULT_CONCURRENCY",
    "DEFAULT_DEADLINE",
    "DEFAULT_GRACE",
    "DEFAULT_LEASE",
    "DEFAULT_MAX_ATTEMPTS",
    "DEFAULT_QUEUE_URL",
    "DEFAULT_WORKER_CONCURRENCY",
]

DEFAULT_CONCURRENCY = 6  # requests at once in generate() and asyncgen run
DEFAULT_DEADLINE = 400.0  # seconds for a generate() batch (asyncgen run: none)
DEFAULT_MAX_ATTEMPTS = 3  # attempts per request, the first included
DEFAULT_WORKER_CONCURRENCY = 4  # jobs a worker runs at once
DEFAULT_LEASE = 30.0  # seconds a worker's claim lasts without a heartbeat
DEFAULT_GRACE = 10.0  # seconds running jobs get when a worker is stopped
DEFAULT_QUEUE_URL = "sqlite:///asyncgen-jobs.db"  # asyncgen worker with no URL

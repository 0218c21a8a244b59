"""Shared fixtures: clean structlog state, a real simulator, redis-server, a quick retry."""

import uuid
from collections.abc import Iterator

import pytest
import structlog

from asyncgen import RetryPolicy
from asyncgen.testing import RedisServer, SimServer, sim_server
from tests.processes import reap


@pytest.fixture(autouse=True)
def _reset_structlog() -> Iterator[None]:
    structlog.contextvars.clear_contextvars()
    yield
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()


@pytest.fixture
def sim() -> Iterator[SimServer]:
    """A real simulator on a free 127.0.0.1 port (thread); reconfigure with sim.configure."""
    with sim_server() as server:
        yield server


@pytest.fixture
def fast_retry() -> RetryPolicy:
    """The default policy's shape with millisecond delays."""
    return RetryPolicy(base_delay=0.005, jitter=0.0)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A real redis-server on a free 127.0.0.1 port, shared by the session.

    Fails (never skips) when redis-server is missing: CI installs it.
    """
    with RedisServer() as server:
        yield server


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """A queue of its own on the shared server (``?queue=`` with a fresh name)."""
    return f"{redis_server.url}?queue=test-{uuid.uuid4().hex[:12]}"


@pytest.fixture(autouse=True)
def _reap_worker_processes() -> Iterator[None]:
    """No worker process outlives its test, whatever the test's outcome."""
    yield
    reap()

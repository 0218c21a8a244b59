"""Shared fixtures: clean structlog state, a real simulator, redis-server, a quick retry."""

import uuid
from collections.abc import Iterator

import pytest
import structlog

from asyncgen import RetryPolicy
from asyncgen.testing import ClusterGroup, RedisServer, SentinelGroup, SimServer, sim_server
from tests import idle_worker
from tests.processes import reap


def pytest_collection_finish(session: pytest.Session) -> None:
    """Start the idle worker early when the session will check it (see idle_worker)."""
    if any(idle_worker.CHECKED_BY in item.nodeid for item in session.items):
        idle_worker.start()


def pytest_sessionfinish(session: pytest.Session) -> None:
    """No idle worker outlives the session."""
    idle_worker.stop()


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


@pytest.fixture(scope="session")
def sentinel_group() -> Iterator[SentinelGroup]:
    """A primary, two replicas and three sentinels, shared by the session's Sentinel tests
    (those marked ``sentinel``, run alone: pytest -m sentinel)."""
    with SentinelGroup(replicas=2) as group:
        yield group


@pytest.fixture
def sentinel_url(sentinel_group: SentinelGroup) -> str:
    """A queue of its own behind the shared Sentinel group, its writes confirmed by a
    replica (``?durable=1``)."""
    return f"{sentinel_group.url}?queue=test-{uuid.uuid4().hex[:12]}&durable=1"


@pytest.fixture(scope="session")
def cluster_group() -> Iterator[ClusterGroup]:
    """Three masters with a replica each, shared by the session's Cluster tests (those
    marked ``cluster``, run alone: pytest -m cluster)."""
    with ClusterGroup(masters=3, replicas=1) as group:
        yield group


@pytest.fixture
def cluster_url(cluster_group: ClusterGroup) -> str:
    """A queue of its own on the shared cluster (its keys in one slot of one shard), its
    writes confirmed by the shard's replica (``?durable=1``)."""
    return f"{cluster_group.url}?queue=test-{uuid.uuid4().hex[:12]}&durable=1"


@pytest.fixture(autouse=True)
def _reap_worker_processes() -> Iterator[None]:
    """No worker process outlives its test, whatever the test's outcome."""
    yield
    reap()

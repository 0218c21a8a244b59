"""Shared fixtures: clean structlog state, a real simulator, a quick retry policy."""

from collections.abc import Iterator

import pytest
import structlog

from asyncgen import RetryPolicy
from asyncgen.testing import SimServer, sim_server


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

"""Helpers for testing code that uses asyncgen: a real simulator, a real redis-server, a
Sentinel-watched Redis group to fail over, a Redis Cluster.

from asyncgen.testing import sim_server

def test_fan_out() -> None:
    with sim_server() as sim:
        client = asyncgen.ChatClient(sim.base_url)
        results = asyncgen.sync.fan_out("hi", ["a", "b"], client=client)
        assert sim.requests() == 2

def test_background_jobs() -> None:
    with RedisServer() as redis:  # redis-server on a free 127.0.0.1 port
        queue = asyncgen.open_queue(redis.url)
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ..sim import BatchProfile, Fault, KeyLimit, ModelProfile, SimConfig, SimServer
from ._cluster import ClusterGroup
from ._redis_server import RedisServer
from ._sentinel import SentinelGroup
from ._tracing import SpanCapture, capture_spans

__all__ = [
    "BatchProfile",
    "ClusterGroup",
    "Fault",
    "KeyLimit",
    "ModelProfile",
    "RedisServer",
    "SentinelGroup",
    "SimConfig",
    "SimServer",
    "SpanCapture",
    "capture_spans",
    "sim_server",
]


@contextmanager
def sim_server(
    config: SimConfig | dict[str, Any] | None = None,
    *,
    process: bool = False,
    http2: bool = False,
) -> Iterator[SimServer]:
    """Run the simulator on a free 127.0.0.1 port for the duration of a ``with`` block.

    Args:
        config: A SimConfig (or its dict form); None means instant, faultless answers.
        process: Serve from a child process instead of a thread of this one (closer to
            production: no shared GIL; required to measure client CPU cleanly).
        http2: Serve TLS + HTTP/2 with hypercorn and a throwaway CA (``sim.verify`` is
            what clients pass as ``verify``); needs the ``sim-http2`` extra.

    Yields:
        The running SimServer: ``base_url`` for ChatClient, ``stats()``, ``requests()``.
    """
    parsed = SimConfig.model_validate(config) if isinstance(config, dict) else config
    with SimServer(parsed, process=process, http2=http2) as server:
        yield server

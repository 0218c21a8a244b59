"""The simulator itself: routes, rate limits, counters, and its command line."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from typing import Any

import httpx
import pytest

import asyncgen
from asyncgen.testing import ModelProfile, SimConfig, SimServer

HELLO: list[dict[str, Any]] = [{"role": "user", "content": "hello"}]
CHAT = {"model": "m", "messages": HELLO}


class TestRoutes:
    def test_openrouter_key_endpoint(self, sim: SimServer) -> None:
        """/api/v1/key reports the credit limit and what was spent."""
        sim.configure(SimConfig(credits=5.0))
        httpx.post(f"{sim.base_url}/chat/completions", json=CHAT).raise_for_status()
        data = httpx.get(f"{sim.url}/api/v1/key").json()["data"]
        assert data["limit"] == 5.0
        assert 0 < data["usage"] < 5.0
        assert data["limit_remaining"] == pytest.approx(5.0 - data["usage"])

    def test_bad_body_is_a_400(self, sim: SimServer) -> None:
        """A body without model and messages is refused with an OpenAI-style error."""
        answer = httpx.post(f"{sim.base_url}/chat/completions", json={"model": "m"})
        assert answer.status_code == 400
        assert answer.json()["error"]["type"] == "invalid_request_error"

    def test_unknown_route_is_a_404(self, sim: SimServer) -> None:
        """Other paths answer 404."""
        assert httpx.get(f"{sim.url}/nope").status_code == 404

    def test_reset_zeroes_the_counters(self, sim: SimServer) -> None:
        """reset() forgets the requests seen so far."""
        httpx.post(f"{sim.base_url}/chat/completions", json=CHAT).raise_for_status()
        assert sim.requests() == 1
        sim.reset()
        assert sim.requests() == 0


class TestRateLimits:
    def test_requests_per_minute(self, sim: SimServer) -> None:
        """Past rpm (and its burst) the simulator answers 429 with Retry-After in s and ms."""
        sim.configure(SimConfig(models={"m": ModelProfile(rpm=2, burst=30)}))
        codes = [httpx.post(f"{sim.base_url}/chat/completions", json=CHAT) for _ in range(3)]
        assert [c.status_code for c in codes] == [200, 200, 429]
        assert 25 <= int(codes[2].headers["retry-after"]) <= 30
        assert asyncgen.parse_retry_after(codes[2].headers) == pytest.approx(30, abs=5)

    def test_tokens_per_minute(self, sim: SimServer) -> None:
        """Past tpm (prompt at 4 characters a token, plus max_tokens) requests get 429."""
        sim.configure(SimConfig(models={"m": ModelProfile(tpm=60, burst=0)}))
        content = "x" * 80  # 20 prompt tokens + 2 overhead + 1 + max_tokens 10 = 33
        big = {"model": "m", "messages": [{"role": "user", "content": content}], "max_tokens": 10}
        codes = [
            httpx.post(f"{sim.base_url}/chat/completions", json=big).status_code for _ in range(2)
        ]
        assert codes == [200, 429]

    async def test_client_retries_after_the_servers_wait(self, sim: SimServer) -> None:
        """A 429's Retry-After from the simulator reaches the client's error."""
        sim.configure(SimConfig(models={"m": ModelProfile(rpm=1)}))
        async with asyncgen.ChatClient(sim.base_url) as client:
            await client.chat("m", HELLO)
            with pytest.raises(asyncgen.RateLimitedError) as caught:
                await client.chat("m", HELLO)
        assert caught.value.retry_after is not None
        assert 55 <= caught.value.retry_after <= 60  # one request a minute, 1 s of burst


def test_command_line_serves_until_terminated() -> None:
    """python -m asyncgen.sim starts, announces its URL, answers, and stops on SIGTERM."""
    child = subprocess.Popen(
        [sys.executable, "-m", "asyncgen.sim", "--port", "0", "--latency", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        assert line.startswith("asyncgen simulator: http://127.0.0.1:")
        base_url = line.split()[2]
        deadline = time.monotonic() + 10
        while True:
            try:
                answer = httpx.post(f"{base_url}/chat/completions", json=CHAT, timeout=2)
                break
            except httpx.ConnectError:
                assert time.monotonic() < deadline
                time.sleep(0.05)
        assert answer.json()["choices"][0]["message"]["content"] == "[m] hello"
    finally:
        child.terminate()
        # uvicorn shuts down gracefully, then re-raises the signal it caught.
        assert child.wait(10) in (0, -signal.SIGTERM)
        assert child.stdout is not None
        child.stdout.close()

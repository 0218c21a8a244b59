"""The simulator itself: routes, rate limits, counters, and its command line."""

from __future__ import annotations

import datetime
import enum
import signal
import subprocess
import time
from typing import Any, Literal

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, Field

import asyncgen
from asyncgen.sim import DEFAULT_MODELS
from asyncgen.sim._limits import Admitted, make_limiter
from asyncgen.sim._schema import example
from asyncgen.testing import ModelProfile, SimConfig, SimServer
from tests.processes import asyncgen_argv

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
    """asyncgen sim starts, announces its URL, answers, and stops on SIGTERM."""
    child = subprocess.Popen(
        asyncgen_argv("sim", "--port", "0", "--latency", "0"),
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


def admitted_times(kind: str, profile: ModelProfile, arrivals: list[float]) -> list[float]:
    """The arrival times a fresh limiter of ``kind`` admits (1 token each)."""
    limiter = make_limiter(kind)
    return [t for t in arrivals if isinstance(limiter.check(profile, 1, t), Admitted)]


def most_in_any_window(times: list[float], width: float) -> int:
    """The most of ``times`` in any half-open window [t, t + width)."""
    return max((sum(1 for u in times if t <= u < t + width) for t in times), default=0)


class TestLimiterKinds:
    def test_sliding_admits_rate_per_second_and_says_when(self) -> None:
        """600 rpm as 10 in any 1-second window: the 11th waits until the 1st leaves."""
        profile, limiter = ModelProfile(rpm=600, limiter="sliding"), make_limiter("sliding")
        for i in range(10):
            assert isinstance(limiter.check(profile, 1, i * 0.01), Admitted)
        assert limiter.check(profile, 1, 0.5) == pytest.approx(0.5)
        assert isinstance(limiter.check(profile, 1, 1.0), Admitted)

    @settings(max_examples=60, deadline=None)
    @given(st.lists(st.floats(0, 5, allow_nan=False), min_size=1, max_size=120))
    def test_sliding_never_exceeds_in_any_window(self, raw: list[float]) -> None:
        """Whatever the arrivals, no 1-second window holds more than rpm / 60 admissions."""
        admitted = admitted_times("sliding", ModelProfile(rpm=600), sorted(raw))
        assert most_in_any_window(admitted, 1.0) <= 10

    def test_fixed_resets_at_the_minute(self) -> None:
        """A fixed window admits rpm at once, then nothing until the next clock minute."""
        profile, limiter = ModelProfile(rpm=5, limiter="fixed"), make_limiter("fixed")
        for i in range(5):
            assert isinstance(limiter.check(profile, 1, 100.0 + i), Admitted)
        assert limiter.check(profile, 1, 110.0) == pytest.approx(50.0)
        assert isinstance(limiter.check(profile, 1, 160.0), Admitted)

    def test_bucket_lets_a_burst_through(self) -> None:
        """The bucket admits rpm/60 x burst + 1 at once: more than a sliding window would."""
        arrivals = [i * 0.001 for i in range(40)]
        bucket = admitted_times("bucket", ModelProfile(rpm=600, burst=1.0), arrivals)
        sliding = admitted_times("sliding", ModelProfile(rpm=600), arrivals)
        assert (len(bucket), len(sliding)) == (11, 10)

    def test_sliding_tokens_and_correction(self) -> None:
        """tpm/60 tokens in any second; a corrected charge frees (or takes) room."""
        profile, limiter = ModelProfile(tpm=600, limiter="sliding"), make_limiter("sliding")
        first = limiter.check(profile, 8, 0.0)
        assert isinstance(first, Admitted)
        assert not isinstance(limiter.check(profile, 5, 0.1), Admitted)  # 8 + 5 > 10
        limiter.correct(profile, first, -6)  # it used 2, not 8
        assert isinstance(limiter.check(profile, 5, 0.2), Admitted)

    @pytest.mark.parametrize(
        ("header", "sent"),
        [
            ("both", {"retry-after", "retry-after-ms"}),
            ("retry-after", {"retry-after"}),
            ("retry-after-ms", {"retry-after-ms"}),
            ("none", set()),
        ],
    )
    def test_retry_header_variants(self, sim: SimServer, header: str, sent: set[str]) -> None:
        """A 429 carries Retry-After, retry-after-ms, both or neither, as configured."""
        profile = ModelProfile(rpm=60, limiter="sliding", retry_header=header)  # type: ignore[arg-type]
        sim.configure(SimConfig(models={"m": profile}))
        assert httpx.post(f"{sim.base_url}/chat/completions", json=CHAT).status_code == 200
        refused = httpx.post(f"{sim.base_url}/chat/completions", json=CHAT)
        assert refused.status_code == 429
        assert {"retry-after", "retry-after-ms"} & set(refused.headers) == sent


class Level(enum.Enum):
    LOW = "low"
    HIGH = "high"


class Address(BaseModel):
    city: str = Field(min_length=12)
    zip_code: str = Field(max_length=3)


class Person(BaseModel):
    name: str
    age: int = Field(ge=18, le=120)
    score: float = Field(gt=0.5)
    level: Level
    tags: list[str] = Field(min_length=2)
    home: Address
    work: Address | None = None
    kind: Literal["person"] = "person"
    born: datetime.date
    friends: list[Person] = Field(default_factory=list)


class TestStructuredAnswers:
    @pytest.mark.parametrize("model", [Person, Address])
    def test_the_example_fits_the_schema(self, model: type[BaseModel]) -> None:
        """Nested models, enums, bounds, lengths, literals, dates, optional and recursive
        fields: the simulator's answer validates against the model it was asked for."""
        value = example(model.model_json_schema())
        model.model_validate(value)

    async def test_structured_outputs_work_without_replies(self, sim: SimServer) -> None:
        """asyncgen's response_model against a simulator with no replies configured."""
        async with asyncgen.ChatClient(sim.base_url) as client:
            (result,) = await asyncgen.fan_out("who?", ["m"], client=client, response_model=Person)
        assert result.ok, result.error
        assert isinstance(result.parsed, Person)
        assert result.attempts == 1

    async def test_the_openai_sdk_parses_and_lists_models(self, sim: SimServer) -> None:
        """The official openai SDK against the simulator: chat.completions.parse returns
        a parsed object; models.list() names the models it serves."""
        from openai import AsyncOpenAI

        async with AsyncOpenAI(base_url=sim.base_url, api_key="sk-sim") as sdk:
            answer = await sdk.chat.completions.parse(
                model="sim/model-0",
                messages=[{"role": "user", "content": "who?"}],
                response_format=Person,
            )
            listed = [m.id async for m in sdk.models.list()]
        assert isinstance(answer.choices[0].message.parsed, Person)
        assert listed == list(DEFAULT_MODELS)
        sim.configure(SimConfig(models={"a": ModelProfile(), "b": ModelProfile()}))
        async with httpx.AsyncClient() as http:
            reply = (await http.get(f"{sim.base_url}/models", timeout=5)).json()
        assert [m["id"] for m in reply["data"]] == ["a", "b"]

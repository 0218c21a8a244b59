"""The key's pace (concurrency="auto" across models): evidence, slow start, fading, and
end to end against a simulator whose limit covers the whole key."""

from __future__ import annotations

import asyncio
import time

import pytest

import asyncgen
from asyncgen import ChatClient
from asyncgen.llm.client._key_pace import EVIDENCE_FADES, SLOW_START_AFTER, KeyPace
from asyncgen.testing import KeyLimit, ModelProfile, SimConfig, SimServer
from tests.test_ratelimit import FakeClock


def key_pace() -> tuple[KeyPace, FakeClock]:
    clock = FakeClock()
    return KeyPace(clock=clock), clock


def limit(pace: KeyPace, models: str = "abcd") -> None:
    """Quiet 429s in a row from ``models``, no answer between."""
    for model in models:
        pace.refused(model, 0.1, 0.0, busy=False)


class TestShared:
    """The key's pace as a SharedRateLimiter carries it for every process (see adopt)."""

    def test_a_rate_learned_elsewhere_ends_the_slow_start_and_binds(self) -> None:
        pace, clock = key_pace()
        assert pace.paces("a", busy=False, shared=True)  # the slow start is this pace's
        pace.adopt(20.0, clock.now + 30)
        assert pace.knows_rate
        assert pace.limited
        assert not pace.paces("b", busy=False, shared=True)  # the shared limiter paces it
        assert pace.paces("c", busy=False)  # with no shared limiter, this pace would
        clock.now += 31
        assert not pace.limited

    def test_no_rate_in_force_changes_nothing(self) -> None:
        pace, clock = key_pace()
        pace.adopt(None, clock.now + 30)
        assert not pace.knows_rate
        assert not pace.limited
        assert pace.paces("a", busy=False, shared=True)


class TestEvidence:
    def test_quiet_429s_in_a_row_from_several_models_are_the_keys(self) -> None:
        pace, _ = key_pace()
        limit(pace, "ab")
        assert not pace.limited  # two: a provider refusing at random does that
        limit(pace, "c")
        assert pace.limited
        assert pace.pacer.rate is not None  # the key's rate was measured

    def test_an_answer_between_breaks_the_run(self) -> None:
        """Random refusals come between answers; a full key refuses everything."""
        pace, _ = key_pace()
        for _ in range(10):
            limit(pace, "ab")
            pace.answered(None)
        assert not pace.limited
        assert pace.pacer.rate is None  # nothing was learned for the key

    def test_one_model_in_a_row_is_that_models(self) -> None:
        pace, _ = key_pace()
        limit(pace, "aaaaaa")
        assert not pace.limited

    def test_busy_models_meet_limits_of_their_own(self) -> None:
        """Busy models refused together (side by side at per-model limits) are not
        taken for the key."""
        pace, _ = key_pace()
        for model in "abcdabcd":
            pace.refused(model, 0.1, 0.0, busy=True)
        assert not pace.limited

    def test_once_limited_two_in_a_row_are_the_keys(self) -> None:
        """A lone quiet 429 (a random refusal) does not cut the key's pace; two in a
        row (its pace probing past the limit) do, and renew the evidence. A busy
        model's is still its own."""
        pace, clock = key_pace()
        limit(pace)
        pace.answered(None)
        cuts = pace.pacer.statistics().cuts
        clock.now = 30.0
        pace.refused("c", 0.1, 29.9, busy=True)
        pace.refused("d", 0.1, 29.9, busy=False)
        assert pace.pacer.statistics().cuts == cuts
        pace.refused("e", 0.1, 29.95, busy=False)
        assert pace.pacer.statistics().cuts == cuts + 1
        clock.now = 30.0 + EVIDENCE_FADES - 1
        assert pace.limited  # renewed by e's 429

    def test_key_wide_headers_are_evidence(self) -> None:
        pace, _ = key_pace()
        pace.key_headers()
        assert pace.limited

    def test_the_evidence_fades_and_the_rate_is_kept(self) -> None:
        pace, clock = key_pace()
        limit(pace)
        learned = pace.pacer.rate
        clock.now = EVIDENCE_FADES - 1
        assert pace.limited
        clock.now = EVIDENCE_FADES + 1
        assert not pace.limited
        assert pace.pacer.rate == learned


class TestWhoWaitsForTheKey:
    def test_new_models_slow_start_after_the_first_few(self) -> None:
        """The first requests of new model names go through the key's slow start (the
        first few at once), a model's later requests only through its own pace."""
        pace, _ = key_pace()
        assert all(pace.paces(f"m{i}", busy=False) for i in range(20))
        starts = [pace.pacer.reserve() for _ in range(SLOW_START_AFTER + 2)]
        assert starts[SLOW_START_AFTER] > starts[0]  # past the burst: paced
        assert not pace.paces("m0", busy=False)  # a second request of m0

    def test_while_limited_every_quiet_model_waits(self) -> None:
        pace, _ = key_pace()
        pace.paces("m0", busy=False)
        limit(pace)
        assert pace.paces("m0", busy=False)
        assert not pace.paces("m0", busy=True)  # a busy model has a pace of its own


class TestEndToEnd:
    async def test_the_sim_limits_the_whole_key(self, sim: SimServer) -> None:
        """SimConfig.key_limit refuses across models: 10 in any second for the key."""
        sim.configure(SimConfig(key_limit=KeyLimit(rpm=600, limiter="sliding")))
        async with ChatClient(sim.base_url) as client:
            results = await asyncgen.generate(
                [{"model": f"m{i}", "prompt": "hi"} for i in range(15)],
                client=client,
                concurrency=15,
                retry=asyncgen.RetryPolicy(max_attempts=1),
            )
        assert sum(r.ok for r in results) == 10
        refused = [r for r in results if not r.ok]
        assert all("key rate limited" in str(r.error) for r in refused)

    async def test_auto_learns_a_key_wide_limit_over_many_models(self, sim: SimServer) -> None:
        """60 model names, one job each, 20 in any second for the whole key, instant
        answers: few 429s (a pace per model alone: ~120 of 150 requests refused, 30 jobs
        lost) and the run takes about what the key's rate allows."""
        sim.configure(SimConfig(key_limit=KeyLimit(rpm=1200, limiter="sliding")))
        began = time.monotonic()
        async with ChatClient(sim.base_url, max_connections=64) as client:
            results = await asyncgen.generate(
                [{"model": f"m{i}", "prompt": "hi"} for i in range(60)],
                client=client,
                concurrency="auto",
            )
            limited, pacing = client.key_limited(), client.pacing()
        took = time.monotonic() - began
        assert all(r.ok for r in results)
        assert sim.stats()["statuses"].get("429", 0) <= 15  # a pace per model: ~120
        assert limited
        assert pacing is not None
        assert pacing.rate is not None
        assert pacing.rate <= 20  # never paced above the key's limit
        assert took <= 3 * 60 / 20  # ideal 3 s; generous for a shared machine

    async def test_per_model_limits_are_not_taken_for_the_key(self, sim: SimServer) -> None:
        """Three models, each 20 in any second of its own, 40 jobs each: they meet their
        limits side by side, and the key is not taken as limited."""
        sim.configure(SimConfig(default=ModelProfile(rpm=1200, limiter="sliding")))
        async with ChatClient(sim.base_url, max_connections=64) as client:
            results = await asyncgen.generate(
                [{"model": f"m{i % 3}", "prompt": "hi"} for i in range(120)],
                client=client,
                concurrency="auto",
            )
            limited, pacing = client.key_limited(), client.pacing("m0")
        assert all(r.ok for r in results)
        assert not limited
        assert pacing is not None
        assert pacing.rate is not None  # each model learned its own


async def test_a_request_cancelled_while_it_waits_gives_its_key_turn_back() -> None:
    """Cancelled after the key's turn but before its model's: the key does not count it
    in flight (a request counted there for ever would inflate every measure after)."""
    from asyncgen.limits._adaptive import AdaptiveConcurrency
    from asyncgen.llm.client._traffic import Traffic

    traffic = Traffic()
    traffic.adaptive = AdaptiveConcurrency(4, 64)
    for _ in range(5):  # the model's slow start is booked ahead: its next turn waits
        traffic.pacer("m").reserve()
    waiting = asyncio.create_task(traffic.admit("m", [], {}, None))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert traffic.key.pacer.statistics().rate is None
    assert traffic.key.pacer.in_flight == 0


async def test_random_429s_over_many_models_do_not_stall_auto(sim: SimServer) -> None:
    """A provider refusing 15 % of requests at random (Retry-After 1 s) over 30 model
    names: no model's pace falls to a crawl (a model whose first request was refused
    paced at one request in 20 s) and every job is answered."""
    from asyncgen.testing import Fault

    fault = Fault(kind="status", status=429, retry_after=1, rate=0.15)
    sim.configure(SimConfig(default=ModelProfile(latency=0.02, faults=[fault])))
    async with ChatClient(sim.base_url, max_connections=64) as client:
        results = await asyncgen.generate(
            [{"model": f"m{i % 30}", "prompt": f"p{i}"} for i in range(150)],
            client=client,
            concurrency="auto",
            retry=asyncgen.RetryPolicy(max_attempts=6),
        )
        paces = [client.pacing(f"m{i}") for i in range(30)]
    assert all(r.ok for r in results)
    learned = [p.rate for p in paces if p is not None and p.rate is not None]
    assert learned  # some models were refused and learned a pace
    assert min(learned) >= 0.1  # was 0.05: one request in 20 s

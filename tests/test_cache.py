"""Fingerprinted resume and the response cache, against the simulator and redis-server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import BaseModel

import asyncgen
from asyncgen import ChatClient, GenerationJob, RedisCache, SqliteCache
from asyncgen.testing import ModelProfile, RedisServer, SimConfig, SimServer, sim_server
from tests.test_cli import asyncgen_cmd, records, write_jobs

HI = [{"role": "user", "content": "hi"}]


class Answer(BaseModel):
    text: str


class TestFingerprint:
    def test_same_request_same_fingerprint_whatever_the_order_of_params(self) -> None:
        """Only what is sent counts: id, metadata and the order of params do not."""
        a = GenerationJob(model="m", prompt="x", params={"temperature": 0, "max_tokens": 5})
        b = GenerationJob(
            model="m",
            prompt="x",
            params={"max_tokens": 5, "temperature": 0},
            id="other",
            metadata={"row": 3},
        )
        assert a.fingerprint() == b.fingerprint()
        assert len(a.fingerprint()) == 64

    @pytest.mark.parametrize(
        "change",
        [
            {"model": "n"},
            {"prompt": "y"},
            {"params": {"temperature": 1}},
            {"response_model": Answer},
        ],
    )
    def test_each_part_of_the_request_changes_it(self, change: dict[str, object]) -> None:
        """Model, messages, params and the response schema are all in it."""
        base = GenerationJob(model="m", prompt="x")
        assert base.model_copy(update=change).fingerprint() != base.fingerprint()

    def test_prompt_and_the_same_messages_are_one_request(self) -> None:
        """prompt="x" sends the same body as one user message "x"."""
        prompt = GenerationJob(model="m", prompt="x")
        messages = GenerationJob(model="m", messages=[{"role": "user", "content": "x"}])
        assert prompt.fingerprint() == messages.fingerprint()


class TestResume:
    def test_a_changed_request_runs_again_and_only_it(self, tmp_path: Path, sim: SimServer) -> None:
        """Ten jobs answered; then two prompts and one model change: the rerun sends
        exactly those three, says so, and their new lines (new fingerprints) win."""
        source, out = write_jobs(tmp_path / "in.jsonl", 10), tmp_path / "out.jsonl"
        first = asyncgen_cmd("run", str(source), "-o", str(out), "--base-url", sim.base_url)
        assert first.returncode == 0, first.stderr
        before = {r["id"]: r["fingerprint"] for r in records(out)}
        lines = [json.loads(line) for line in source.read_text().splitlines()]
        lines[2]["prompt"], lines[5]["prompt"], lines[7]["model"] = "new", "other", "m2"
        source.write_text("".join(json.dumps(line) + "\n" for line in lines))
        sim.reset()
        again = asyncgen_cmd("run", str(source), "-o", str(out), "--base-url", sim.base_url)
        assert again.returncode == 0, again.stderr
        assert sim.requests() == 3
        assert "3 job(s) answered earlier run again: their request changed" in again.stderr
        latest = {r["id"]: r for r in records(out)}  # the last line per id wins
        changed = {i for i in before if latest[i]["fingerprint"] != before[i]}
        assert changed == {"j2", "j5", "j7"}
        assert latest["j7"]["model"] == "m2"
        third = asyncgen_cmd("run", str(source), "-o", str(out), "--base-url", sim.base_url)
        assert third.returncode == 0, third.stderr
        assert sim.requests() == 3  # nothing more to do
        assert "changed" not in third.stderr

    def test_a_line_from_before_fingerprints_is_kept(self, tmp_path: Path, sim: SimServer) -> None:
        """Results written before fingerprints existed cannot be compared: not re-run."""
        source, out = write_jobs(tmp_path / "in.jsonl", 3), tmp_path / "out.jsonl"
        old = {
            "id": "j0",
            "model": "m",
            "ok": True,
            "text": "old",
            "error_type": None,
            "error": None,
            "attempts": 1,
            "latency": 0.1,
            "usage": None,
        }
        out.write_text(json.dumps(old) + "\n")
        done = asyncgen_cmd("run", str(source), "-o", str(out), "--base-url", sim.base_url)
        assert done.returncode == 0, done.stderr
        assert sim.requests() == 2
        assert sorted(str(r["id"]) for r in records(out)) == ["j0", "j1", "j2"]


class TestCache:
    async def test_an_identical_request_is_answered_from_sqlite(
        self, tmp_path: Path, sim: SimServer
    ) -> None:
        """The second identical chat sends nothing: a hit, cost 0, tokens kept."""
        sim.configure(SimConfig(default=ModelProfile(report_cost=True)))
        cache = SqliteCache(tmp_path / "cache.db")
        async with ChatClient(sim.base_url, cache=cache) as client:
            first = await client.chat("m", HI)
            second = await client.chat("m", HI)
            other = await client.chat("m", HI, temperature=0.5)  # another request
        stats = client.statistics()
        assert sim.requests() == 2
        assert (first.cached, second.cached, other.cached) == (False, True, False)
        assert second.text == first.text
        assert second.usage.total_tokens == first.usage.total_tokens > 0
        assert (second.usage.cost, second.usage.cost_source) == (0.0, "cache")
        assert first.usage.cost is not None
        assert first.usage.cost > 0
        assert (stats.cache_hits, stats.cache_misses) == (1, 2)
        assert stats.cache_saved == pytest.approx(first.usage.cost)
        assert stats.requests == 2
        assert len(cache) == 2
        cache.close()

    async def test_redis_cache_is_shared_by_two_clients(
        self, sim: SimServer, redis_server: RedisServer
    ) -> None:
        """One client's answer is another's hit; a job's result says it was cached and
        its cost does not count against max_cost."""
        url = f"{redis_server.url}"
        async with ChatClient(sim.base_url, cache=url) as a:
            await a.chat("m", HI)
        async with ChatClient(sim.base_url, cache=RedisCache(url, ttl=60)) as b:
            results = await asyncgen.generate(
                [GenerationJob(model="m", messages=HI)], client=b, max_cost=1e-9
            )
        assert sim.requests() == 1
        assert results[0].ok
        assert results[0].completion is not None
        assert results[0].completion.cached
        assert results[0].to_record()["cached"] is True

    async def test_a_cache_that_cannot_be_reached_sends_the_request(
        self, sim: SimServer, tmp_path: Path
    ) -> None:
        """Redis down: the work goes on uncached (one warning), nothing fails."""
        async with ChatClient(sim.base_url, cache="redis://127.0.0.1:1/0") as client:
            answers = [await client.chat("m", HI) for _ in range(2)]
        assert all(not a.cached for a in answers)
        assert sim.requests() == 2

    @pytest.mark.parametrize("url", ["memcached://x", "sqlite://", "postgres://db/x"])
    def test_bad_cache_urls_say_what_to_give(self, url: str) -> None:
        with pytest.raises(ValueError, match="sqlite:///"):
            ChatClient("http://127.0.0.1:9/v1", cache=url)

    def test_second_identical_run_sends_nothing(self, tmp_path: Path, sim: SimServer) -> None:
        """`asyncgen run --cache`: the same file into a new output sends 0 requests and
        the summary shows the hits at $0."""
        source = write_jobs(tmp_path / "in.jsonl", 8)
        cache = f"sqlite:///{tmp_path / 'cache.db'}"
        for name in ("a.jsonl", "b.jsonl"):
            done = asyncgen_cmd(
                "run",
                str(source),
                "-o",
                str(tmp_path / name),
                "--base-url",
                sim.base_url,
                "--cache",
                cache,
            )
            assert done.returncode == 0, done.stderr
        assert sim.requests() == 8
        assert "summary: cache: 8 hit(s) at $0" in done.stdout
        second = records(tmp_path / "b.jsonl")
        assert len(second) == 8
        assert all(r["cached"] for r in second)
        first = {r["id"]: r["text"] for r in records(tmp_path / "a.jsonl")}
        assert {r["id"]: r["text"] for r in second} == first

    def test_the_simulator_hits_across_runs(self, tmp_path: Path) -> None:
        """`--sim --cache`: each run's simulator has a new port, yet the second run is
        answered wholly from the cache (the simulator has one name in the keys)."""
        source = write_jobs(tmp_path / "in.jsonl", 5)
        cache = f"sqlite:///{tmp_path / 'cache.db'}"
        for name in ("a.jsonl", "b.jsonl"):
            done = asyncgen_cmd(
                "run", str(source), "-o", str(tmp_path / name), "--sim", "--cache", cache
            )
            assert done.returncode == 0, done.stderr
        assert "summary: cache: 5 hit(s) at $0" in done.stdout
        assert all(r["cached"] for r in records(tmp_path / "b.jsonl"))

    async def test_cache_scope_names_the_api_in_the_keys(self, tmp_path: Path) -> None:
        """Two clients on different URLs share answers only when given one cache_scope."""
        cache = f"sqlite:///{tmp_path / 'cache.db'}"
        with sim_server() as first, sim_server() as second:
            async with ChatClient(first.base_url, cache=cache, cache_scope="local") as a:
                await a.chat("m", [{"role": "user", "content": "hello"}])
            async with ChatClient(second.base_url, cache=cache, cache_scope="local") as b:
                assert (await b.chat("m", [{"role": "user", "content": "hello"}])).cached
            async with ChatClient(second.base_url, cache=cache) as c:
                assert not (await c.chat("m", [{"role": "user", "content": "hello"}])).cached
            assert (first.requests(), second.requests()) == (1, 1)

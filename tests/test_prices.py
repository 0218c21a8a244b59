"""Prices: the provider's cost when it reports one, else the price table's, else unknown
(never 0), counted by max_cost and shown as such."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from genai_prices import Usage as TableUsage
from genai_prices import calc_price

import asyncgen
from asyncgen import BudgetExceededError, ChatClient, GenerationJob, generate
from asyncgen.sim import BatchProfile, ModelProfile, SimConfig
from asyncgen.testing import SimServer
from tests.processes import asyncgen_argv


def silent_about_cost(sim: SimServer, price: float = 0.0) -> None:
    """Answers without usage.cost, as OpenAI's and DeepSeek's are."""
    sim.configure(SimConfig(default=ModelProfile(report_cost=False, price_per_token=price)))


async def test_the_table_prices_a_known_model(sim: SimServer) -> None:
    silent_about_cost(sim)
    client = ChatClient(sim.base_url, provider="openai")
    (result,) = await generate(
        [GenerationJob(model="gpt-4o-mini", prompt="hello there")], client=client
    )
    await client.aclose()
    usage = result.completion.usage  # type: ignore[union-attr]
    expected = calc_price(
        TableUsage(input_tokens=usage.prompt_tokens, output_tokens=usage.completion_tokens),
        "gpt-4o-mini",
        provider_id="openai",
    )
    assert usage.cost == pytest.approx(float(expected.total_price))
    assert usage.cost > 0
    assert usage.cost_source == "table"
    assert client.statistics().cost == pytest.approx(usage.cost)
    assert client.statistics().unpriced == 0


async def test_an_unknown_model_is_unknown_not_free(sim: SimServer) -> None:
    silent_about_cost(sim)
    client = ChatClient(sim.base_url, provider="openai")
    (result,) = await generate(
        [GenerationJob(model="no-such-model-xyz", prompt="hi")], client=client
    )
    await client.aclose()
    assert result.completion is not None
    assert result.completion.usage.cost is None
    stats = client.statistics()
    assert (stats.unpriced, stats.cost) == (1, 0)


async def test_the_provider_s_own_cost_wins(sim: SimServer) -> None:
    sim.configure(SimConfig(default=ModelProfile(price_per_token=1e-6)))  # reports cost
    client = ChatClient(sim.base_url, provider="openai")
    (result,) = await generate([GenerationJob(model="gpt-4o-mini", prompt="hi")], client=client)
    await client.aclose()
    assert result.completion is not None
    assert result.completion.usage.cost == pytest.approx(sim.stats()["spent"])
    assert result.completion.usage.cost_source is None


async def test_max_cost_counts_table_prices(sim: SimServer) -> None:
    """gpt-4o with long answers: the table's prices reach max_cost, the rest is not sent."""
    sim.configure(SimConfig(default=ModelProfile(report_cost=False, reply="word " * 2000)))
    client = ChatClient(sim.base_url, provider="openai")
    jobs = [GenerationJob(model="gpt-4o", prompt=f"essay {i}") for i in range(20)]
    results = await generate(jobs, client=client, concurrency=1, max_cost=0.02)
    await client.aclose()
    sent = sim.stats()["requests"]["gpt-4o"]
    assert 1 <= sent < 20
    assert sum(isinstance(r.error, BudgetExceededError) for r in results) == 20 - sent


async def test_prices_can_be_turned_off(sim: SimServer) -> None:
    silent_about_cost(sim)
    client = ChatClient(sim.base_url, provider="openai", prices=False)
    (result,) = await generate([GenerationJob(model="gpt-4o-mini", prompt="hi")], client=client)
    await client.aclose()
    assert result.completion is not None
    assert result.completion.usage.cost is None


def test_the_cli_summary_says_unknown(sim: SimServer, tmp_path: Path) -> None:
    silent_about_cost(sim)
    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps({"id": "1", "model": "no-such-model-xyz", "prompt": "hi"}) + "\n")
    done = subprocess.run(
        asyncgen_argv(
            "run", str(source), "-o", str(tmp_path / "o.jsonl"), "--base-url", sim.base_url
        ),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    cost_line = next(line for line in done.stdout.splitlines() if "summary: cost" in line)
    assert "unknown" in cost_line
    assert "$0.0000" not in cost_line


async def test_batch_api_answers_are_priced_at_the_batch_discount(sim: SimServer) -> None:
    """A provider that reports no cost (OpenAI): a batched answer costs half the table's
    online price, and says where the figure came from."""
    sim.configure(
        SimConfig(default=ModelProfile(report_cost=False), batch=BatchProfile(complete_after=0.05))
    )
    job = GenerationJob(model="gpt-4o-mini", prompt="hello there")
    async with ChatClient(sim.base_url, provider="openai") as client:
        (result,) = await asyncgen.generate_batch([job], client=client, poll_interval=0.05)
    assert result.completion is not None
    usage = result.completion.usage
    online = calc_price(
        TableUsage(input_tokens=usage.prompt_tokens, output_tokens=usage.completion_tokens),
        "gpt-4o-mini",
        provider_id="openai",
    )
    assert usage.cost == pytest.approx(float(online.total_price) / 2)
    assert usage.cost_source == "table_batch"


@pytest.mark.parametrize(
    ("model", "ref", "provider"),
    [
        ("openai/gpt-4o-mini", "gpt-4o-mini", "openai"),
        ("gpt-4o-mini", "gpt-4o-mini", "openai"),
        ("anthropic/claude-3.5-haiku", "claude-3.5-haiku", "anthropic"),
    ],
)
async def test_behind_an_unknown_url_a_model_is_priced_by_its_name(
    sim: SimServer, model: str, ref: str, provider: str
) -> None:
    """A gateway the table does not know (here the simulator's URL): the model's own
    name finds its price, and cost_source says it was matched by name."""
    silent_about_cost(sim)
    client = ChatClient(sim.base_url)
    (result,) = await generate([GenerationJob(model=model, prompt="hello there")], client=client)
    await client.aclose()
    usage = result.completion.usage  # type: ignore[union-attr]
    expected = calc_price(
        TableUsage(input_tokens=usage.prompt_tokens, output_tokens=usage.completion_tokens),
        ref,
        provider_id=provider,
    )
    assert usage.cost == pytest.approx(float(expected.total_price))
    assert usage.cost_source == "table_by_name"


async def test_a_name_no_provider_lists_stays_unknown(sim: SimServer) -> None:
    silent_about_cost(sim)
    client = ChatClient(sim.base_url)
    (result,) = await generate([GenerationJob(model="m", prompt="hi")], client=client)
    await client.aclose()
    assert result.completion is not None
    assert (result.completion.usage.cost, client.statistics().unpriced) == (None, 1)


def test_the_cli_takes_a_provider_behind_a_base_url(sim: SimServer, tmp_path: Path) -> None:
    """asyncgen run --provider openai --base-url GATEWAY: accepted, sent to the gateway,
    priced from OpenAI's table (cost_source "table", not by name)."""
    silent_about_cost(sim)
    source, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    source.write_text(json.dumps({"id": "1", "model": "gpt-4o-mini", "prompt": "hi"}) + "\n")
    done = subprocess.run(
        asyncgen_argv(
            "run", str(source), "-o", str(out), "--provider", "openai", "--base-url", sim.base_url
        ),
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "OPENAI_API_KEY": "sk-gateway-test"},
    )
    assert done.returncode == 0, done.stderr
    (record,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert record["usage"]["cost_source"] == "table"
    assert record["usage"]["cost"] > 0
    assert sim.requests() == 1
    both = subprocess.run(
        asyncgen_argv(
            "run", str(source), "-o", str(tmp_path / "x.jsonl"), "--sim", "--provider", "openai"
        ),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert both.returncode == 2
    assert "--sim is its own server" in both.stderr

"""Saturating a provider's rate limit without a 429 storm: limiter kinds x latencies.

The simulator (a child process) enforces 600 requests per minute on one model with each
of its limiter kinds: ``bucket`` (GCRA, 1 s of burst), ``sliding`` (10 in any 1-second
window, as OpenAI enforces per-minute limits) and ``fixed`` (600 per clock minute), and
answers in 0 s or 0.5 s. A tokens-per-minute scenario (60,000 tpm, sliding) follows.
Contenders, side by side in one run:

- ``configured``: a RateLimiter set to exactly the server's limit;
- ``auto``: ``concurrency="auto"`` with nothing configured (learned pacing + AIMD);
- ``plain``: a bounded gather at concurrency 32 with asyncgen's retries, no limiter;
- ``openai_sdk``: openai.AsyncOpenAI with its default retries, concurrency 32;
- ``litellm_router``: LiteLLM's Router with ``rpm`` set (only if litellm is installed);
- ``shared_4_workers_1_run``: four ``asyncgen worker`` processes on a Redis queue and one
  ``asyncgen run``, all at ``--rpm`` equal to the server's, sharing one limiter in that
  Redis (``--rate-limit-url``); the jobs are split 4/5 to the queue, 1/5 to the run.

The key-wide scenarios put one limit on the whole key (``SimConfig.key_limit``: 10 in any
1-second window) over 100 and 1,000 model names with one job each, as OpenRouter's free
tier or a gateway in front of several models does; the models have no limits of their
own. (issue 28: auto <= 3 % 429s, <= 1.2 x ideal, 0 lost.) Two more contenders run only
there: ``auto_4_workers_shared``, four ``asyncgen worker --concurrency auto`` processes on
a Redis queue with no --rpm, sharing the key's learned pace in the queue's Redis; and
``auto_4_workers_alone``, the same with a limiter name per worker (each learns alone).

"ideal" is jobs / rate + the latency of the last answer (what a client that respects the
rate needs); for tokens, the rate a client can reach under the server's admission rule
(requests in flight count at their estimate: see the tpm scenario's comment). The fixed
window here is 5 s (50 requests per 5 s, the same rate), and a fresh window admits all 50
at once, so a client can beat the ideal there.

Targets (issue 11): auto <= 3 % 429s, <= 1.15 x ideal, 0 lost; configured <= 1 % 429s,
<= 1.05 x ideal.

Run: python benchmarks/bench_ratelimit.py [--jobs 200] [--only auto,configured]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, Literal

import openai

import asyncgen
from asyncgen.testing import (
    KeyLimit,
    ModelProfile,
    RedisServer,
    SimConfig,
    SimServer,
    sim_server,
)

sys.path.insert(0, str(Path(__file__).parent))
from _common import asyncgen_argv, write_report

CONCURRENCY = 32
PROMPT = "Summarise this in one line: " + "lorem ipsum " * 30  # ~100 tokens
PARAMS = {"max_tokens": 100}
RPM = 600
TPM = 60_000

# A run returns its failed jobs, or (failed jobs, its own makespan) when it must start
# processes first: their start-up is not part of the work.
Run = Callable[[str, int, dict[str, Any]], Coroutine[Any, Any, int | tuple[int, float]]]


async def run_configured(base_url: str, n: int, limits: dict[str, Any]) -> int:
    limiter = asyncgen.RateLimiter(limits.get("rpm"), limits.get("tpm"))
    async with asyncgen.ChatClient(base_url, max_connections=64, rate_limit=limiter) as client:
        return await failures(client, n, CONCURRENCY, limits)


async def run_auto(base_url: str, n: int, limits: dict[str, Any]) -> int:
    async with asyncgen.ChatClient(base_url, max_connections=64) as client:
        return await failures(client, n, "auto", limits)


async def run_plain(base_url: str, n: int, limits: dict[str, Any]) -> int:
    async with asyncgen.ChatClient(base_url, max_connections=64) as client:
        return await failures(client, n, CONCURRENCY, limits)


def model_name(i: int, limits: dict[str, Any]) -> str:
    """Job i's model: "m", or one of ``limits["models"]`` names in turn."""
    return f"m{i % limits['models']}" if limits.get("models") else "m"


async def failures(
    client: asyncgen.ChatClient,
    n: int,
    concurrency: int | Literal["auto"],
    limits: dict[str, Any],
) -> int:
    jobs = [
        asyncgen.GenerationJob(model=model_name(i, limits), prompt=PROMPT, params=PARAMS)
        for i in range(n)
    ]
    results = await asyncgen.generate(jobs, client=client, concurrency=concurrency, deadline=None)
    return sum(not r.ok for r in results)


async def run_openai(base_url: str, n: int, limits: dict[str, Any]) -> int:
    client = openai.AsyncOpenAI(base_url=base_url, api_key="sim")  # default: 2 retries
    sem = asyncio.Semaphore(CONCURRENCY)

    async def one(model: str) -> None:
        async with sem:
            await client.chat.completions.create(
                model=model, messages=[{"role": "user", "content": PROMPT}], max_tokens=100
            )

    outcomes = await asyncio.gather(
        *(one(model_name(i, limits)) for i in range(n)), return_exceptions=True
    )
    await client.close()
    return sum(isinstance(o, BaseException) for o in outcomes)


async def run_litellm(base_url: str, n: int, limits: dict[str, Any]) -> int:
    # Loopback only: LiteLLM would otherwise fetch its model price map from the internet.
    os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    import litellm  # type: ignore[import-not-found, unused-ignore]
    from litellm import Router  # type: ignore[import-not-found, attr-defined, unused-ignore]

    litellm.telemetry = False

    deployment = {
        "model_name": "m",
        "litellm_params": {
            "model": "openai/m",
            "api_base": base_url,
            "api_key": "sim",
            "rpm": limits.get("rpm"),
            "tpm": limits.get("tpm"),
        },
    }
    router = Router(model_list=[deployment], num_retries=2)
    sem = asyncio.Semaphore(CONCURRENCY)

    async def one() -> None:
        async with sem:
            await router.acompletion(
                model="m", messages=[{"role": "user", "content": PROMPT}], max_tokens=100
            )

    outcomes = await asyncio.gather(*(one() for _ in range(n)), return_exceptions=True)
    return sum(isinstance(o, BaseException) for o in outcomes)


async def start_workers(
    queue: asyncgen.JobQueue, url: str, flags: list[list[str]]
) -> list[subprocess.Popen[bytes]]:
    """One ``asyncgen worker`` process on ``queue`` (at ``url``) per entry of ``flags``,
    seen by the queue before this returns (up to a minute): start-up is not timed."""
    workers = [
        subprocess.Popen(  # noqa: ASYNC220
            asyncgen_argv("worker", url, *own),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for own in flags
    ]
    for _ in range(1200):
        if (await queue.statistics()).workers >= len(workers):
            break
        await asyncio.sleep(0.05)
    return workers


def stop_workers(workers: list[subprocess.Popen[bytes]]) -> None:
    for worker in workers:
        worker.send_signal(signal.SIGTERM)
    for worker in workers:
        worker.wait(30)


async def run_shared(base_url: str, n: int, limits: dict[str, Any]) -> tuple[int, float]:
    """Four worker processes and one `asyncgen run`, one shared limiter in Redis.

    The workers are started (and seen by the queue) before the clock starts; the run
    process starts with the clock, as a user's would.
    """
    with RedisServer() as server, tempfile.TemporaryDirectory() as folder:
        url = f"{server.url}?queue=bench"
        queue = asyncgen.open_queue(url)
        queued = n - n // 5
        jobs = [
            asyncgen.GenerationJob(model="m", prompt=PROMPT, params=PARAMS) for _ in range(queued)
        ]
        flags = ["--base-url", base_url, "--rpm", str(limits.get("rpm") or 0)]
        if limits.get("tpm"):
            flags = ["--base-url", base_url, "--tpm", str(limits["tpm"])]
        shared = ["--rate-limit-url", server.url, "--rate-limit-name", "bench"]
        workers = await start_workers(queue, url, [["--concurrency", "8", *flags, *shared]] * 4)
        began = time.perf_counter()
        await queue.submit_many(jobs, max_attempts=3)
        source, out = Path(folder) / "in.jsonl", Path(folder) / "out.jsonl"
        source.write_text(
            "".join(
                json.dumps({"id": str(i), "model": "m", "prompt": PROMPT, "params": PARAMS}) + "\n"
                for i in range(n // 5)
            )
        )
        command = asyncgen_argv("run", str(source), "-o", str(out))
        command += ["--concurrency", "8", *flags, *shared]
        run = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # noqa: ASYNC220
        while True:
            stats = await queue.statistics()
            if stats.completed + stats.dead >= queued and run.poll() is not None:
                break
            await asyncio.sleep(0.05)
        makespan = time.perf_counter() - began
        stop_workers(workers)
        await queue.aclose()
        failed_run = sum(not json.loads(line)["ok"] for line in out.read_text().splitlines())
        missing = n // 5 - len(out.read_text().splitlines())
        return stats.dead + failed_run + missing, makespan


async def run_auto_workers(
    base_url: str, n: int, limits: dict[str, Any], *, share: bool
) -> tuple[int, float]:
    """Four ``asyncgen worker --concurrency auto`` processes on a Redis queue, no --rpm:
    the key's pace they learn is shared in the queue's Redis, or (``share=False``) each
    learns its own (a --rate-limit-name per worker)."""
    with RedisServer() as server:
        url = f"{server.url}?queue=bench"
        queue = asyncgen.open_queue(url)
        jobs = [
            asyncgen.GenerationJob(model=model_name(i, limits), prompt=PROMPT, params=PARAMS)
            for i in range(n)
        ]
        auto = ["--base-url", base_url, "--concurrency", "auto"]
        workers = await start_workers(
            queue,
            url,
            [auto + ([] if share else ["--rate-limit-name", f"worker-{w}"]) for w in range(4)],
        )
        began = time.perf_counter()
        await queue.submit_many(jobs, max_attempts=3)
        while True:
            stats = await queue.statistics()
            if stats.completed + stats.dead >= n:
                break
            await asyncio.sleep(0.05)
        makespan = time.perf_counter() - began
        stop_workers(workers)
        await queue.aclose()
        return stats.dead, makespan


async def run_auto_shared(base_url: str, n: int, limits: dict[str, Any]) -> tuple[int, float]:
    return await run_auto_workers(base_url, n, limits, share=True)


async def run_auto_alone(base_url: str, n: int, limits: dict[str, Any]) -> tuple[int, float]:
    return await run_auto_workers(base_url, n, limits, share=False)


CONTENDERS: dict[str, Run] = {
    "configured": run_configured,
    "auto": run_auto,
    "plain": run_plain,
    "openai_sdk": run_openai,
}
if importlib.util.find_spec("litellm") is not None:
    CONTENDERS["litellm_router"] = run_litellm
CONTENDERS["shared_4_workers_1_run"] = run_shared
CONTENDERS["auto_4_workers_shared"] = run_auto_shared
CONTENDERS["auto_4_workers_alone"] = run_auto_alone


def measure(
    run: Run, sim: SimServer, n: int, limits: dict[str, Any], ideal: float
) -> dict[str, Any]:
    sim.reset()
    began = time.perf_counter()
    outcome = asyncio.run(run(sim.base_url, n, limits))
    makespan = time.perf_counter() - began
    failed = outcome if isinstance(outcome, int) else outcome[0]
    makespan = makespan if isinstance(outcome, int) else outcome[1]
    stats = sim.stats()
    refused = stats["statuses"].get("429", 0)
    return {
        "makespan_s": round(makespan, 2),
        "vs_ideal": round(makespan / ideal, 3),
        "requests": stats["total"],
        "http_429": refused,
        "http_429_share": round(refused / max(1, stats["total"]), 4),
        "failed_jobs": failed,
    }


# the contenders of the key-wide cells, and the ones that run only there
KEY_WIDE = (
    "configured",
    "auto",
    "plain",
    "openai_sdk",
    "auto_4_workers_shared",
    "auto_4_workers_alone",
)
ONLY_KEY_WIDE = ("auto_4_workers_shared", "auto_4_workers_alone")


def scenario(
    name: str,
    profile: ModelProfile,
    n: int,
    limits: dict[str, Any],
    ideal: float,
    only: set[str],
    key_limit: KeyLimit | None = None,
) -> dict[str, Any]:
    figures: dict[str, Any] = {
        "limits": limits,
        "jobs": n,
        "ideal_s": round(ideal, 2),
        "limiter": (key_limit or profile).limiter,
        "latency": profile.latency,
    }
    print(f"[{name}] ideal {ideal:.1f} s", flush=True)
    with sim_server(SimConfig(default=profile, key_limit=key_limit), process=True) as sim:
        for contender, run in CONTENDERS.items():
            if (only and contender not in only) or (key_limit and contender not in KEY_WIDE):
                continue
            if not key_limit and contender in ONLY_KEY_WIDE:
                continue
            figures[contender] = measure(run, sim, n, limits, ideal)
            print(f"  {contender:16} {figures[contender]}", flush=True)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--only", default="", help="comma-separated contenders")
    parser.add_argument("--kinds", default="bucket,sliding,fixed")
    parser.add_argument("--latencies", default="0,0.5")
    parser.add_argument("--no-tpm", action="store_true")
    parser.add_argument(
        "--key-models", default="100,1000", help="model names behind one key-wide limit"
    )
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    n, only = args.jobs, {c for c in args.only.split(",") if c}
    figures: dict[str, Any] = {"scenarios": {}}
    for kind in [k for k in args.kinds.split(",") if k]:
        for latency in (float(x) for x in args.latencies.split(",")):
            profile = ModelProfile.model_validate(
                {"latency": latency, "rpm": RPM, "limiter": kind, "fixed_window": 5.0}
            )
            name = f"{RPM} rpm {kind} latency {latency:g}"
            figures["scenarios"][name] = scenario(
                name, profile, n, {"rpm": RPM}, n / (RPM / 60) + latency, only
            )
    for models in (int(x) for x in args.key_models.split(",") if x):
        for latency in (float(x) for x in args.latencies.split(",")):
            key = KeyLimit(rpm=RPM, limiter="sliding")
            name = f"{RPM} rpm key-wide sliding, {models} models, latency {latency:g}"
            limits = {"rpm": RPM, "models": models}
            ideal = models / (RPM / 60) + latency
            profile = ModelProfile(latency=latency)
            figures["scenarios"][name] = scenario(
                name, profile, models, limits, ideal, only, key_limit=key
            )
    if not args.no_tpm:
        # The sim charges an estimate at admission (prompt at 4 characters a token plus
        # max_tokens) and corrects it to the reported usage when it answers (prompt plus
        # its echo reply "[m] <first 120 characters>"). It admits a request when the last
        # second's charges plus the request's estimate fit in tpm / 60, so requests in
        # flight count at their estimate. At a steady rate r, with latency L:
        #   r * (L * estimate + (1 - L) * actual) + estimate <= tpm / 60,
        # which bounds every client, however well it paces; "ideal" is that bound (what a
        # client that respects this server's rule needs). The naive bound, jobs x actual
        # tokens / rate, is reported beside it.
        latency = 0.5
        actual = -(-len(PROMPT) // 4) + -(-len(f"[m] {PROMPT[:120]}") // 4)
        estimate = -(-len(PROMPT) // 4) + PARAMS["max_tokens"]
        per_second = TPM / 60
        rate = (per_second - estimate) / (latency * estimate + (1 - latency) * actual)
        ideal = n / rate + latency
        naive = n * actual / per_second + latency
        profile = ModelProfile(latency=latency, tpm=TPM, limiter="sliding")
        name = f"{TPM} tpm sliding latency 0.5"
        result = scenario(name, profile, n, {"tpm": TPM}, ideal, only)
        result["naive_ideal_s"] = round(naive, 2)
        for cell in result.values():
            if isinstance(cell, dict) and "makespan_s" in cell:
                cell["vs_naive_ideal"] = round(cell["makespan_s"] / naive, 3)
        figures["scenarios"][name] = result
        figures["tokens_per_job"] = {"actual": actual, "estimate_at_admission": estimate}
    figures["targets"] = {
        "configured": {"vs_ideal": 1.05, "http_429_share": 0.01},
        "auto": {"vs_ideal": 1.15, "http_429_share": 0.03, "failed_jobs": 0},
        "shared_4_workers_1_run": {"vs_ideal": 1.10, "http_429_share": 0.01},
        "auto, key-wide": {"vs_ideal": 1.2, "http_429_share": 0.03, "failed_jobs": 0},
        "auto_4_workers_shared, key-wide": "the pace learned once for the key (issue 28)",
    }
    print(f"wrote {write_report('bench_ratelimit', figures, args.json)}")


if __name__ == "__main__":
    main()

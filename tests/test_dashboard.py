"""The dashboard in a real browser: Debian's chromium, headless, driven by Playwright,
against real SQLite and Redis queues with real worker processes. Screenshots of each
page go to test-artifacts/dashboard/ (not committed) for a reviewer to look at."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import structlog
from playwright.async_api import Browser, Page, async_playwright

from asyncgen import ChatClient, GenerationJob, JobState, open_queue, open_worker
from asyncgen.dashboard import create_app
from asyncgen.queue import JobQueue
from asyncgen.sim import Fault, ModelProfile, SimConfig
from asyncgen.testing import RedisServer, SimServer
from tests import queue_tasks
from tests.processes import asyncgen_argv, worker_process
from tests.servers import InThread
from tests.test_queue import backend_url

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SHOTS = Path(__file__).parent.parent / "test-artifacts" / "dashboard"
TOKEN = "dashboard-test-token-5f2c"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as driver:
        launched = await driver.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        yield launched
        await launched.close()


@pytest.fixture(params=["sqlite", "redis"])
def queue_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return backend_url(request, request.param, tmp_path)


def serve(url: str, token: str | None = None) -> InThread:
    """The dashboard for the queue at ``url`` (its own connections, closed at shutdown)."""
    return InThread(create_app(url, token=token))


@pytest.fixture
def served() -> Iterator[list[InThread]]:
    running: list[InThread] = []
    yield running
    for server in running:
        server.stop()
        server.loop.close()


async def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


async def count(page: Page, state: str) -> int:
    return int(await page.inner_text(f'[data-count="{state}"]'))


async def test_the_overview_counts_change_as_jobs_finish(
    browser: Browser, queue_url: str, tmp_path: Path, served: list[InThread]
) -> None:
    """Real worker process; the page is never reloaded, yet its completed count climbs
    to the total and its pending count falls to 0."""
    queue = open_queue(queue_url)
    await queue.submit_many([queue_tasks.add.call(i, 1, 0.1) for i in range(40)])
    server = serve(queue_url)
    served.append(server)
    page = await browser.new_page()
    await page.goto(server.url)
    assert await count(page, "pending") == 40
    assert await count(page, "completed") == 0
    worker = worker_process(queue_url, tmp_path / "tasks.log", "--concurrency", "4")
    try:
        await page.wait_for_function(
            "() => Number(document.querySelector('[data-count=\"completed\"]').textContent) > 0",
            timeout=30_000,
        )
        await page.wait_for_function(
            "() => Number(document.querySelector('[data-count=\"completed\"]').textContent) === 40",
            timeout=60_000,
        )
        assert await count(page, "pending") == 0
        await page.wait_for_function(  # the by-kind table follows too
            "() => document.querySelector('#kinds tbody').textContent.includes('40')"
            " && !/\\b40\\b/.test(document.querySelector('#kinds tbody td:nth-child(2)')"
            ".textContent)",
            timeout=10_000,
        )
        # The worker's own report (every 5 s): its row, and 40 ok runs of "add".
        await page.wait_for_function(
            "() => document.querySelector('#models tbody').textContent.includes('add')"
            " && document.querySelector('#models tbody td:nth-child(3)').textContent === '40'",
            timeout=15_000,
        )
        await page.wait_for_function(  # the worker's row, with the kinds it serves
            "() => document.querySelector('#workers tbody').textContent.includes('add, shout')",
            timeout=15_000,
        )
        await page.wait_for_timeout(2500)  # one more poll: the charts have points
        await shot(page, f"overview-{queue_url.split(':')[0]}")
    finally:
        worker.terminate()
        worker.wait(30)
    await queue.aclose()


async def test_requeue_from_the_dead_letter_page_runs_the_job_again(
    browser: Browser, queue_url: str, tmp_path: Path, sim: SimServer, served: list[InThread]
) -> None:
    """Signed in with the token: select a dead job, Requeue; a worker runs it again and
    it completes."""
    once = Fault(kind="status", status=503, first=1)
    sim.configure(SimConfig(models={"flaky": ModelProfile(faults=[once])}))
    queue = open_queue(queue_url)
    dead_id = await queue.submit(GenerationJob(model="flaky", prompt="again"), max_attempts=1)
    worker = worker_process(queue_url, tmp_path / "tasks.log", "--base-url", sim.base_url)
    try:
        for _ in range(300):
            if (await queue.status(dead_id)).state is JobState.DEAD:
                break
            await asyncio.sleep(0.05)
        server = serve(queue_url, token=TOKEN)
        served.append(server)
        page = await browser.new_page()
        await page.goto(f"{server.url}/dead")
        await shot(page, f"dead-letters-{queue_url.split(':')[0]}")
        assert "ServerError" in await page.inner_text("main")
        await page.goto(f"{server.url}/login")
        await page.fill("input[name=token]", TOKEN)
        await page.click("form[action='/login'] button")
        await page.goto(f"{server.url}/dead")
        await page.check(f'input[value="{dead_id}"]')
        await page.click("#requeue")
        assert "requeued 1 of 1" in await page.inner_text("#done")
        assert (await queue.result(dead_id, timeout=30))["text"] == "[flaky] again"
        await page.goto(f"{server.url}/jobs/{dead_id}")
        assert "completed" in await page.inner_text("main")
        assert "[flaky] again" in await page.inner_text("#result")
        attempts = await page.inner_text("#attempts")  # the dead run, then the good one
        assert "dead" in attempts
        assert "ServerError" in attempts
        assert "ok" in attempts
        await shot(page, f"job-{queue_url.split(':')[0]}")
    finally:
        worker.terminate()
        worker.wait(30)
    await queue.aclose()


async def test_a_script_in_a_prompt_renders_as_text(
    browser: Browser, tmp_path: Path, served: list[InThread]
) -> None:
    url = f"sqlite:///{tmp_path}/jobs.db"
    queue = open_queue(url)
    attack = (
        '<script>window.__xss = 1</script><img src=x onerror="window.__xss = 2">'
        " key sk-livesecret1234567890"
    )
    job_id = await queue.submit(GenerationJob(model="<b>m</b>", prompt=attack))
    server = serve(url)
    served.append(server)
    page = await browser.new_page()
    for path in (f"/jobs/{job_id}", "/jobs", "/jobs?model=%3Cb%3Em%3C%2Fb%3E"):
        await page.goto(server.url + path)
        assert await page.evaluate("() => window.__xss === undefined")
    await page.goto(f"{server.url}/jobs/{job_id}")
    payload = await page.inner_text("#payload")
    assert "<script>window.__xss = 1</script>" in payload  # shown, as text
    assert "sk-livesecret1234567890" not in await page.content()
    await shot(page, "job-xss")
    await page.goto(f"{server.url}/jobs")
    await shot(page, "jobs")
    await queue.aclose()


async def test_actions_without_the_token_are_refused(
    tmp_path: Path, served: list[InThread]
) -> None:
    """Read-only without a token; with one, no session or no form token: 403, nothing done."""
    url = f"sqlite:///{tmp_path}/jobs.db"
    queue = open_queue(url)
    job_id = await queue.submit(queue_tasks.add.call(1, 2))
    read_only, guarded = serve(url), serve(url, token=TOKEN)
    served.extend([read_only, guarded])
    async with httpx.AsyncClient(follow_redirects=False) as http:
        refused = await http.post(f"{read_only.url}/actions/cancel", data={"ids": job_id})
        assert refused.status_code == 403
        assert "read-only" in refused.text
        no_session = await http.post(f"{guarded.url}/actions/cancel", data={"ids": job_id})
        assert no_session.status_code == 403
        wrong = await http.post(f"{guarded.url}/login", data={"token": "guess"})
        assert wrong.status_code == 403
        assert "asyncgen_dashboard" not in wrong.cookies
        signed = await http.post(f"{guarded.url}/login", data={"token": TOKEN})
        assert signed.status_code == 303
        cookie = signed.cookies["asyncgen_dashboard"]
        assert TOKEN not in cookie
        # A cross-site form would carry the cookie at most, never the form token.
        http.cookies.set("asyncgen_dashboard", cookie)
        forged = await http.post(f"{guarded.url}/actions/cancel", data={"ids": job_id})
        assert forged.status_code == 403
        page = await http.get(f"{guarded.url}/jobs/{job_id}")
        assert 'name="form_token"' in page.text  # signed in: the cancel form is there
        assert TOKEN not in page.text
    assert (await queue.status(job_id)).state is JobState.PENDING
    await queue.aclose()


async def test_pages_stay_fast_with_100000_jobs(tmp_path: Path, served: list[InThread]) -> None:
    """100,000 jobs in SQLite, 1,000 of them dead: each page answers well inside a
    generous bound (target 300 ms; the figures go to test-artifacts/dashboard/)."""
    url = f"sqlite:///{tmp_path}/big.db"
    queue = open_queue(url)
    doomed = await queue.submit_many(
        [queue_tasks.explode.call(f"e{i}") for i in range(1_000)], max_attempts=1
    )
    for _ in range(10):
        for record in await queue.store.claim_many("w", kinds=["explode"], lease=60, limit=100):
            await queue.store.fail(
                record.id, "w", error_type="RuntimeError", error="boom", retry_at=None
            )
    assert (await queue.statistics()).dead == len(doomed)
    for start in range(0, 99_000, 9_900):
        await queue.submit_many([queue_tasks.add.call(i, 0) for i in range(start, start + 9_900)])
    server = serve(url)
    served.append(server)
    timings: dict[str, float] = {}
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        for path in ("/", "/api/overview", "/jobs", "/jobs?state=pending&page=3", "/dead"):
            best = float("inf")
            for _ in range(3):
                began = time.perf_counter()
                reply = await http.get(path)
                best = min(best, time.perf_counter() - began)
                assert reply.status_code == 200
            timings[path] = round(best * 1000, 1)
    SHOTS.mkdir(parents=True, exist_ok=True)
    (SHOTS / "timings-100000-jobs.json").write_text(json.dumps(timings, indent=2))
    assert all(ms < 1500 for ms in timings.values()), timings
    await queue.aclose()


def start_run(*args: str) -> subprocess.Popen[str]:
    """``asyncgen run ARGS`` in a child process; its standard error is kept."""
    command = asyncgen_argv("run", *args)
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


async def test_a_running_batch_on_its_page(
    browser: Browser, sim: SimServer, tmp_path: Path
) -> None:
    """``asyncgen run --dashboard PORT``: the page follows the run without a reload
    (done climbs, failures and the per-model table fill in)."""
    sim.configure(
        SimConfig(
            default=ModelProfile(latency=0.15),
            models={"flaky": ModelProfile(faults=[Fault(kind="status", status=400)])},
        )
    )
    source = tmp_path / "jobs.jsonl"
    models = ["m1", "m2", "m1", "m2", "flaky"]
    source.write_text(
        "".join(
            json.dumps({"id": str(i), "model": models[i % 5], "prompt": f"p{i}"}) + "\n"
            for i in range(40)
        )
    )
    with socket.socket() as probe:  # a free port for the page
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    run = start_run(
        str(source),
        "-o",
        str(tmp_path / "out.jsonl"),
        "--base-url",
        sim.base_url,
        "--concurrency",
        "2",
        "--retries",
        "1",
        "--dashboard",
        str(port),
    )
    try:
        url = f"http://127.0.0.1:{port}/"
        deadline = time.monotonic() + 30
        async with httpx.AsyncClient() as http:
            while True:
                try:
                    if (await http.get(url)).status_code == 200:
                        break
                except httpx.TransportError:
                    assert time.monotonic() < deadline, "the batch page never came up"
                    await asyncio.sleep(0.05)
        page = await browser.new_page()
        await page.goto(url)
        first = int(await page.inner_text('[data-run="done"]'))
        await page.wait_for_function(
            f"() => Number(document.querySelector('[data-run=\"done\"]').textContent) > {first}",
            timeout=20_000,
        )
        await page.wait_for_function(
            "() => document.querySelector('#failures').textContent.includes('BadRequestError')",
            timeout=20_000,
        )
        assert "m1" in await page.inner_text("#models")
        await shot(page, "batch")
    finally:
        _, errors = run.communicate(timeout=60)
    assert run.returncode == 1  # the flaky lines failed; the run says so
    assert f"http://127.0.0.1:{port}/" in errors


async def test_sessions_are_random_and_end_at_sign_out(
    tmp_path: Path, served: list[InThread]
) -> None:
    """Each sign-in gets its own random session (not derived from the token); after
    sign-out that cookie no longer signs anyone in, and its form token acts no more."""
    url = f"sqlite:///{tmp_path}/jobs.db"
    queue = open_queue(url)
    job_id = await queue.submit(queue_tasks.add.call(1, 2))
    guarded = serve(url, token=TOKEN)
    served.append(guarded)
    async with httpx.AsyncClient(follow_redirects=False) as first, httpx.AsyncClient() as other:
        one = (await first.post(f"{guarded.url}/login", data={"token": TOKEN})).cookies
        two = (await other.post(f"{guarded.url}/login", data={"token": TOKEN})).cookies
        assert one["asyncgen_dashboard"] != two["asyncgen_dashboard"]
        page = await first.get(f"{guarded.url}/jobs/{job_id}")
        form_token = page.text.split('name="form_token" value="')[1].split('"')[0]
        stolen = one["asyncgen_dashboard"]
        out = await first.post(f"{guarded.url}/logout")
        assert out.status_code == 303
        first.cookies.set("asyncgen_dashboard", stolen)  # the old cookie, kept by someone
        again = await first.get(f"{guarded.url}/jobs/{job_id}")
        assert 'name="form_token"' not in again.text
        acted = await first.post(
            f"{guarded.url}/actions/cancel", data={"ids": job_id, "form_token": form_token}
        )
        assert acted.status_code == 403
        still = await other.get(f"{guarded.url}/jobs/{job_id}")  # the other session lives on
        assert 'name="form_token"' in still.text
    assert (await queue.status(job_id)).state is JobState.PENDING
    await queue.aclose()


async def test_failed_sign_ins_are_limited_per_client(
    tmp_path: Path, served: list[InThread]
) -> None:
    """Five wrong tokens from one address, then even the right one waits (429 with
    Retry-After): guessing the token is slow."""
    guarded = serve(f"sqlite:///{tmp_path}/jobs.db", token=TOKEN)
    served.append(guarded)
    async with httpx.AsyncClient(follow_redirects=False) as http:
        for _ in range(5):
            wrong = await http.post(f"{guarded.url}/login", data={"token": "guess"})
            assert wrong.status_code == 403
        held = await http.post(f"{guarded.url}/login", data={"token": TOKEN})
        assert held.status_code == 429
        assert int(held.headers["retry-after"]) > 0
        assert "Too many failed sign-ins" in held.text
        assert "asyncgen_dashboard" not in held.cookies


async def test_action_buttons_show_only_when_signed_in(
    tmp_path: Path, served: list[InThread]
) -> None:
    """The dead-letter page offers requeue and cancel only to a signed-in session."""
    url = f"sqlite:///{tmp_path}/jobs.db"
    queue = open_queue(url)
    queue.register(queue_tasks.explode)
    dead = await queue.submit(queue_tasks.explode.call("x"), max_attempts=1)
    async with open_worker_until_dead(queue, dead):
        pass
    guarded = serve(url, token=TOKEN)
    served.append(guarded)
    async with httpx.AsyncClient() as http:
        anonymous = await http.get(f"{guarded.url}/dead")
        assert dead[:12] in anonymous.text
        assert 'id="requeue"' not in anonymous.text
        assert 'type="checkbox"' not in anonymous.text
        await http.post(f"{guarded.url}/login", data={"token": TOKEN})
        signed = await http.get(f"{guarded.url}/dead")
        assert 'id="requeue"' in signed.text
        assert 'type="checkbox"' in signed.text
    await queue.aclose()


@contextlib.asynccontextmanager
async def open_worker_until_dead(queue: JobQueue, job_id: str) -> AsyncIterator[None]:
    async with open_worker(queue):
        for _ in range(200):
            if (await queue.status(job_id)).state is JobState.DEAD:
                break
            await asyncio.sleep(0.05)
        yield


async def test_a_queue_that_cannot_be_reached_is_a_page_that_retries(
    browser: Browser, served: list[InThread]
) -> None:
    """Redis stopped: pages answer 503 with a sentence and retry on their own, the API
    says so in JSON, the live overview shows a banner; no traceback is logged; with
    Redis back, the pages work again."""
    with RedisServer() as redis_server:
        url = f"{redis_server.url}?queue=down"
        server = serve(url)
        served.append(server)
        page = await browser.new_page()
        await page.goto(server.url)
        assert await page.is_hidden("#unreachable")
        redis_server.stop(kill=True)
        with structlog.testing.capture_logs() as logs:
            await page.wait_for_selector("#unreachable", state="visible", timeout=15_000)
            async with httpx.AsyncClient() as http:
                down = await http.get(f"{server.url}/jobs")
                api = await http.get(f"{server.url}/api/overview")
        assert down.status_code == 503
        assert "The queue cannot be reached" in down.text
        assert 'http-equiv="refresh"' in down.text
        assert "Traceback" not in down.text
        assert api.status_code == 503
        assert api.json()["error"] == "queue unreachable"
        assert all(line.get("log_level") != "error" for line in logs)
        await shot(page, "overview-unreachable")
        redis_server.restart()
        await page.wait_for_selector("#unreachable", state="hidden", timeout=15_000)
        async with httpx.AsyncClient() as http:
            assert (await http.get(f"{server.url}/jobs")).status_code == 200


async def test_the_spend_card_holds_a_large_sum(
    browser: Browser, tmp_path: Path, served: list[InThread]
) -> None:
    """A worker reporting $12,345,678.9 of spend: the card shows cents and its text fits
    inside the card."""
    url = f"sqlite:///{tmp_path}/jobs.db"
    queue = open_queue(url)
    client = {"requests": 1, "rate_limited": 0, "total_tokens": 10, "cost": 12345678.912345}
    await queue.store.report("w1", {"state": "running", "client": client}, ttl=60)
    server = serve(url)
    served.append(server)
    page = await browser.new_page(viewport={"width": 800, "height": 900})
    await page.goto(server.url)
    assert await page.inner_text('[data-client="cost"]') == "12345678.91"
    fits = await page.evaluate(
        "() => { const el = document.querySelector('[data-client=\"cost\"]');"
        " return el.scrollWidth <= el.clientWidth + 1; }"
    )
    assert fits
    await queue.aclose()


async def test_the_overview_sums_what_the_workers_clients_report(
    tmp_path: Path, sim: SimServer, served: list[InThread]
) -> None:
    """Each worker reports its client's statistics as they are
    (ClientStatistics.to_record(), no hand-picked copy); the overview sums them."""
    url = f"sqlite:///{tmp_path}/jobs.db"
    queue = open_queue(url)
    async with ChatClient(sim.base_url) as client:
        for prompt in ("one", "two"):
            await client.chat("m", [{"role": "user", "content": prompt}])
        record = client.statistics().to_record()
    assert record["requests"] == 2
    assert record["total_tokens"] > 0
    for name in ("w1", "w2"):
        await queue.store.report(name, {"state": "running", "client": record}, ttl=60)
    server = serve(url)
    served.append(server)
    async with httpx.AsyncClient() as http:
        shown = (await http.get(f"{server.url}/api/overview")).json()["client"]
    assert shown["requests"] == 4
    assert shown["tokens"] == 2 * record["total_tokens"]
    assert shown["cost"] == pytest.approx(2 * record["cost"])
    await queue.aclose()


async def test_groups_and_progress_on_the_pages(
    browser: Browser, queue_url: str, tmp_path: Path, served: list[InThread]
) -> None:
    """A group's row on the overview follows its members live (never reloaded) to 100 %;
    its page lists the members in order; a running task's progress bar is on its page."""
    queue = open_queue(queue_url)
    hold = tmp_path / "hold"
    hold.touch()
    group = await queue.submit_group(
        [queue_tasks.add.call(i, 0, 0.2) for i in range(6)],
        on_complete=queue_tasks.tally.call(label="board"),
    )
    crawler = await queue.submit(queue_tasks.crawl.call(steps=4, hold=str(hold)))
    server = serve(queue_url)
    served.append(server)
    page = await browser.new_page()
    await page.goto(server.url)
    row = page.locator("#groups tbody tr").first
    assert "tally" in await row.inner_text()
    assert float(await row.locator("progress").get_attribute("value") or "-1") == 0.0
    worker = worker_process(queue_url, tmp_path / "tasks.log", "--concurrency", "3")
    try:
        await page.wait_for_function(  # live: the members' completions, then the callback
            "() => document.querySelector('#groups tbody tr').textContent.includes('100%')"
            " && document.querySelector('#groups tbody tr').textContent.includes('completed')",
            timeout=60_000,
        )
        await shot(page, f"overview-groups-{queue_url.split(':')[0]}")
        await page.goto(f"{server.url}/jobs/{group}")
        members = page.locator("#members tbody tr")
        assert await members.count() == 6
        assert "completed" in await members.nth(5).inner_text()
        assert "6: 0 pending, 0 running, 6 completed" in await page.inner_text("#group")
        for _ in range(300):  # the crawler's last report is stored while it holds
            if (await queue.status(crawler)).progress == 1.0:
                break
            await asyncio.sleep(0.05)
        await page.goto(f"{server.url}/jobs/{crawler}")
        assert float(await page.locator("#progress").get_attribute("value") or "-1") == 1.0
        assert "step 4 of 4" in await page.inner_text("table.facts")
        await shot(page, f"job-progress-{queue_url.split(':')[0]}")
    finally:
        hold.unlink(missing_ok=True)
        worker.terminate()
        worker.wait(30)
    await queue.aclose()

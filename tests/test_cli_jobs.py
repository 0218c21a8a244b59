"""asyncgen jobs: list, show, requeue, cancel, purge and stats on SQLite and Redis queues."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from asyncgen import GenerationJob, JobState, open_queue, open_worker
from asyncgen.queue import JobQueue
from tests import queue_tasks
from tests.test_cli import asyncgen_cmd

SECRET = "sk-or-v1-0123456789abcdef0123456789abcdef"


@pytest.fixture(params=["sqlite", "redis"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/jobs.db"
    return str(request.getfixturevalue("redis_url"))


def jobs(url: str, *args: str) -> tuple[int, str, str]:
    done = asyncgen_cmd("jobs", *args, "--queue", url)
    return done.returncode, done.stdout, done.stderr


async def seeded(url: str) -> dict[str, str]:
    """One completed, one dead (its error and payload carry a key), one pending job."""
    queue: JobQueue = open_queue(url)
    for found in (queue_tasks.add, queue_tasks.leak):
        queue.register(found)
    ids = {
        "done": await queue.submit(queue_tasks.add.call(1, 2)),
        "dead": await queue.submit(queue_tasks.leak.call(SECRET), max_attempts=1),
    }
    async with open_worker(queue):
        await queue.result(ids["done"], timeout=10)
        for _ in range(200):
            if (await queue.status(ids["dead"])).state is JobState.DEAD:
                break
            await asyncio.sleep(0.05)
    ids["later"] = await queue.submit(
        GenerationJob(model="m", prompt=f"my key is {SECRET}"), run_at=time.time() + 3600
    )
    await queue.aclose()
    return ids


async def test_list_show_and_stats(url: str) -> None:
    """The table and --json list the jobs; show prints one in full; secrets are masked."""
    ids = await seeded(url)
    code, out, _ = jobs(url, "list")
    assert code == 0
    assert out.splitlines()[0].split()[:3] == ["ID", "KIND", "STATE"]
    assert {ids["done"], ids["dead"], ids["later"]} <= set(out.split())
    assert SECRET not in out
    code, out, _ = jobs(url, "list", "--state", "dead", "--json")
    [dead] = [json.loads(line) for line in out.splitlines()]
    assert (dead["id"], dead["error_type"]) == (ids["dead"], "RuntimeError")
    assert SECRET not in json.dumps(dead)
    code, out, _ = jobs(url, "show", ids["later"])
    assert code == 0
    assert "kind:             generate" in out
    assert SECRET not in out
    code, out, _ = jobs(url, "show", "no-such-job")
    assert code == 1
    code, out, _ = jobs(url, "stats", "--json")
    counts = json.loads(out)
    assert (counts["completed"], counts["dead"], counts["scheduled"]) == (1, 1, 1)


async def test_requeue_cancel_and_purge(url: str) -> None:
    """requeue revives the dead job, cancel stops the pending one, purge clears old ones;
    what could not be done exits 1, a bad request exits 2."""
    ids = await seeded(url)
    assert jobs(url, "requeue")[0] == 2  # neither ids nor --all-dead
    code, out, err = jobs(url, "requeue", ids["dead"], ids["done"])
    assert code == 1
    assert "requeued 1 job(s)" in out
    assert f"{ids['done']}: not requeued" in err
    queue = open_queue(url)
    assert (await queue.status(ids["dead"])).state is JobState.PENDING
    await queue.aclose()
    code, out, _ = jobs(url, "cancel", ids["later"])
    assert (code, out.strip()) == (0, f"cancelled {ids['later']}")
    assert jobs(url, "cancel", ids["later"])[0] == 1  # cancelled already
    code, out, _ = jobs(url, "purge", "--older-than", "0")
    assert code == 0
    assert "purged 2 job(s)" in out  # the completed and the cancelled one


def test_unusable_queue_url_is_a_usage_error(tmp_path: Path) -> None:
    """memory:// and unsupported URLs exit 2 with one line."""
    for bad in ("memory://", "ftp://x"):
        code, _, err = jobs(bad, "list")
        assert code == 2
        assert "Traceback" not in err


@pytest.mark.parametrize("action", ["list", "stats", "show x", "cancel x", "requeue --all-dead"])
def test_a_missing_sqlite_file_is_an_error_and_nothing_is_made(tmp_path: Path, action: str) -> None:
    """`jobs ...` on sqlite:///jbos.db (a typo) or in a folder that does not exist: exit 2
    naming the path; neither the file nor the folder is created."""
    for path in (tmp_path / "jbos.db", tmp_path / "nodir" / "x.db"):
        code, _, err = jobs(f"sqlite:///{path}", *action.split())
        assert code == 2, err
        assert f"no queue at {path}" in err
        assert "Traceback" not in err
        assert not path.exists()
        assert not path.parent.exists() or path.parent == tmp_path


def test_the_dashboard_refuses_a_missing_queue_file(tmp_path: Path) -> None:
    """`asyncgen dashboard sqlite:///typo.db`: exit 2, no file made."""
    done = asyncgen_cmd("dashboard", f"sqlite:///{tmp_path}/typo.db", "--port", "1")
    assert done.returncode == 2, done.stderr
    assert "no queue at" in done.stderr
    assert not (tmp_path / "typo.db").exists()


def test_a_listing_cut_short_by_head_exits_quietly(tmp_path: Path) -> None:
    """`asyncgen jobs list | head -1`: the reader leaves early; no "Broken pipe", exit 0."""
    url = f"sqlite:///{tmp_path}/jobs.db"
    queue = open_queue(url)
    queue.blocking.submit_many(queue_tasks.add.call(i, i) for i in range(3000))
    queue.blocking.close()
    done = subprocess.run(
        f"{sys.executable} -m asyncgen jobs list --limit 3000 --queue {url} | head -1; "
        "exit ${PIPESTATUS[0]}",
        shell=True,
        executable="/bin/bash",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert len(done.stdout.splitlines()) == 1


def test_cancel_help_says_running_jobs_are_stopped() -> None:
    """The cancel help no longer claims it only cancels jobs not yet started."""
    done = asyncgen_cmd("jobs", "--help")
    assert "not yet started" not in done.stdout
    assert "pending or running" in done.stdout


async def test_groups_and_progress(url: str) -> None:
    """jobs groups lists a group with its members by state; show prints a member's
    group, a job's progress, and a group's members and progress."""
    queue: JobQueue = open_queue(url)
    for found in (queue_tasks.add, queue_tasks.explode, queue_tasks.tally):
        queue.register(found)
    group = await queue.submit_group(
        [queue_tasks.add.call(1, 2), queue_tasks.explode.call("no")],
        on_complete=queue_tasks.tally.call(label="cli"),
        max_attempts=1,
    )
    waiting = await queue.submit_group([queue_tasks.add.call(5, 5)])
    job = await queue.submit(queue_tasks.add.call(2, 2), priority=-1)
    async with open_worker(queue, kinds=["explode"]):  # "add" stays: no worker runs it
        for _ in range(400):
            if (await queue.group_status(group)).dead == 1:
                break
            await asyncio.sleep(0.05)
    record = await queue.store.claim("w", kinds=["add"], lease=30)
    assert record is not None
    member = record.id
    assert await queue.store.report_progress(member, "w", 0.4, "four of ten")
    await queue.aclose()

    code, out, _ = jobs(url, "groups")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["GROUP", "ON_COMPLETE", "STATE", "MEMBERS"]
    assert lines[1].startswith(waiting)
    assert "1: 1 pending" in lines[1]
    assert lines[2].startswith(group)
    assert "tally" in lines[2]
    assert "2: 1 running, 1 dead" in lines[2]
    assert "70%" in lines[2]
    code, out, _ = jobs(url, "groups", "--json", "--limit", "1")
    assert [json.loads(line)["id"] for line in out.splitlines()] == [waiting]

    code, out, _ = jobs(url, "show", member)
    assert code == 0
    assert f"group:            {group}" in out
    assert "progress:         40% four of ten" in out
    code, out, _ = jobs(url, "show", group)
    assert "members:          2: 1 running, 1 dead" in out
    assert "group progress:   70%" in out  # one ended, one 40 % through
    assert "progress" not in jobs(url, "show", job)[1]

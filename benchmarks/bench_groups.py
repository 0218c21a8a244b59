"""Job groups and unique jobs under real worker and submitter processes.

Groups: 1,000 groups of 6 members (a no-op task) with an ``on_complete`` that notes each
of its runs in a side file, served by 4 ``asyncgen worker`` processes on Redis (and on
SQLite for comparison). Figures: groups submitted per second, groups (members and
callback) finished per second, callbacks run per group (the target: exactly one each,
counted from the side files), and whether each callback saw its members' results in
input order.

Unique jobs: 100 submitters (10 processes x 10 concurrent submits, started together)
submit one unique key at once; the target is one job.

Writes benchmarks/results/bench_groups.json.

Run: python benchmarks/bench_groups.py [--groups 1000] [--workers 4]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from asyncgen.queue import open_queue
from asyncgen.testing import RedisServer

sys.path.insert(0, str(Path(__file__).parent))
from _common import asyncgen_argv, spawn, stop, write_report
from _groups_app import member, tally

MEMBERS = 6


async def groups_run(url: str, groups: int, workers: int, side: Path) -> dict[str, Any]:
    queue = open_queue(url)
    began = time.perf_counter()
    ids = [
        await queue.submit_group([member.call(i) for i in range(MEMBERS)], on_complete=tally.call())
        for _ in range(groups)
    ]
    submitted = time.perf_counter() - began
    crew = [
        spawn(
            asyncgen_argv("worker", url, "--tasks", "_groups_app", "--concurrency", "8"),
            {"BENCH_SIDE_FILES": str(side)},
        )
        for _ in range(workers)
    ]
    try:
        started = time.perf_counter()
        results = await queue.results(ids, timeout=600)
        finished = time.perf_counter() - started
    finally:
        stop(crew)
    runs = count_runs(side)
    in_order = sum(1 for r in results if r == list(range(MEMBERS)))
    sample = await queue.group_results(ids[0])
    await queue.aclose()
    return {
        "groups": groups,
        "members_each": MEMBERS,
        "worker_processes": workers,
        "submit_groups_per_s": round(groups / submitted, 1),
        "finished_groups_per_s": round(groups / finished, 1),
        "finished_jobs_per_s": round(groups * (MEMBERS + 1) / finished, 1),
        "callbacks_run": sum(runs.values()),
        "groups_with_one_callback": sum(1 for g in ids if runs[g] == 1),
        "groups_with_more": sum(1 for g in ids if runs[g] > 1),
        "groups_with_none": sum(1 for g in ids if runs[g] == 0),
        "callbacks_seeing_input_order": in_order,
        "group_results_in_order": sample == list(range(MEMBERS)),
    }


def count_runs(side: Path) -> collections.Counter[str]:
    """Callback runs per group id, from the side files."""
    return collections.Counter(
        {path.name: len(path.read_text().splitlines()) for path in side.iterdir()}
    )


UNIQUE_SUBMITTER = """
import asyncio, sys, time
from asyncgen.queue import open_queue
sys.path.insert(0, {here!r})
from _groups_app import member

async def main():
    queue = open_queue({url!r})
    await asyncio.sleep(max(0.0, {start} - time.time()))
    ids = await asyncio.gather(*(
        queue.submit(member.call(0), unique_key="one-key") for _ in range({each})
    ))
    print(" ".join(ids))
    await queue.aclose()

asyncio.run(main())
"""


def submitters(code: str, processes: int) -> list[str]:
    """Run ``processes`` submitter processes at once; the ids they printed."""
    children = [
        subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        for _ in range(processes)
    ]
    returned: list[str] = []
    for child in children:
        out, _ = child.communicate(timeout=120)
        returned += out.split()
    return returned


async def unique_run(url: str, processes: int, each: int) -> dict[str, Any]:
    start = time.time() + 3.0  # every process imported and connected by then
    code = UNIQUE_SUBMITTER.format(here=str(Path(__file__).parent), url=url, start=start, each=each)
    returned = await asyncio.to_thread(submitters, code, processes)
    queue = open_queue(url)
    stored = (await queue.statistics()).pending
    await queue.aclose()
    return {
        "submitters": processes * each,
        "processes": processes,
        "ids_returned": len(returned),
        "distinct_ids": len(set(returned)),
        "jobs_stored": stored,
    }


async def run_all(groups: int, workers: int) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as folder, RedisServer() as redis:
        for backend in ("redis", "sqlite"):
            url = (
                f"{redis.url}?queue=bench-groups"
                if backend == "redis"
                else f"sqlite:///{folder}/groups.db"
            )
            side = Path(folder) / f"side-{backend}"
            side.mkdir()
            figures[f"groups_{backend}"] = await groups_run(url, groups, workers, side)
            print(f"groups on {backend}: {figures[f'groups_{backend}']}")
            unique_url = (
                f"{redis.url}?queue=bench-unique"
                if backend == "redis"
                else f"sqlite:///{folder}/unique.db"
            )
            figures[f"unique_{backend}"] = await unique_run(unique_url, 10, 10)
            print(f"unique on {backend}: {figures[f'unique_{backend}']}")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    figures = asyncio.run(run_all(args.groups, args.workers))
    print(f"wrote {write_report('bench_groups', figures, args.json)}")


if __name__ == "__main__":
    main()

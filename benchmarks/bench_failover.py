"""A Sentinel failover under load: how long from the primary's kill to the sentinels naming
a new one, and to the first job completed on it. With --cluster, the same for a Redis
Cluster shard.

Each run: a primary, two replicas and three sentinels on 127.0.0.1
(``down-after-milliseconds 1000``, ``failover-timeout 3000``); two ``asyncgen worker``
processes (concurrency 8, lease 3 s) working through no-op jobs with ``?durable=1``; the
primary killed with SIGKILL one second into the run. Figures: per run and the p50 over the
runs (issue 29's figure: the first job done on the new primary within 2 x
``down-after-milliseconds`` + the failover's own time).

With --cluster: three masters with two replicas each (``cluster-node-timeout 1000``), the
master that serves the queue's slot killed the same way; "named" is when another node
serves the slot and every node says the cluster is ok.

Run: python benchmarks/bench_failover.py [--runs 5] [--cluster]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from redis import Redis

from asyncgen.queue import open_queue, task
from asyncgen.testing import ClusterGroup, SentinelGroup

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from _common import asyncgen_argv, spawn, stop, write_report  # noqa: E402


@task(name="bench_noop")
async def noop() -> float:
    """Returns the time: the cheapest job there is."""
    return time.time()


def one_run(cluster: bool) -> dict[str, float]:
    group: SentinelGroup | ClusterGroup
    group = ClusterGroup(masters=3, replicas=2) if cluster else SentinelGroup(replicas=2)
    prefix = "asyncgen:{bench}:"
    with group:
        url = f"{group.url}?queue=bench&durable=1"
        queue = open_queue(url)
        queue.register(noop)
        queue.blocking.submit_many(noop.call() for _ in range(20_000))
        command = asyncgen_argv(
            "worker", url, "--tasks", "bench_failover", "--concurrency", "8", "--lease", "3"
        )
        crew = [spawn(command, {"PYTHONPATH": str(HERE)}) for _ in range(2)]
        try:
            while queue.blocking.statistics().completed < 200:
                time.sleep(0.05)
            time.sleep(1.0)
            # The clock starts once the master is dead (SIGKILL, reaped): every job
            # completed after it was completed elsewhere.
            if isinstance(group, ClusterGroup):
                old = group.kill_master_of(prefix).port
                killed_at, killed = time.time(), time.monotonic()
                new = group.wait_for_failover(prefix, old)
            else:
                old = group.kill_master().port
                killed_at, killed = time.time(), time.monotonic()
                new = group.wait_for_failover(old)
            named = time.monotonic() - killed
            first = _first_done(new, prefix, killed_at)
        finally:
            stop(crew)
            queue.blocking.close()
    return {"new_primary_named_s": round(named, 3), "first_job_done_s": round(first, 3)}


def _first_done(port: int, prefix: str, killed_at: float) -> float:
    """Seconds from the kill to the first job completed on the server at ``port``."""
    raw = Redis(port=port, decode_responses=True)
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            found = raw.zrangebyscore(
                f"{prefix}completed", f"({killed_at!r}", "+inf", 0, 1, withscores=True
            )
            if found:
                return float(found[0][1]) - killed_at
            time.sleep(0.02)
    finally:
        raw.close()
    raise RuntimeError("no job completed on the new primary within 60 s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--cluster", action="store_true", help="a Redis Cluster shard")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    runs: list[dict[str, float]] = []
    for number in range(args.runs):
        runs.append(one_run(args.cluster))
        print(f"run {number + 1}: {runs[-1]}", flush=True)
    figures: dict[str, Any] = {"runs": runs}
    if args.cluster:
        figures["cluster_node_timeout_ms"] = 1000
    else:
        figures |= {"down_after_ms": 1000, "failover_timeout_ms": 3000}
    for name in ("new_primary_named_s", "first_job_done_s"):
        figures[f"p50_{name}"] = round(statistics.median(run[name] for run in runs), 3)
    print(
        f"p50: new primary named {figures['p50_new_primary_named_s']} s, first job done on it "
        f"{figures['p50_first_job_done_s']} s after the kill"
    )
    name = "bench_failover_cluster" if args.cluster else "bench_failover"
    print(f"wrote {write_report(name, figures, args.json)}")


if __name__ == "__main__":
    main()

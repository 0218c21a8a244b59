"""The Redis job store: one queue shared by workers on many machines.

Layout (every key under ``asyncgen:{<queue>}:``, one cluster slot per queue):

- ``job:<id>`` a hash per job (the JobRecord's fields, plus its stream entry);
- ``lane:<priority>:<kind>`` streams with one consumer group, ``workers``: claims are
  XREADGROUP, highest priority first, the oldest entry first within a priority; entries
  are acknowledged and deleted when a job leaves (XACK + XDEL, or XACKDEL on Redis 8.2+)
  and never trimmed by MAXLEN, which would drop jobs;
- ``delayed`` (run_at and retries) and ``leases`` (running jobs' deadlines) sorted sets.
  Heartbeats move a job's deadline and reset its entry's idle time (XCLAIM ... JUSTID);
  a job whose deadline passed is taken over by moving its entry with XCLAIM. Deadlines,
  not XAUTOCLAIM's idle threshold, decide: each worker picks its own lease, and one
  threshold would let a worker with a short lease steal live jobs from one with a long
  lease (or make a dead short-lease worker's jobs wait for the longest lease);
- ``idem:<key>`` idempotency keys (SET NX semantics), ``worker:<name>`` heartbeats with
  a TTL, ``deadletter`` a stream of every job that went dead;
- ``report:<name>`` each worker's latest report (JSON with a TTL) and ``reporters`` the
  names that reported (what the dashboard reads).

Every state change is one Lua script (``_lua/``), so it is atomic however many workers
race. Redis 6.2 or newer is required (exclusive stream ranges, XINFO fields).
"""

from __future__ import annotations

import asyncio
import json
import time
import weakref
from collections.abc import Callable, Sequence
from typing import Any

from ..core._redis import parse_redis_url
from ._coalesce import Coalesced
from ._models import JobRecord, JobState, QueueStatistics, WorkerReport
from ._redis_connection import (
    DEFAULT_DURABLE_TIMEOUT,
    DEFAULT_MAX_CONNECTIONS,
    MIN_REDIS_VERSION,
    SPARED,
    RedisConnection,
)
from ._redis_reads import (
    find_jobs,
    finished_of,
    groups_of,
    lane_depth,
    records_of,
    reports_of,
    states_of,
)
from ._redis_records import (
    from_hash,
    positive_int,
    seconds_option,
    to_hash,
)
from ._redis_url import OWN_OPTIONS
from ._schedule import next_slot
from ._store import SingleCalls

__all__ = ["DEFAULT_RESULT_TTL", "MIN_REDIS_VERSION", "RedisStore"]

DEFAULT_RESULT_TTL = 7 * 86_400.0  # seconds completed and cancelled records are kept
WORKER_ALIVE = 60.0  # seconds a worker counts as alive after its last heartbeat
PURGE_BATCH = 1_000
ADD_BATCH = 500  # jobs per round trip in add_many


class RedisStore(SingleCalls):
    """Job records in Redis Streams, for workers on many machines.

    Args:
        url: ``redis://[[user]:password@]host[:port][/db]`` or ``rediss://`` (TLS), or
            ``redis+sentinel://[[user]:password@]host[:port],.../service[/db]`` to follow
            the master that Sentinel names, or ``redis+cluster://host:port,...`` for a
            Redis Cluster (the queue's keys share the hash tag ``{queue}``: one slot;
            queues spread over the shards; see ``asyncgen.core._redis``). Query
            options: ``queue`` (the queue's name, default "default": several queues can
            share one database), ``result_ttl`` (seconds completed and cancelled records
            are kept, default 7 days; 0 keeps them until purged), ``max_connections``
            (per event loop, default 32; more calls wait their turn), ``durable`` (replicas
            that must have each submit and each result before it counts: Redis ``WAIT``,
            within ``durable_timeout`` seconds, default 5; else ReplicationError), and any
            of redis-py's
            (``ssl_ca_certs``, ``ssl_cert_reqs``, ``socket_timeout`` ...).
        clock: Returns now in epoch seconds; a seam for tests of schedules and leases.
            Workers on many machines compare times on it: keep their clocks in sync (NTP).

    Raises:
        ValueError: Not a Redis URL, or a bad option value.
    """

    def __init__(self, url: str, *, clock: Callable[[], float] = time.time) -> None:
        target, own = parse_redis_url(url, own=OWN_OPTIONS)
        self.name = own.get("queue") or "default"
        self.result_ttl = seconds_option(own.get("result_ttl"), DEFAULT_RESULT_TTL, "result_ttl")
        self.prefix = f"asyncgen:{{{self.name}}}:"
        max_connections = positive_int(
            own.get("max_connections"), DEFAULT_MAX_CONNECTIONS, "max_connections"
        )
        durable = 0
        if "durable" in own:
            if not own["durable"].isdigit() or int(own["durable"]) < 1:
                raise ValueError(
                    "durable= is the number of replicas a submit and a result wait for "
                    f"(e.g. ?durable=1), got {own['durable']!r}"
                )
            durable = int(own["durable"])
        durable_timeout = seconds_option(
            own.get("durable_timeout"), DEFAULT_DURABLE_TIMEOUT, "durable_timeout"
        )
        # The connections (a redis-py client per event loop; the scripts run through it).
        self.connection = RedisConnection(
            target,
            max_connections=max_connections,
            durable=durable,
            durable_timeout=durable_timeout,
            prefix=self.prefix,
            clock=clock,
        )
        self._clock = clock
        # Submits made together (e.g. under asyncio.gather) share a round trip.
        self._adders: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, Coalesced[JobRecord, str]
        ] = weakref.WeakKeyDictionary()

    def __repr__(self) -> str:
        # The password never appears: only scheme, host, port and queue name.
        return f"RedisStore({self.connection.where!r}, queue={self.name!r})"

    async def close(self) -> None:
        """Close this event loop's connections."""
        await self.connection.close()

    # -- writes ----------------------------------------------------------------------

    async def add(self, record: JobRecord) -> str:
        """Store a new job; with an idempotency key already used, return that job's id.

        Adds made while another is on its way go out together, in one pipeline.
        """
        loop = asyncio.get_running_loop()
        adder = self._adders.get(loop)
        if adder is None:
            adder = self._adders[loop] = Coalesced(self.add_many)
        return await adder(record)

    async def add_many(self, records: Sequence[JobRecord]) -> list[str]:
        """Store new jobs, ADD_BATCH scripts per round trip (a pipeline); ids in order.

        A batch cut short (a dropped connection) can be sent again: a job id or
        idempotency key that is stored already is not stored twice.
        """
        ids: list[str] = []
        for start in range(0, len(records), ADD_BATCH):
            batch = records[start : start + ADD_BATCH]
            ids += [
                str(i)
                for i in await self.connection.run_many(
                    "add", [self._add_args(r) for r in batch], durable=True
                )
            ]
        return ids

    def _add_args(self, record: JobRecord) -> list[str | int]:
        # The fields go as one JSON array (decoded in the script): one argument to
        # encode instead of two per field, which is most of a submit's client-side cost.
        fields = json.dumps(
            [i for pair in to_hash(record).items() for i in pair], ensure_ascii=False
        )
        return [
            record.id,
            record.idempotency_key or "",
            self._ttl_ms(),
            fields,
            record.unique_key or "",
            _unique_ms(record),
            len(record.depends_on),
            *record.depends_on,
        ]

    async def claim_many(
        self, worker: str, *, kinds: Sequence[str] | None, lease: float, limit: int
    ) -> list[JobRecord]:
        """Take up to ``limit`` ready jobs at once, in claim order (see :meth:`claim`)."""
        reply = await self.connection.run(
            "claim",
            repr(self._clock() + lease),
            worker,
            int(WORKER_ALIVE * 1000),
            self._ttl_ms(),
            limit,
            *(kinds or ()),
        )
        if not reply:
            return []
        records = [from_hash(fields) for fields in json.loads(reply)]
        for record in records:
            if record.every is not None or record.cron is not None:
                await self._schedule_next(record)
        return records

    async def _schedule_next(self, record: JobRecord) -> None:
        """Add a recurring job's next slot, once (see ``_schedule``)."""
        slot = next_slot(record, first_claim=record.attempts == 1)  # counted by the claim
        if slot is not None:
            await self.add(slot)

    async def heartbeat_many(
        self, job_ids: Sequence[str], worker: str, *, lease: float
    ) -> list[bool]:
        """Extend the leases of running jobs, in one round trip; per job, False if the
        worker no longer holds it."""
        until, alive = repr(self._clock() + lease), int(WORKER_ALIVE * 1000)
        calls: list[list[str | int]] = [[until, worker, alive, job_id] for job_id in job_ids]
        return (
            [bool(reply) for reply in await self.connection.run_many("heartbeat", calls)]
            if calls
            else []
        )

    async def held(self, job_ids: Sequence[str], worker: str) -> list[bool]:
        """Per job, True while it is running and ``worker`` holds it: one read-only round
        trip (no lease is touched), so a worker can watch for aborts often."""
        if not job_ids:
            return []
        client = await self.connection.client()
        async with client.pipeline(transaction=False) as pipe:
            for job_id in job_ids:
                pipe.hmget(f"{self.prefix}job:{job_id}", "state", "worker")
            replies = await self.connection.guard(pipe.execute())
        return [list(reply) == ["running", worker] for reply in replies]

    async def complete_many(self, worker: str, results: Sequence[tuple[str, Any]]) -> list[bool]:
        """Store results in one round trip; per job, False (and nothing stored) if the
        lease was lost meanwhile."""
        ttl = self._ttl_ms()
        calls: list[list[str | int]] = [
            [worker, job_id, json.dumps(result), ttl] for job_id, result in results
        ]
        return (
            [
                bool(reply)
                for reply in await self.connection.run_many("complete", calls, durable=True)
            ]
            if calls
            else []
        )

    async def fail(
        self, job_id: str, worker: str, *, error_type: str, error: str, retry_at: float | None
    ) -> JobState | None:
        """Record a failed run: back to pending at ``retry_at``, or dead (None: no retry).

        Returns:
            The job's new state, or None if the worker had lost the lease.
        """
        reply = await self.connection.run(
            "fail",
            worker,
            job_id,
            error_type,
            error,
            "" if retry_at is None else repr(retry_at),
            self._ttl_ms(),
        )
        return JobState(reply) if reply else None

    async def postpone(
        self, job_id: str, worker: str, *, run_at: float, error_type: str, error: str
    ) -> bool:
        """Give a running job back, pending at ``run_at``, without using an attempt (its
        run could not start for a reason outside the job: an empty credit balance).
        False if the worker had lost the lease."""
        reply = await self.connection.run(
            "postpone", worker, job_id, repr(run_at), error_type, error
        )
        return bool(reply)

    async def cancel(self, job_id: str) -> bool:
        """Cancel a pending or running job (its worker loses the lease); False if it is
        finished or unknown."""
        return bool(await self.connection.run("cancel", job_id, self._ttl_ms()))

    async def requeue(self, job_ids: Sequence[str]) -> list[str]:
        """Run dead or cancelled jobs again: pending now, attempts from 0, same payload;
        the last error is kept. A job whose dependency ended dead or cancelled (or is
        gone) is left as it is. Returns the ids requeued."""
        if not job_ids:
            return []
        done = await self.connection.run_many("requeue", [[job_id] for job_id in job_ids])
        return [job_id for job_id, ok in zip(job_ids, done, strict=True) if int(ok)]

    async def find(
        self, *, state: JobState | None = None, kind: str | None = None, limit: int = 100
    ) -> list[JobRecord]:
        """Jobs in ``state`` (any: None) of ``kind`` (any: None), newest first."""
        return await find_jobs(self.connection, state, kind, limit)

    async def purge(self, older_than: float) -> int:
        """Delete finished jobs (completed, dead, cancelled) older than ``older_than`` s."""
        cutoff = repr(self._clock() - older_than)
        deleted = 0
        while True:
            gone, examined = await self.connection.run("purge", cutoff, PURGE_BATCH)
            deleted += int(gone)
            if int(examined) < PURGE_BATCH:
                return deleted

    async def report_progress(
        self, job_id: str, worker: str, fraction: float, message: str | None
    ) -> bool:
        """Store a running job's progress; False (nothing stored) if ``worker`` no longer
        holds it."""
        reply = await self.connection.run("progress", worker, job_id, repr(fraction), message or "")
        return bool(reply)

    # -- reads -----------------------------------------------------------------------

    async def get(self, job_id: str) -> JobRecord | None:
        """The job's record, or None (never stored, purged, or expired after result_ttl)."""
        client = await self.connection.client()
        fields = await self.connection.guard(client.hgetall(f"{self.prefix}job:{job_id}"))
        return from_hash(fields) if fields else None

    async def get_many(self, job_ids: Sequence[str]) -> list[JobRecord | None]:
        """The records of ``job_ids``, in their order (None for an unknown or expired id)."""
        return await records_of(self.connection, job_ids)

    async def states(self, job_ids: Sequence[str]) -> list[tuple[JobState, float | None] | None]:
        """The state and progress of ``job_ids``, in their order (None: unknown or
        expired): two fields a job, not the whole record."""
        return await states_of(self.connection, job_ids) if job_ids else []

    async def groups(self, limit: int) -> list[JobRecord]:
        """The groups' own records (see ``submit_group``), newest first."""
        return await groups_of(self.connection, limit)

    async def report(self, worker: str, status: dict[str, Any], *, ttl: float) -> None:
        """Keep ``worker``'s latest report for ``ttl`` seconds (``report:<name>``)."""
        client = await self.connection.client()
        body = json.dumps({"at": self._clock(), "status": status})
        async with client.pipeline(transaction=False) as pipe:
            pipe.set(f"{self.prefix}report:{worker}", body, px=int(ttl * 1000))
            pipe.sadd(f"{self.prefix}reporters", worker)
            await self.connection.guard(pipe.execute())

    async def worker_reports(self) -> list[WorkerReport]:
        """The live workers' latest reports, by name (expired names are dropped)."""
        return await reports_of(self.connection)

    async def statistics(self) -> QueueStatistics:
        """Counts by state (from XLEN / XPENDING and the indexes), retries, live workers."""
        expired = "" if not self.result_ttl else repr(self._clock() - self.result_ttl)
        counts = [int(n) for n in await self.connection.run("stats", expired)]
        names = (
            "pending",
            "scheduled",
            "running",
            "completed",
            "failed",
            "dead",
            "cancelled",
            "retried",
            "workers",
        )
        return QueueStatistics(**dict(zip(names, counts, strict=True)))

    async def depth(self) -> dict[tuple[str, str], int]:
        """Jobs by (state, kind). Ready and running jobs are counted per kind from their
        lanes; the other states have no per-kind index, so their kind is "*"."""
        depth = await lane_depth(self.connection)
        stats = await self.statistics()
        for state in ("scheduled", "completed", "dead", "cancelled"):
            if getattr(stats, state):
                depth[(state, "*")] = getattr(stats, state)
        ready_elsewhere = stats.pending - sum(n for (s, _), n in depth.items() if s == "pending")
        if ready_elsewhere > 0:  # due retries and jobs waiting on dependencies
            depth[("pending", "*")] = ready_elsewhere
        return depth

    # -- waiting -------------------------------------------------------------------

    blocking_wait = True  # wait_for_work blocks on the server: a worker need not poll

    async def wait_for_work(self, within: float) -> None:
        """Return when a job may be ready: a wake token from a script that made one
        ready, the next delayed job's time, or ``within`` seconds."""
        client = await self.connection.client()
        due: Any = await self.connection.guard(
            client.zrange(f"{self.prefix}delayed", 0, 0, withscores=True)
        )
        if due:
            within = min(within, float(due[0][1]) - self._clock())
        if within > 0:
            await self.connection.block(client, [f"{self.prefix}wake"], within)

    async def wake_workers(self) -> None:
        """Wake an idle worker's wait now (a token, as a submit leaves)."""
        client = await self.connection.client()
        async with client.pipeline(transaction=False) as pipe:
            pipe.lpush(f"{self.prefix}wake", "1")
            pipe.ltrim(f"{self.prefix}wake", 0, 0)
            await self.connection.guard(pipe.execute())

    async def wait_finished(self, job_ids: Sequence[str], within: float) -> list[str] | None:
        """Return when one of the jobs has finished (its script left a token for its
        waiters, passed on to the next waiter): ``[that job]``; after ``within`` s with
        nothing, ``[]``; None when no blocking wait could be spared (look at all)."""
        client = await self.connection.client()
        head = f"{self.prefix}done:"
        keys = [head + job_id for job_id in job_ids]
        popped = await self.connection.block(client, keys, within)
        if popped is SPARED:
            return None
        if popped is None:
            return []
        key = popped[0]
        async with client.pipeline(transaction=False) as pipe:
            pipe.lpush(key, "1")  # the next waiter on this job wakes too
            pipe.pexpire(key, 60_000)
            await self.connection.guard(pipe.execute())
        return [key[len(head) :]]

    async def finished(self, job_ids: Sequence[str]) -> list[JobRecord]:
        """The records of those of ``job_ids`` that are completed, dead or cancelled."""
        return await finished_of(self.connection, job_ids)

    async def dead_letters(self, count: int = 100) -> list[dict[str, str]]:
        """The newest entries of the dead-letter stream: id, kind, error_type, error, at."""
        client = await self.connection.client()
        entries = await self.connection.guard(
            client.xrevrange(f"{self.prefix}deadletter", count=count)
        )
        return [fields for _, fields in entries]

    def _ttl_ms(self) -> int:
        return int(self.result_ttl * 1000)


def _unique_ms(record: JobRecord) -> str:
    """Milliseconds the record's unique key holds from now ('' while it is unfinished)."""
    if record.unique_until is None:
        return ""
    return str(max(1, int((record.unique_until - time.time()) * 1000)))

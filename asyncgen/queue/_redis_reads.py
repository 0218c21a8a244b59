"""The Redis store's reads: listings, finished jobs, workers' reports and the lanes' depth.

Each is a function of the store's connection (its key prefix and its error mapping).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ._models import JobRecord, JobState, WorkerReport
from ._redis_connection import RedisConnection
from ._redis_records import from_hash, lane_kind

if TYPE_CHECKING:  # redis-py is imported where used: only Redis users pay for it
    from ..core._redis import RedisClient

__all__ = [
    "find_jobs",
    "finished_of",
    "groups_of",
    "lane_depth",
    "records_of",
    "reports_of",
    "states_of",
]


async def find_jobs(
    connection: RedisConnection, state: JobState | None, kind: str | None, limit: int
) -> list[JobRecord]:
    """Jobs in ``state`` (any: None) of ``kind`` (any: None), newest first.

    Finished jobs come from their state's index, running ones from the leases,
    pending ones from the delayed set, the lanes and the blocked set.
    """
    client = await connection.client()
    found: list[JobRecord] = []
    order = (
        [state]
        if state is not None
        else [
            JobState.RUNNING,
            JobState.PENDING,
            JobState.DEAD,
            JobState.CANCELLED,
            JobState.COMPLETED,
        ]
    )
    for wanted in order:
        ids = await _ids_in(connection, client, wanted, kind, limit)
        for start in range(0, len(ids), 200):
            async with client.pipeline(transaction=False) as pipe:
                for job_id in ids[start : start + 200]:
                    pipe.hgetall(f"{connection.prefix}job:{job_id}")
                rows: list[dict[str, str]] = await connection.guard(pipe.execute())
            for fields in rows:
                record = from_hash(fields) if fields else None  # empty: expired
                if record is None or record.state is not wanted:
                    continue
                if kind is None or record.kind == kind:
                    found.append(record)
                    if len(found) >= limit:
                        return found
    return found


async def _ids_in(
    connection: RedisConnection, client: RedisClient, state: JobState, kind: str | None, limit: int
) -> list[str]:
    """The ids the indexes hold for ``state``, newest first where they are ordered;
    no more than ``limit`` from an index whose jobs all match (any kind, or a lane
    of ``kind``), so a short listing does not read a long queue."""
    p = connection.prefix
    last = limit - 1 if kind is None else -1
    if state in (JobState.DEAD, JobState.CANCELLED, JobState.COMPLETED):
        return list(await connection.guard(client.zrevrange(f"{p}{state.value}", 0, last)))
    if state is JobState.RUNNING:
        return list(await connection.guard(client.zrange(f"{p}leases", 0, last)))
    ids: list[str] = list(await connection.guard(client.zrange(f"{p}delayed", 0, last)))
    lanes: list[str] = await connection.guard(client.zrange(f"{p}lanes", 0, -1))
    for lane in lanes:
        if kind is not None and lane_kind(lane, p) != kind:
            continue  # a lane holds one kind only
        # Delivered (running) entries stay first in the stream until acknowledged.
        running: Any = await connection.guard(client.xpending(lane, "workers"))
        held = int(running["pending"]) if isinstance(running, dict) else int(running[0])
        entries: Any = await connection.guard(client.xrange(lane, count=limit + held))
        ids += [fields["id"] for _, fields in entries]
    return ids + list(await connection.guard(client.smembers(f"{p}blocked")))


async def records_of(connection: RedisConnection, job_ids: Sequence[str]) -> list[JobRecord | None]:
    """The records of ``job_ids``, in their order (None for an unknown or expired id),
    read 500 to a round trip."""
    client = await connection.client()
    found: list[JobRecord | None] = []
    for start in range(0, len(job_ids), 500):
        async with client.pipeline(transaction=False) as pipe:
            for job_id in job_ids[start : start + 500]:
                pipe.hgetall(f"{connection.prefix}job:{job_id}")
            rows: list[dict[str, str]] = await connection.guard(pipe.execute())
        found += [from_hash(fields) if fields else None for fields in rows]
    return found


async def states_of(
    connection: RedisConnection, job_ids: Sequence[str]
) -> list[tuple[JobState, float | None] | None]:
    """The state and progress of ``job_ids``, in their order (None: unknown or expired),
    two fields a job, 500 jobs to a round trip."""
    client = await connection.client()
    found: list[tuple[JobState, float | None] | None] = []
    for start in range(0, len(job_ids), 500):
        async with client.pipeline(transaction=False) as pipe:
            for job_id in job_ids[start : start + 500]:
                pipe.hmget(f"{connection.prefix}job:{job_id}", "state", "progress")
            rows: list[list[str | None]] = await connection.guard(pipe.execute())
        found += [
            None
            if state is None
            else (JobState(state), float(progress) if progress is not None else None)
            for state, progress in rows
        ]
    return found


async def groups_of(connection: RedisConnection, limit: int) -> list[JobRecord]:
    """The groups' own records, newest first (those expired are dropped from the index)."""
    client = await connection.client()
    key = f"{connection.prefix}groups"
    ids: list[str] = list(await connection.guard(client.zrevrange(key, 0, limit - 1)))
    records = await records_of(connection, ids)
    gone = [job_id for job_id, record in zip(ids, records, strict=True) if record is None]
    if gone:
        await connection.guard(client.zrem(key, *gone))
    return [record for record in records if record is not None]


async def finished_of(connection: RedisConnection, job_ids: Sequence[str]) -> list[JobRecord]:
    """The records of those of ``job_ids`` that are completed, dead or cancelled."""
    client = await connection.client()
    found: list[JobRecord] = []
    for start in range(0, len(job_ids), 500):
        chunk = job_ids[start : start + 500]
        async with client.pipeline(transaction=False) as pipe:
            for job_id in chunk:
                pipe.hget(f"{connection.prefix}job:{job_id}", "state")
            states: list[str | None] = await connection.guard(pipe.execute())
        ended = [
            i for i, s in zip(chunk, states, strict=True) if s in ("completed", "dead", "cancelled")
        ]
        if ended:
            async with client.pipeline(transaction=False) as pipe:
                for job_id in ended:
                    pipe.hgetall(f"{connection.prefix}job:{job_id}")
                rows: list[dict[str, str]] = await connection.guard(pipe.execute())
            found += [from_hash(fields) for fields in rows if fields]
    return found


async def reports_of(connection: RedisConnection) -> list[WorkerReport]:
    """The live workers' latest reports, by name (expired names are dropped)."""
    client = await connection.client()
    names = sorted(await connection.guard(client.smembers(f"{connection.prefix}reporters")))
    if not names:
        return []
    bodies = await connection.guard(client.mget([f"{connection.prefix}report:{n}" for n in names]))
    gone = [name for name, body in zip(names, bodies, strict=True) if body is None]
    if gone:
        await connection.guard(client.srem(f"{connection.prefix}reporters", *gone))
    reports = []
    for name, body in zip(names, bodies, strict=True):
        if body is not None:
            data = json.loads(body)
            reports.append(WorkerReport(name, float(data["at"]), data["status"]))
    return reports


async def lane_depth(connection: RedisConnection) -> dict[tuple[str, str], int]:
    """Ready and running jobs by (state, kind), from the lanes: a stream's length less
    its delivered entries are ready, its delivered ones running."""
    client = await connection.client()
    depth: dict[tuple[str, str], int] = {}
    lanes: list[str] = await connection.guard(client.zrange(f"{connection.prefix}lanes", 0, -1))
    for lane in lanes:
        kind = lane_kind(lane, connection.prefix)
        length = int(await connection.guard(client.xlen(lane)))
        info: Any = await connection.guard(client.xpending(lane, "workers"))
        running = int(info["pending"]) if isinstance(info, dict) else int(info[0])
        for state, n in (("pending", length - running), ("running", running)):
            if n:
                depth[(state, kind)] = depth.get((state, kind), 0) + n
    return depth

"""The SQLite store's reads: listings, counts, depth, finished jobs and workers' reports.

Each is a function of one connection, run in the store's thread under its lock.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import Any

from ._models import JobRecord, JobState, QueueStatistics, WorkerReport
from ._sqlite_schema import COLUMNS, WORKER_ALIVE, record_of

__all__ = [
    "depth_of",
    "find_jobs",
    "finished_of",
    "groups_of",
    "job_of",
    "keep_report",
    "records_of",
    "reports_of",
    "running_of",
    "states_of",
    "statistics_of",
]


def find_jobs(
    db: sqlite3.Connection, state: JobState | None, kind: str | None, limit: int
) -> list[JobRecord]:
    """Jobs in ``state`` (any: None) of ``kind`` (any: None), newest first."""
    where, args = ["1"], []
    if state is not None:
        where.append("state = ?")
        args.append(state.value)
    if kind is not None:
        where.append("kind = ?")
        args.append(kind)
    rows = db.execute(
        f"SELECT {COLUMNS} FROM jobs WHERE {' AND '.join(where)}"
        " ORDER BY COALESCE(finished_at, created_at) DESC, seq DESC LIMIT ?",
        (*args, limit),
    ).fetchall()
    return [record_of(row) for row in rows]


def job_of(db: sqlite3.Connection, job_id: str) -> JobRecord | None:
    """The job's record, or None."""
    row = db.execute(f"SELECT {COLUMNS} FROM jobs WHERE id = ?", (job_id,)).fetchone()
    return record_of(row) if row else None


def running_of(db: sqlite3.Connection, job_ids: Sequence[str], worker: str) -> set[str]:
    """Those of ``job_ids`` that are running and held by ``worker``."""
    running: set[str] = set()
    for start in range(0, len(job_ids), 500):  # under SQLite's variable limit
        some = job_ids[start : start + 500]
        marks = ",".join("?" * len(some))
        rows = db.execute(
            f"SELECT id FROM jobs WHERE id IN ({marks}) AND state = 'running' AND worker = ?",
            (*some, worker),
        )
        running.update(row[0] for row in rows)
    return running


def records_of(db: sqlite3.Connection, job_ids: Sequence[str]) -> list[JobRecord | None]:
    """The records of ``job_ids``, in their order (None for an id not in the queue)."""
    found: dict[str, JobRecord] = {}
    for start in range(0, len(job_ids), 500):  # under SQLite's variable limit
        chunk = list(job_ids[start : start + 500])
        marks = ", ".join("?" for _ in chunk)
        rows = db.execute(f"SELECT {COLUMNS} FROM jobs WHERE id IN ({marks})", chunk)
        found.update((record.id, record) for record in map(record_of, rows))
    return [found.get(job_id) for job_id in job_ids]


def states_of(
    db: sqlite3.Connection, job_ids: Sequence[str]
) -> list[tuple[JobState, float | None] | None]:
    """The state and progress of ``job_ids``, in their order (None: not in the queue)."""
    found: dict[str, tuple[JobState, float | None]] = {}
    for start in range(0, len(job_ids), 500):  # under SQLite's variable limit
        chunk = list(job_ids[start : start + 500])
        marks = ", ".join("?" for _ in chunk)
        rows = db.execute(f"SELECT id, state, progress FROM jobs WHERE id IN ({marks})", chunk)
        found.update((row[0], (JobState(row[1]), row[2])) for row in rows)
    return [found.get(job_id) for job_id in job_ids]


def groups_of(db: sqlite3.Connection, limit: int) -> list[JobRecord]:
    """The groups' own records, newest first."""
    rows = db.execute(
        f"SELECT {COLUMNS} FROM jobs WHERE members IS NOT NULL ORDER BY created_at DESC LIMIT ?",
        (limit,),
    ).fetchall()
    return [record_of(row) for row in rows]


def finished_of(db: sqlite3.Connection, job_ids: Sequence[str]) -> list[JobRecord]:
    """The records of those of ``job_ids`` that are completed, dead or cancelled."""
    found: list[JobRecord] = []
    for start in range(0, len(job_ids), 500):
        chunk = list(job_ids[start : start + 500])
        marks = ", ".join("?" for _ in chunk)
        rows = db.execute(
            f"SELECT {COLUMNS} FROM jobs WHERE id IN ({marks})"
            " AND state IN ('completed', 'dead', 'cancelled')",
            chunk,
        ).fetchall()
        found += [record_of(row) for row in rows]
    return found


def depth_of(db: sqlite3.Connection, now: float) -> dict[tuple[str, str], int]:
    """Jobs by (state, kind); "scheduled" is pending with a ``run_at`` after ``now``."""
    rows = db.execute(
        "SELECT CASE WHEN state = 'pending' AND run_at > ? THEN 'scheduled'"
        " ELSE state END AS shown, kind, COUNT(*) FROM jobs GROUP BY shown, kind",
        (now,),
    ).fetchall()
    return {(str(state), str(kind)): int(n) for state, kind, n in rows}


def statistics_of(db: sqlite3.Connection, now: float) -> QueueStatistics:
    """Counts by state, retries made, and workers seen in the last minute."""
    by_state = dict(db.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state").fetchall())
    scheduled = db.execute(
        "SELECT COUNT(*) FROM jobs WHERE state = 'pending' AND run_at > ?", (now,)
    ).fetchone()[0]
    retried = db.execute("SELECT value FROM counters WHERE name = 'retried'").fetchone()
    failed = db.execute(
        "SELECT COUNT(*) FROM jobs WHERE state = 'pending' AND error_type IS NOT NULL"
    ).fetchone()[0]
    workers = db.execute(
        "SELECT COUNT(*) FROM workers WHERE seen_at > ?", (now - WORKER_ALIVE,)
    ).fetchone()[0]
    return QueueStatistics(
        pending=by_state.get("pending", 0) - scheduled,
        scheduled=scheduled,
        running=by_state.get("running", 0),
        completed=by_state.get("completed", 0),
        failed=failed,
        dead=by_state.get("dead", 0),
        cancelled=by_state.get("cancelled", 0),
        retried=retried[0] if retried else 0,
        workers=workers,
    )


def keep_report(
    db: sqlite3.Connection, worker: str, status: dict[str, Any], *, now: float, ttl: float
) -> None:
    """Keep ``worker``'s latest report until ``now + ttl``; drop the expired ones."""
    db.execute(
        "INSERT INTO worker_reports (name, at, until, status) VALUES (?, ?, ?, ?)"
        " ON CONFLICT(name) DO UPDATE SET at = excluded.at, until = excluded.until,"
        " status = excluded.status",
        (worker, now, now + ttl, json.dumps(status)),
    )
    db.execute("DELETE FROM worker_reports WHERE until < ?", (now,))


def reports_of(db: sqlite3.Connection, now: float) -> list[WorkerReport]:
    """The live workers' latest reports, by name."""
    rows = db.execute(
        "SELECT name, at, status FROM worker_reports WHERE until >= ? ORDER BY name", (now,)
    ).fetchall()
    return [WorkerReport(name, at, json.loads(status)) for name, at, status in rows]

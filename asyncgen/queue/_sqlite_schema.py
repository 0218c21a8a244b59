"""The SQLite store's tables and rows: the schema, a job record as a row and back, the
claim of one job, and the statements several of the store's operations share (each runs
inside the caller's transaction)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import Any

from ._models import JobRecord, JobState
from ._schedule import next_slot

__all__ = [
    "ADDED_COLUMNS",
    "COLUMNS",
    "DEPENDENCIES_DONE",
    "FIRST_COLUMNS",
    "HISTORY_KEEP",
    "LATER_INDEXES",
    "NO_DEAD_DEPENDENCY",
    "SCHEMA",
    "WORKER_ALIVE",
    "bump",
    "bury_dependents",
    "insert_record",
    "kind_filter",
    "note_attempt",
    "note_seen",
    "record_of",
    "row_of",
    "schedule_next",
    "take_one",
    "transaction",
    "unique_holder",
]

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    priority INTEGER NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    max_attempts INTEGER NOT NULL,
    run_at REAL NOT NULL,
    lease_until REAL,
    worker TEXT,
    result TEXT,
    error_type TEXT,
    error TEXT,
    idempotency_key TEXT UNIQUE,
    created_at REAL NOT NULL,
    finished_at REAL,
    every REAL,
    cron TEXT,
    depends_on TEXT NOT NULL DEFAULT '[]',
    timeout REAL,
    context TEXT,
    started_at REAL,
    history TEXT
);
CREATE INDEX IF NOT EXISTS jobs_ready ON jobs (state, priority DESC);
CREATE TABLE IF NOT EXISTS workers (name TEXT PRIMARY KEY, seen_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS worker_reports (
    name TEXT PRIMARY KEY, at REAL NOT NULL, until REAL NOT NULL, status TEXT NOT NULL
);
"""
FIRST_COLUMNS = (
    "id, kind, payload, priority, state, attempts, max_attempts, run_at, lease_until, "
    "worker, result, error_type, error, idempotency_key, created_at, finished_at, every, cron, "
    "depends_on"
)
# Columns added since the first release: a queue file made before gets them on open.
ADDED_COLUMNS = {
    "timeout": "REAL",
    "context": "TEXT",
    "started_at": "REAL",
    "history": "TEXT",
    "unique_key": "TEXT",
    "unique_until": "REAL",
    "group_id": "TEXT",
    "members": "TEXT",
    "progress": "REAL",
    "progress_message": "TEXT",
}
# Made after the added columns exist (a queue file from before gets them on open).
LATER_INDEXES = (
    "CREATE INDEX IF NOT EXISTS jobs_unique ON jobs (unique_key) WHERE unique_key IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS jobs_group ON jobs (group_id, state) WHERE group_id IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS jobs_groups ON jobs (created_at) WHERE members IS NOT NULL",
)
HISTORY_KEEP = 20  # attempts kept in a job's history
COLUMNS = ", ".join([FIRST_COLUMNS, *ADDED_COLUMNS])
WORKER_ALIVE = 60.0  # seconds a worker counts as alive after its last heartbeat


class transaction:
    """BEGIN IMMEDIATE ... COMMIT (ROLLBACK on error): the write lock taken up front."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self.db.execute("ROLLBACK" if exc_type else "COMMIT")


# A job may start when none of the jobs it depends on is unfinished, and (a group's own
# record) when none of its members is (an index lookup: groups of any size claim fast).
DEPENDENCIES_DONE = (
    "NOT EXISTS (SELECT 1 FROM json_each(jobs.depends_on) AS d"
    " LEFT JOIN jobs AS j2 ON j2.id = d.value WHERE j2.state IS NULL"
    " OR j2.state != 'completed')"
    " AND (jobs.members IS NULL OR NOT EXISTS (SELECT 1 FROM jobs AS m"
    " WHERE m.group_id = jobs.id AND m.state IN ('pending', 'running')))"
)


# None of the jobs it depends on ended dead or cancelled, or is gone.
NO_DEAD_DEPENDENCY = (
    "NOT EXISTS (SELECT 1 FROM json_each(jobs.depends_on) AS d"
    " LEFT JOIN jobs AS j2 ON j2.id = d.value WHERE j2.state IS NULL"
    " OR j2.state IN ('dead', 'cancelled'))"
)


def bury_dependents(db: sqlite3.Connection, now: float) -> None:
    """A job just ended dead or cancelled: bury the pending jobs that depended on it.

    Repeated until nothing changes, so dependents of buried jobs follow them. Runs only
    on those (rare) transitions, never on the claim path.
    """
    while db.execute(
        "UPDATE jobs SET state = 'dead', error_type = 'DependencyFailed',"
        " error = 'a job it depends on ended dead or cancelled', finished_at = ?"
        " WHERE state = 'pending' AND depends_on != '[]' AND EXISTS ("
        " SELECT 1 FROM json_each(jobs.depends_on) AS d JOIN jobs AS j2 ON j2.id = d.value"
        " WHERE j2.state IN ('dead', 'cancelled'))",
        (now,),
    ).rowcount:
        pass


def insert_record(db: sqlite3.Connection, record: JobRecord) -> None:
    """Insert a new job; one whose id is stored already (a submit with ``job_id`` sent
    again) is left as it is."""
    # seq (the rowid) is assigned by SQLite: submission order, for FIFO within a priority.
    db.execute(
        f"INSERT INTO jobs ({COLUMNS}) VALUES ({', '.join('?' for _ in COLUMNS.split(','))})"
        " ON CONFLICT(id) DO NOTHING",
        row_of(record),
    )


def unique_holder(db: sqlite3.Connection, record: JobRecord, now: float) -> str | None:
    """The id of an unfinished job that holds ``record``'s unique key now, if any (inside
    the caller's transaction, so two submitters cannot both miss it)."""
    if record.unique_key is None:
        return None
    row = db.execute(
        "SELECT id FROM jobs WHERE unique_key = ? AND state IN ('pending', 'running')"
        " AND (unique_until IS NULL OR unique_until > ?) ORDER BY seq LIMIT 1",
        (record.unique_key, now),
    ).fetchone()
    return None if row is None else str(row[0])


def schedule_next(db: sqlite3.Connection, record: JobRecord) -> None:
    """Insert a recurring job's next slot, once (see ``_schedule``), in the claim's
    transaction."""
    slot = next_slot(record, first_claim=record.attempts == 0)
    if slot is None:
        return
    if db.execute(
        "SELECT 1 FROM jobs WHERE idempotency_key = ?", (slot.idempotency_key,)
    ).fetchone():
        return
    insert_record(db, slot)


def kind_filter(kinds: Sequence[str] | None) -> tuple[str, tuple[str, ...]]:
    if not kinds:
        return "", ()
    return f" AND kind IN ({', '.join('?' for _ in kinds)})", tuple(kinds)


def note_seen(db: sqlite3.Connection, worker: str, now: float) -> None:
    db.execute(
        "INSERT INTO workers (name, seen_at) VALUES (?, ?)"
        " ON CONFLICT(name) DO UPDATE SET seen_at = excluded.seen_at",
        (worker, now),
    )


def note_attempt(
    db: sqlite3.Connection,
    job_id: str,
    now: float,
    outcome: str,
    error_type: str = "",
    error: str = "",
) -> None:
    """Close the running attempt in the job's history (the last HISTORY_KEEP kept)."""
    row = db.execute(
        "SELECT history, attempts, worker, started_at FROM jobs WHERE id = ?", (job_id,)
    ).fetchone()
    if row is None:
        return
    history = json.loads(row[0]) if row[0] else []
    history.append(
        {
            "attempt": row[1],
            "worker": row[2] or "",
            "started": row[3] or now,
            "ended": now,
            "outcome": outcome,
            "error_type": error_type,
            "error": error[:500],
        }
    )
    db.execute(
        "UPDATE jobs SET history = ? WHERE id = ?", (json.dumps(history[-HISTORY_KEEP:]), job_id)
    )


def bump(db: sqlite3.Connection, name: str) -> None:
    db.execute(
        "INSERT INTO counters (name, value) VALUES (?, 1)"
        " ON CONFLICT(name) DO UPDATE SET value = value + 1",
        (name,),
    )


def row_of(record: JobRecord) -> tuple[Any, ...]:
    return (
        record.id,
        record.kind,
        json.dumps(record.payload),
        record.priority,
        record.state.value,
        record.attempts,
        record.max_attempts,
        record.run_at,
        record.lease_until,
        record.worker,
        json.dumps(record.result) if record.result is not None else None,
        record.error_type,
        record.error,
        record.idempotency_key,
        record.created_at,
        record.finished_at,
        record.every,
        record.cron,
        json.dumps(record.depends_on),
        record.timeout,
        json.dumps(record.context) if record.context else None,
        record.started_at,
        json.dumps(record.history) if record.history else None,
        record.unique_key,
        record.unique_until,
        record.group,
        json.dumps(record.members) if record.members else None,
        record.progress,
        record.progress_message,
    )


def record_of(row: Sequence[Any]) -> JobRecord:
    names = [name.strip() for name in COLUMNS.split(",")]
    data = dict(zip(names, row, strict=True))
    data["payload"] = json.loads(data["payload"])
    data["result"] = json.loads(data["result"]) if data["result"] is not None else None
    data["depends_on"] = json.loads(data["depends_on"])
    data["context"] = json.loads(data["context"]) if data["context"] else {}
    data["history"] = json.loads(data["history"]) if data["history"] else []
    data["group"] = data.pop("group_id")
    data["members"] = json.loads(data["members"]) if data["members"] else []
    return JobRecord.model_validate(data)


def take_one(
    db: sqlite3.Connection,
    worker: str,
    kind_filter: tuple[str, tuple[str, ...]],
    lease: float,
    now: float,
) -> JobRecord | None:
    """Claim the next ready job for ``worker`` (inside the caller's transaction): a job
    whose lease ran out first (taken over, its lost attempt noted, or buried when it was
    its last), as on Redis; else the pending one of highest priority, oldest first,
    whose dependencies are done.

    Two queries, not one with an OR: each walks the ``jobs_ready`` index in claim order
    and stops at the first match, where the OR made SQLite sort every pending row at
    every claim (4.8 ms a claim with 7,000 pending, against 0.02 ms).
    """
    where_kind, params = kind_filter
    while True:
        row = (
            db.execute(
                f"SELECT {COLUMNS} FROM jobs WHERE state = 'running' AND lease_until < ?"
                f"{where_kind} AND {DEPENDENCIES_DONE} ORDER BY priority DESC, seq LIMIT 1",
                (now, *params),
            ).fetchone()
            or db.execute(
                f"SELECT {COLUMNS} FROM jobs WHERE state = 'pending' AND run_at <= ?"
                f"{where_kind} AND {DEPENDENCIES_DONE} ORDER BY priority DESC, seq LIMIT 1",
                (now, *params),
            ).fetchone()
        )
        if row is None:
            return None
        record = record_of(row)
        if record.state is JobState.RUNNING:  # taken over: its worker stopped
            last = record.attempts >= record.max_attempts
            lost = f"worker {record.worker} stopped during the attempt (lease ran out)"
            note_attempt(db, record.id, now, "dead" if last else "lost", "WorkerLost", lost)
        if record.attempts >= record.max_attempts:  # its last run died with it
            db.execute(
                "UPDATE jobs SET state = 'dead', error_type = 'WorkerLost', error = ?,"
                " finished_at = ?, lease_until = NULL WHERE id = ?",
                (f"worker {record.worker} stopped during the last attempt", now, record.id),
            )
            bury_dependents(db, now)
            continue
        db.execute(
            "UPDATE jobs SET state = 'running', worker = ?, lease_until = ?,"
            " attempts = attempts + 1, started_at = ?, progress = NULL,"
            " progress_message = NULL WHERE id = ?",
            (worker, now + lease, now, record.id),
        )
        if record.every is not None or record.cron is not None:
            schedule_next(db, record)
        return record.model_copy(
            update={
                "state": JobState.RUNNING,
                "worker": worker,
                "started_at": now,
                "lease_until": now + lease,
                "attempts": record.attempts + 1,
                "progress": None,
                "progress_message": None,
            }
        )

"""The embedded job store: one SQLite file shared by every process on a machine.

Claims are atomic across processes (``BEGIN IMMEDIATE`` takes the write lock before the
ready job is chosen), the journal is WAL so readers never block the writer, and every
operation runs in a worker thread so the event loop never waits on the disk.
``memory://`` uses the same code on a private in-memory database (one process only).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from ..core._errors import StoreError
from ._models import JobRecord, JobState, QueueStatistics, WorkerReport
from ._sqlite_errors import add_columns, check_path, check_schema, store_error
from ._sqlite_reads import (
    depth_of,
    find_jobs,
    finished_of,
    groups_of,
    job_of,
    keep_report,
    records_of,
    reports_of,
    running_of,
    states_of,
    statistics_of,
)
from ._sqlite_schema import (
    ADDED_COLUMNS,
    FIRST_COLUMNS,
    LATER_INDEXES,
    NO_DEAD_DEPENDENCY,
    SCHEMA,
    bump,
    bury_dependents,
    insert_record,
    kind_filter,
    note_attempt,
    note_seen,
    take_one,
    transaction,
    unique_holder,
)
from ._store import SingleCalls
from ._wake import Wakeups

__all__ = ["SQLiteStore"]

T = TypeVar("T")


class SQLiteStore(SingleCalls):
    """Job records in SQLite.

    Args:
        path: A database file (created if missing), or ":memory:".
        clock: Returns now in epoch seconds; a seam for tests of schedules and leases.
        create: Create the file (and its folder) when missing; False for a reader,
            which refuses a missing file rather than make one from a typo.

    Raises:
        StoreError: The file cannot be used (or, with ``create=False``, is missing).
    """

    def __init__(
        self, path: str | Path, *, clock: Callable[[], float] = time.time, create: bool = True
    ) -> None:
        self.path = str(path)
        if not create and self.path != ":memory:" and not Path(self.path).is_file():
            raise StoreError(
                f"no queue at {self.path}: the file does not exist (a queue is made by its "
                "first submit or worker); check the path or the URL"
            )
        self._clock = clock
        self._lock = threading.Lock()
        self._work = Wakeups()  # a job was added or made ready in this process
        self._finished = Wakeups()  # a job finished in this process
        if self.path != ":memory:":
            check_path(Path(self.path))
        try:
            self._db = sqlite3.connect(
                self.path, timeout=30.0, isolation_level=None, check_same_thread=False
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            check_schema(self._db, self.path, FIRST_COLUMNS)
            self._db.executescript(SCHEMA)
            add_columns(self._db, ADDED_COLUMNS)
            for index in LATER_INDEXES:
                self._db.execute(index)
        except sqlite3.Error as exc:
            raise store_error(exc, self.path) from exc

    def __repr__(self) -> str:
        return f"SQLiteStore({self.path!r})"

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        def locked() -> T:
            with self._lock:
                try:
                    return fn(self._db)
                except sqlite3.Error as exc:
                    raise store_error(exc, self.path) from exc

        return await asyncio.to_thread(locked)

    async def close(self) -> None:
        """Close the database."""
        await self._run(lambda db: db.close())

    # -- waiting -------------------------------------------------------------------

    blocking_wait = False  # woken from this process only: a worker polls as well

    def _changed(self) -> None:
        """A job finished or went back to the queue: wake this process's waiters."""
        self._finished.notify()
        self._work.notify()

    async def wait_for_work(self, within: float) -> None:
        """Return when this process adds or retries a job, or after ``within`` s."""
        await self._work.wait(within)

    async def wake_workers(self) -> None:
        """Wake this process's idle workers now."""
        self._work.notify()

    async def wait_finished(self, job_ids: Sequence[str], within: float) -> list[str] | None:
        """Return when a job finishes in this process, or after ``within`` s (other
        processes' changes are seen by the caller's next check). Which job is not
        known here: None."""
        await self._finished.wait(within)
        return None

    async def finished(self, job_ids: Sequence[str]) -> list[JobRecord]:
        """The records of those of ``job_ids`` that are completed, dead or cancelled."""
        return await self._run(lambda db: finished_of(db, job_ids))

    # -- writes ----------------------------------------------------------------------

    async def add(self, record: JobRecord) -> str:
        """Store a new job; with an idempotency key already used, return that job's id."""

        return (await self.add_many([record]))[0]

    async def add_many(self, records: Sequence[JobRecord]) -> list[str]:
        """Store new jobs in one transaction; ids in order (an existing key's id for each)."""

        def insert(db: sqlite3.Connection) -> list[str]:
            ids = []
            with transaction(db):
                for record in records:
                    row = None
                    if record.idempotency_key is not None:
                        row = db.execute(
                            "SELECT id FROM jobs WHERE idempotency_key = ?",
                            (record.idempotency_key,),
                        ).fetchone()
                    if row is None and record.unique_key is not None:
                        held = unique_holder(db, record, self._clock())
                        row = None if held is None else (held,)
                    if row is None:
                        insert_record(db, record)
                    ids.append(record.id if row is None else str(row[0]))
                if any(record.depends_on for record in records):
                    # A dependency that already ended dead or cancelled buries it now.
                    bury_dependents(db, self._clock())
            return ids

        ids = await self._run(insert)
        self._work.notify()
        return ids

    async def claim_many(
        self, worker: str, *, kinds: Sequence[str] | None, lease: float, limit: int
    ) -> list[JobRecord]:
        """Take up to ``limit`` ready jobs in one transaction, in claim order."""

        kinds_where = kind_filter(kinds)

        def take(db: sqlite3.Connection) -> list[JobRecord]:
            now = self._clock()
            taken: list[JobRecord] = []
            with transaction(db):
                note_seen(db, worker, now)
                while len(taken) < limit:
                    record = take_one(db, worker, kinds_where, lease, now)
                    if record is None:
                        break
                    taken.append(record)
            return taken

        return await self._run(take)

    async def heartbeat_many(
        self, job_ids: Sequence[str], worker: str, *, lease: float
    ) -> list[bool]:
        """Extend the leases of running jobs; per job, False if the worker no longer
        holds it."""

        def extend(db: sqlite3.Connection) -> list[bool]:
            now = self._clock()
            with transaction(db):
                note_seen(db, worker, now)
                return [
                    db.execute(
                        "UPDATE jobs SET lease_until = ? WHERE id = ? AND worker = ?"
                        " AND state = 'running'",
                        (now + lease, job_id, worker),
                    ).rowcount
                    == 1
                    for job_id in job_ids
                ]

        return await self._run(extend) if job_ids else []

    async def held(self, job_ids: Sequence[str], worker: str) -> list[bool]:
        """Per job, True while it is running and ``worker`` holds it: one read by primary
        key (no lease is touched), so a worker can watch for aborts often."""
        if not job_ids:
            return []
        running = await self._run(lambda db: running_of(db, job_ids, worker))
        return [job_id in running for job_id in job_ids]

    async def complete_many(self, worker: str, results: Sequence[tuple[str, Any]]) -> list[bool]:
        """Store results in one transaction; per job, False (and nothing stored) if the
        lease was lost meanwhile."""
        encoded = [(job_id, json.dumps(result)) for job_id, result in results]

        def finish(db: sqlite3.Connection) -> list[bool]:
            now = self._clock()
            stored = []
            with transaction(db):
                for job_id, text in encoded:
                    done = (
                        db.execute(
                            "UPDATE jobs SET state = 'completed', result = ?, finished_at = ?,"
                            " lease_until = NULL WHERE id = ? AND worker = ? AND state = 'running'",
                            (text, now, job_id, worker),
                        ).rowcount
                        == 1
                    )
                    if done:
                        note_attempt(db, job_id, now, "ok")
                    stored.append(done)
            return stored

        if not encoded:
            return []
        stored = await self._run(finish)
        self._changed()
        return stored

    async def fail(
        self, job_id: str, worker: str, *, error_type: str, error: str, retry_at: float | None
    ) -> JobState | None:
        """Record a failed run: back to pending at ``retry_at``, or dead (None: no retry).

        Returns:
            The job's new state, or None if the worker had lost the lease.
        """

        def record(db: sqlite3.Connection) -> JobState | None:
            now = self._clock()
            with transaction(db):
                row = db.execute(
                    "SELECT attempts, max_attempts FROM jobs WHERE id = ? AND worker = ?"
                    " AND state = 'running'",
                    (job_id, worker),
                ).fetchone()
                if row is None:
                    return None
                retried = retry_at is not None and row[0] < row[1]
                note_attempt(db, job_id, now, "retried" if retried else "dead", error_type, error)
                if retried:
                    db.execute(
                        "UPDATE jobs SET state = 'pending', run_at = ?, lease_until = NULL,"
                        " worker = NULL, error_type = ?, error = ? WHERE id = ?",
                        (retry_at, error_type, error, job_id),
                    )
                    bump(db, "retried")
                    return JobState.PENDING
                db.execute(
                    "UPDATE jobs SET state = 'dead', lease_until = NULL, error_type = ?,"
                    " error = ?, finished_at = ? WHERE id = ?",
                    (error_type, error, now, job_id),
                )
                bury_dependents(db, now)
                return JobState.DEAD

        state = await self._run(record)
        self._changed()
        return state

    async def postpone(
        self, job_id: str, worker: str, *, run_at: float, error_type: str, error: str
    ) -> bool:
        """Give a running job back, pending at ``run_at``, without using an attempt (its
        run could not start for a reason outside the job: an empty credit balance).
        False if the worker had lost the lease."""

        def back(db: sqlite3.Connection) -> bool:
            with transaction(db):
                held = db.execute(
                    "SELECT 1 FROM jobs WHERE id = ? AND worker = ? AND state = 'running'",
                    (job_id, worker),
                ).fetchone()
                if held:
                    note_attempt(db, job_id, self._clock(), "postponed", error_type, error)
                cursor = db.execute(
                    "UPDATE jobs SET state = 'pending', run_at = ?, lease_until = NULL,"
                    " worker = NULL, attempts = MAX(attempts - 1, 0), error_type = ?,"
                    " error = ? WHERE id = ? AND worker = ? AND state = 'running'",
                    (run_at, error_type, error, job_id, worker),
                )
                return cursor.rowcount == 1

        back_ok = await self._run(back)
        self._work.notify()
        return back_ok

    async def cancel(self, job_id: str) -> bool:
        """Cancel a pending or running job (its worker loses the lease); False if it is
        finished or unknown."""

        def stop(db: sqlite3.Connection) -> bool:
            now = self._clock()
            with transaction(db):
                if db.execute(
                    "SELECT 1 FROM jobs WHERE id = ? AND state = 'running'", (job_id,)
                ).fetchone():
                    note_attempt(
                        db, job_id, now, "cancelled", "Cancelled", "cancelled while running"
                    )
                cursor = db.execute(
                    "UPDATE jobs SET state = 'cancelled', finished_at = ?, lease_until = NULL,"
                    " worker = NULL WHERE id = ? AND state IN ('pending', 'running')",
                    (now, job_id),
                )
                if cursor.rowcount != 1:
                    return False
                bury_dependents(db, now)
                return True

        stopped = await self._run(stop)
        self._changed()
        return stopped

    async def requeue(self, job_ids: Sequence[str]) -> list[str]:
        """Run dead or cancelled jobs again: pending now, attempts from 0, same payload;
        the last error is kept. A job whose dependency ended dead or cancelled (or is
        gone) is left as it is. Returns the ids requeued."""

        def again(db: sqlite3.Connection) -> list[str]:
            now = self._clock()
            done: list[str] = []
            with transaction(db):
                for job_id in job_ids:
                    cursor = db.execute(
                        "UPDATE jobs SET state = 'pending', attempts = 0, run_at = ?,"
                        " finished_at = NULL, worker = NULL, lease_until = NULL WHERE id = ?"
                        f" AND state IN ('dead', 'cancelled') AND {NO_DEAD_DEPENDENCY}",
                        (now, job_id),
                    )
                    if cursor.rowcount == 1:
                        done.append(job_id)
            return done

        done = await self._run(again)
        self._work.notify()
        return done

    async def find(
        self, *, state: JobState | None = None, kind: str | None = None, limit: int = 100
    ) -> list[JobRecord]:
        """Jobs in ``state`` (any: None) of ``kind`` (any: None), newest first."""
        return await self._run(lambda db: find_jobs(db, state, kind, limit))

    async def purge(self, older_than: float) -> int:
        """Delete finished jobs (completed, dead, cancelled) older than ``older_than`` s."""

        def delete(db: sqlite3.Connection) -> int:
            cursor = db.execute(
                "DELETE FROM jobs WHERE state IN ('completed', 'dead', 'cancelled')"
                " AND finished_at < ?",
                (self._clock() - older_than,),
            )
            return cursor.rowcount

        return await self._run(delete)

    async def report_progress(
        self, job_id: str, worker: str, fraction: float, message: str | None
    ) -> bool:
        """Store a running job's progress; False (nothing stored) if ``worker`` no longer
        holds it."""

        def note(db: sqlite3.Connection) -> bool:
            cursor = db.execute(
                "UPDATE jobs SET progress = ?, progress_message = ? WHERE id = ? AND worker = ?"
                " AND state = 'running'",
                (fraction, message, job_id, worker),
            )
            return cursor.rowcount == 1

        return await self._run(note)

    # -- reads -----------------------------------------------------------------------

    async def get(self, job_id: str) -> JobRecord | None:
        """The job's record, or None."""
        return await self._run(lambda db: job_of(db, job_id))

    async def get_many(self, job_ids: Sequence[str]) -> list[JobRecord | None]:
        """The records of ``job_ids``, in their order (None for an unknown id)."""
        return await self._run(lambda db: records_of(db, job_ids)) if job_ids else []

    async def states(self, job_ids: Sequence[str]) -> list[tuple[JobState, float | None] | None]:
        """The state and progress of ``job_ids``, in their order (None: unknown)."""
        return await self._run(lambda db: states_of(db, job_ids)) if job_ids else []

    async def groups(self, limit: int) -> list[JobRecord]:
        """The groups' own records (see ``submit_group``), newest first."""
        return await self._run(lambda db: groups_of(db, limit))

    async def depth(self) -> dict[tuple[str, str], int]:
        """Jobs by (state, kind); "scheduled" is pending with a ``run_at`` to come."""
        return await self._run(lambda db: depth_of(db, self._clock()))

    async def report(self, worker: str, status: dict[str, Any], *, ttl: float) -> None:
        """Keep ``worker``'s latest report for ``ttl`` seconds."""
        await self._run(lambda db: keep_report(db, worker, status, now=self._clock(), ttl=ttl))

    async def worker_reports(self) -> list[WorkerReport]:
        """The live workers' latest reports, by name."""
        return await self._run(lambda db: reports_of(db, self._clock()))

    async def statistics(self) -> QueueStatistics:
        """Counts by state, retries made, and workers seen in the last minute."""
        return await self._run(lambda db: statistics_of(db, self._clock()))

"""Background jobs: a durable queue (SQLite embedded, in memory, or Redis) and its workers.

The everyday names (``open_queue``, ``JobQueue``, ``Worker``, ``open_worker``,
``JobRecord``, ``JobState``, ``QueueStatistics``) are also in :mod:`asyncgen`; the rest
(tasks, groups' outcomes, progress reports, the blocking twins, the stores, metrics
and alerts) live here only: ``from asyncgen.queue import task, report_progress``.
"""

from ._credits import CreditPause as CreditPause
from ._groups import GroupOutcome as GroupOutcome
from ._groups import GroupStatus as GroupStatus
from ._groups import MemberOutcome as MemberOutcome
from ._metrics import Alert as Alert
from ._metrics import AlertEvent as AlertEvent
from ._metrics import Metrics as Metrics
from ._models import JobRecord as JobRecord
from ._models import JobState as JobState
from ._models import QueueStatistics as QueueStatistics
from ._models import WorkerReport as WorkerReport
from ._open import open_queue as open_queue
from ._progress import current_job_id as current_job_id
from ._progress import report_progress as report_progress
from ._queue import BlockingJobQueue as BlockingJobQueue
from ._queue import JobQueue as JobQueue
from ._redis import RedisStore as RedisStore
from ._sqlite import SQLiteStore as SQLiteStore
from ._store import JobStore as JobStore
from ._tasks import Task as Task
from ._tasks import TaskCall as TaskCall
from ._tasks import task as task
from ._worker import Worker as Worker
from ._worker import open_worker as open_worker
from ._worker_thread import WorkerThread as WorkerThread

__all__ = [
    "Alert",
    "AlertEvent",
    "BlockingJobQueue",
    "CreditPause",
    "GroupOutcome",
    "GroupStatus",
    "JobQueue",
    "JobRecord",
    "JobState",
    "JobStore",
    "MemberOutcome",
    "Metrics",
    "QueueStatistics",
    "RedisStore",
    "SQLiteStore",
    "Task",
    "TaskCall",
    "Worker",
    "WorkerReport",
    "WorkerThread",
    "current_job_id",
    "open_queue",
    "open_worker",
    "report_progress",
    "task",
]

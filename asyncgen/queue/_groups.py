"""Job groups: members submitted together, followed together, and one record of the
group's own that runs (its ``on_complete`` task) once every member has ended.

The group's own record is a job like any other: its id is the group's id, its
``members`` are the members' ids in the order submitted, and each member's ``group`` is
that id. The store keeps it from being claimed until no member is pending or running
(SQLite: an index lookup at claim; Redis: a counter the scripts that end a job bring
down), so it runs once however many workers end members at the same moment.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Any

from ._models import JobRecord, JobState

__all__ = [
    "GROUP_KIND",
    "GroupOutcome",
    "GroupStatus",
    "MemberOutcome",
    "MemberState",
    "group_status_of",
    "outcome_of",
]

GROUP_KIND = "asyncgen.group"  # a group without on_complete: every worker ends it


@dataclass(frozen=True, slots=True)
class MemberOutcome:
    """How one member of a group ended.

    Attributes:
        id: The member's job id.
        state: completed, dead or cancelled ("gone" when its record was purged).
        result: Its return value when completed, else None.
        error_type: The last error's class name, when it did not complete.
        error: The last error's message.
    """

    id: str
    state: str
    result: Any = None
    error_type: str | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        """True when the member completed."""
        return self.state == JobState.COMPLETED.value


@dataclass(frozen=True, slots=True)
class GroupOutcome:
    """What a group's ``on_complete`` task receives: every member's outcome, in the
    order the members were submitted.

    A task takes it by a parameter annotated ``GroupOutcome`` (any name); the worker
    fills it in, so ``task.call(...)`` leaves it out::

        @queue.task
        async def summarise(group: GroupOutcome, title: str) -> str: ...

        await queue.submit_group(jobs, on_complete=summarise.call(title="Q3"))
    """

    id: str
    members: list[MemberOutcome]

    def __len__(self) -> int:
        return len(self.members)

    @property
    def results(self) -> list[Any]:
        """Each member's result, in order (None for one that did not complete)."""
        return [member.result for member in self.members]

    @property
    def completed(self) -> list[MemberOutcome]:
        """The members that completed, in order."""
        return [member for member in self.members if member.ok]

    @property
    def failed(self) -> list[MemberOutcome]:
        """The members that did not complete (dead, cancelled or gone), in order."""
        return [member for member in self.members if not member.ok]

    def summary(self) -> dict[str, int]:
        """Members by how they ended: ``{"completed": 5, "dead": 1}``."""
        return dict(Counter(member.state for member in self.members))


@dataclass(frozen=True, slots=True)
class GroupStatus:
    """Where a group is: its members by state, its progress and an estimate of the rest.

    Attributes:
        id: The group's id (returned by ``submit_group``).
        size: How many members it has.
        pending: Members waiting to run (scheduled and retrying ones included).
        running: Members running now.
        completed: Members that completed.
        dead: Members that went dead.
        cancelled: Members that were cancelled.
        gone: Members whose records were purged or expired.
        progress: The share of the work done, 0.0 to 1.0: ended members count whole,
            running ones by what they reported (``report_progress``).
        on_complete: The task that runs when every member has ended (None: none).
        state: The group's own record: pending until its members have ended (and its
            ``on_complete`` has run), then completed, dead (``on_complete`` failed for
            good) or cancelled.
        created_at: Epoch seconds of the submit.
        finished_at: Epoch seconds the group's own record ended, if it has.
        eta: Seconds left at the pace so far (None before anything ended, or when done).
    """

    id: str
    size: int
    pending: int
    running: int
    completed: int
    dead: int
    cancelled: int
    gone: int
    progress: float
    on_complete: str | None
    state: JobState
    created_at: float
    finished_at: float | None
    eta: float | None

    @property
    def ended(self) -> int:
        """Members that will not run again (completed, dead, cancelled or gone)."""
        return self.completed + self.dead + self.cancelled + self.gone

    @property
    def done(self) -> bool:
        """True when every member has ended and the group's own record has too."""
        return self.ended == self.size and self.state not in (
            JobState.PENDING,
            JobState.RUNNING,
        )


def outcome_of(group: JobRecord, members: list[JobRecord | None]) -> GroupOutcome:
    """The outcome an ``on_complete`` task receives, from the members' records (in the
    group's order; None for a purged one)."""
    return GroupOutcome(
        group.id,
        [
            MemberOutcome(member_id, "gone", error_type="Gone", error="its record was purged")
            if record is None
            else MemberOutcome(
                record.id,
                record.state.value,
                record.result if record.state is JobState.COMPLETED else None,
                None if record.state is JobState.COMPLETED else record.error_type,
                None if record.state is JobState.COMPLETED else record.error,
            )
            for member_id, record in zip(group.members, members, strict=True)
        ],
    )


MemberState = tuple[JobState, float | None] | None  # a member's state and progress; None: gone


def group_status_of(group: JobRecord, members: list[MemberState], now: float) -> GroupStatus:
    """A group's status from its own record and its members' states and progress (in
    the group's order; None for a purged member), as ``JobStore.states`` reads them."""
    states = Counter(member[0] if member is not None else None for member in members)
    size = len(group.members)
    ended = size - states[JobState.PENDING] - states[JobState.RUNNING]
    running_share = sum(
        member[1] or 0.0
        for member in members
        if member is not None and member[0] is JobState.RUNNING
    )
    progress = min(1.0, (ended + running_share) / size) if size else 1.0
    eta: float | None = None
    if 0 < progress < 1:
        elapsed = max(0.0, now - group.created_at)
        eta = elapsed * (1 - progress) / progress
    return GroupStatus(
        id=group.id,
        size=size,
        pending=states[JobState.PENDING],
        running=states[JobState.RUNNING],
        completed=states[JobState.COMPLETED],
        dead=states[JobState.DEAD],
        cancelled=states[JobState.CANCELLED],
        gone=states[None],
        progress=progress if math.isfinite(progress) else 0.0,
        on_complete=None if group.kind == GROUP_KIND else group.kind,
        state=group.state,
        created_at=group.created_at,
        finished_at=group.finished_at,
        eta=eta,
    )

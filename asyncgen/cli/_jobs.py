"""``asyncgen jobs``: look at a queue and act on its jobs (list, show, requeue, ...).

Exit codes: 0 done; 1 asked for something that was not there or not changed (an unknown
id, a job that could not be cancelled or requeued); 2 a usage error or a store that
cannot be used. Payloads, results and errors are shown with secrets masked.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from ..core._errors import AsyncGenError
from ..core._logging import mask_secrets
from ..queue import GroupStatus, JobQueue, JobRecord, JobState, open_queue
from ._args import add_settings_flag, load_settings, number, whole
from ._files import UsageProblem
from ._interrupts import run

__all__ = ["add_jobs_parser"]

EXIT_OK, EXIT_MISSING, EXIT_USAGE = 0, 1, 2
STATES = [state.value for state in JobState]
ERROR_WIDTH = 60
SHOWN = (
    "id",
    "kind",
    "state",
    "attempts",
    "max_attempts",
    "priority",
    "worker",
    "idempotency_key",
    "every",
    "cron",
    "depends_on",
    "group",
    "error_type",
    "error",
)


def add_jobs_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Declare ``asyncgen jobs`` and its subcommands."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--queue",
        help="queue URL (default: ASYNCGEN_QUEUE_URL or queue_url in asyncgen.toml, else "
        "sqlite:///asyncgen-jobs.db; prefer the variable for a URL with a password)",
    )
    add_settings_flag(common)
    jobs = commands.add_parser(
        "jobs",
        help="list, show, requeue, cancel and purge a queue's jobs",
        description="Look at a queue and act on its jobs. Exit codes: 0 done, 1 an id "
        "that was not there or a job that could not be changed, 2 usage or store error.",
    )
    actions = jobs.add_subparsers(dest="action", required=True)

    listing = actions.add_parser("list", parents=[common], help="jobs by state and kind")
    listing.add_argument("--state", choices=STATES, help="only jobs in this state")
    listing.add_argument("--kind", help="only jobs of this task name ('generate' for LLM jobs)")
    _listing_flags(listing, "jobs", 50)
    listing.set_defaults(handler=jobs_command, act=_list)

    show = actions.add_parser("show", parents=[common], help="one job in full")
    show.add_argument("id")
    show.add_argument("--json", action="store_true", help="the record as JSON")
    show.set_defaults(handler=jobs_command, act=_show)

    requeue = actions.add_parser(
        "requeue",
        parents=[common],
        help="run dead (or cancelled) jobs again",
        description="Run dead or cancelled jobs again with fresh attempts and the same "
        "payload: the ids given, or with --all-dead every dead job (of --kind).",
    )
    requeue.add_argument("ids", nargs="*", help="job ids")
    requeue.add_argument("--all-dead", action="store_true", help="every dead job")
    requeue.add_argument("--kind", help="only jobs of this task name")
    requeue.set_defaults(handler=jobs_command, act=_requeue)

    cancel = actions.add_parser(
        "cancel",
        parents=[common],
        help="cancel pending or running jobs (a running one is stopped at its worker's next "
        "heartbeat)",
    )
    cancel.add_argument("ids", nargs="+", help="job ids")
    cancel.set_defaults(handler=jobs_command, act=_cancel)

    purge = actions.add_parser("purge", parents=[common], help="delete old finished jobs")
    purge.add_argument(
        "--older-than",
        type=number("seconds", zero=True),
        required=True,
        help="finished (completed, dead, cancelled) this long ago",
    )
    purge.set_defaults(handler=jobs_command, act=_purge)

    groups = actions.add_parser(
        "groups", parents=[common], help="the newest groups: members by state, progress, ETA"
    )
    _listing_flags(groups, "groups", 20)
    groups.set_defaults(handler=jobs_command, act=_groups)

    stats = actions.add_parser("stats", parents=[common], help="counts by state")
    stats.add_argument("--json", action="store_true", help="as JSON")
    stats.set_defaults(handler=jobs_command, act=_stats)


def _listing_flags(parser: argparse.ArgumentParser, what: str, default: int) -> None:
    parser.add_argument(
        "--limit",
        type=whole(what, minimum=1),
        default=default,
        help=f"at most this many, newest first (default {default})",
    )
    parser.add_argument("--json", action="store_true", help="one JSON object per line")


Act = Callable[[JobQueue, argparse.Namespace], Awaitable[int]]


def jobs_command(args: argparse.Namespace) -> int:
    """Open the queue, run the subcommand, close; returns the exit code."""
    try:
        settings = load_settings(args.settings)
        url = args.queue or settings.queue_url
        if url == "memory://":
            raise UsageProblem("memory:// lives inside one process: there is nothing to look at")
        queue = open_queue(url, create=False)  # a typo must not make a new queue file
        act: Act = args.act
        return run(_with(queue, act, args))
    except (UsageProblem, ValueError, AsyncGenError) as exc:
        sys.stderr.write(f"asyncgen jobs: {exc}\n")
        return EXIT_USAGE


async def _with(queue: JobQueue, act: Act, args: argparse.Namespace) -> int:
    try:
        return await act(queue, args)
    finally:
        await queue.aclose()


def _out(text: str) -> None:
    sys.stdout.write(text + "\n")


def _when(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _public(record: JobRecord) -> dict[str, Any]:
    """The record as JSON-ready data, secrets masked in payload, result and error."""
    data = record.model_dump(mode="json")
    for name in ("payload", "result"):
        data[name] = json.loads(mask_secrets(json.dumps(data[name])))
    if data["error"]:
        data["error"] = mask_secrets(data["error"])
    return data


async def _list(queue: JobQueue, args: argparse.Namespace) -> int:
    records = await queue.jobs(state=args.state, kind=args.kind, limit=args.limit)
    if args.json:
        for record in records:
            _out(json.dumps(_public(record)))
        return EXIT_OK
    rows = [("ID", "KIND", "STATE", "TRIES", "PRIO", "WHEN (UTC)", "ERROR")]
    for record in records:
        error = (
            f"{record.error_type}: {mask_secrets(record.error or '')}" if record.error_type else ""
        )
        when = record.finished_at if record.finished_at is not None else record.run_at
        rows.append(
            (
                record.id,
                record.kind,
                record.state.value,
                f"{record.attempts}/{record.max_attempts}",
                str(record.priority),
                _when(when),
                _short(error),
            )
        )
    _table(rows)
    if not records:
        _out("(no jobs)")
    return EXIT_OK


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= ERROR_WIDTH else text[: ERROR_WIDTH - 3] + "..."


def _table(rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        _out("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


async def _show(queue: JobQueue, args: argparse.Namespace) -> int:
    record = await queue.store.get(args.id)
    if record is None:
        sys.stderr.write(f"asyncgen jobs: no job {args.id!r} in {queue.url}\n")
        return EXIT_MISSING
    data = _public(record)
    if args.json:
        _out(json.dumps(data, indent=2))
        return EXIT_OK
    for name in SHOWN:
        if data[name] not in (None, [], ""):
            _out(f"{name + ':':17} {data[name]}")
    for name in ("created_at", "run_at", "lease_until", "finished_at"):
        if data[name] is not None:
            _out(f"{name + ':':17} {_when(data[name])}")
    if record.progress is not None:
        said = f" {mask_secrets(record.progress_message)}" if record.progress_message else ""
        _out(f"{'progress:':17} {record.progress:.0%}{said}")
    if record.members:
        status = await queue.group_status(record.id)
        _out(f"{'members:':17} {status.size}: {_states(status)}")
        _out(f"{'group progress:':17} {status.progress:.0%}{_eta(status)}")
    _out(f"{'payload:':17} {json.dumps(data['payload'], ensure_ascii=False)}")
    if data["result"] is not None:
        _out(f"{'result:':17} {json.dumps(data['result'], ensure_ascii=False)}")
    return EXIT_OK


def _states(status: GroupStatus) -> str:
    counts = [
        (status.pending, "pending"),
        (status.running, "running"),
        (status.completed, "completed"),
        (status.dead, "dead"),
        (status.cancelled, "cancelled"),
        (status.gone, "purged"),
    ]
    return ", ".join(f"{count} {name}" for count, name in counts if count) or "none"


def _eta(status: GroupStatus) -> str:
    return "" if status.eta is None else f", about {status.eta:.0f} s to go at this pace"


async def _groups(queue: JobQueue, args: argparse.Namespace) -> int:
    statuses = await queue.groups(limit=args.limit)
    if args.json:
        for status in statuses:
            data = dataclasses.asdict(status)
            data["state"] = status.state.value
            _out(json.dumps(data))
        return EXIT_OK
    rows = [("GROUP", "ON_COMPLETE", "STATE", "MEMBERS", "PROGRESS", "ETA", "CREATED (UTC)")]
    for status in statuses:
        rows.append(
            (
                status.id,
                status.on_complete or "-",
                status.state.value,
                f"{status.size}: {_states(status)}",
                f"{status.progress:.0%}",
                "-" if status.eta is None else f"{status.eta:.0f} s",
                _when(status.created_at),
            )
        )
    _table(rows)
    if not statuses:
        _out("(no groups)")
    return EXIT_OK


async def _requeue(queue: JobQueue, args: argparse.Namespace) -> int:
    if bool(args.ids) == bool(args.all_dead):
        raise UsageProblem("give job ids, or --all-dead (with --kind for one task), not both")
    done = await queue.requeue(args.ids or None, kind=args.kind)
    _out(f"requeued {len(done)} job(s)")
    left = [job_id for job_id in args.ids if job_id not in set(done)]
    for job_id in left:
        sys.stderr.write(
            f"asyncgen jobs: {job_id}: not requeued (unknown, not dead or cancelled, of another "
            "kind, or a dependency of it ended dead)\n"
        )
    return EXIT_MISSING if left else EXIT_OK


async def _cancel(queue: JobQueue, args: argparse.Namespace) -> int:
    missed = 0
    for job_id in args.ids:
        if await queue.cancel(job_id):
            _out(f"cancelled {job_id}")
        else:
            missed += 1
            sys.stderr.write(f"asyncgen jobs: {job_id}: not cancelled (unknown, or not pending)\n")
    return EXIT_MISSING if missed else EXIT_OK


async def _purge(queue: JobQueue, args: argparse.Namespace) -> int:
    _out(f"purged {await queue.purge(older_than=args.older_than)} job(s)")
    return EXIT_OK


async def _stats(queue: JobQueue, args: argparse.Namespace) -> int:
    counts = dataclasses.asdict(await queue.statistics())
    if args.json:
        _out(json.dumps(counts))
    else:
        _table([(name, str(value)) for name, value in counts.items()])
    return EXIT_OK

"""``asyncgen run --batch-api``: the same input and output files, through the provider's
Batch API (about half the price, answers within 24 hours).

The batches' request files and ``state.json`` live in ``OUTPUT.batch/`` beside the
output; running the same command again after a kill picks up the batches in flight
(no batch is created twice) and skips the answers already written. ``--cancel`` cancels
the batches in flight and writes what they had done. The folder is removed once every
batch has been read.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from pydantic import BaseModel
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn

from ..core._errors import AsyncGenError, ConnectionFailedError, TransientError
from ..core._logging import mask_secrets
from ..llm import ChatClient
from ..llm.batch_api._folder import BatchStateError, read_state
from ..llm.batch_api._run import BatchApiProgress, BatchOutcome, BatchRun
from ..llm.engine._events import ResultCounts
from ._files import UsageProblem, read_jobs
from ._output import ResultWriter, Resume
from ._progress import cache_summary

__all__ = ["batch_failure", "batch_folder", "check_batches", "run_batch_api"]

PLAIN_EVERY = 2.0


def batch_folder(output: Path) -> Path:
    """Where a run's batches are kept: ``OUTPUT.batch/`` beside the output (the file it
    names once links are followed)."""
    real = output.resolve()
    return real.with_name(real.name + ".batch")


def check_batches(args: argparse.Namespace) -> None:
    """Before a run (under the output's lock): forget the recorded batches when asked;
    refuse a damaged state, and an online run while batches are in flight (it would pay
    for their jobs twice, and the next --batch-api run would drop their answers).

    Raises:
        UsageProblem: What to do instead.
    """
    folder = batch_folder(args.output)
    if args.forget_batches:
        if folder.exists():
            forgotten = len(_records(folder))
            shutil.rmtree(folder)
            sys.stderr.write(
                f"asyncgen: forgot {forgotten} recorded batch(es) "
                f"({folder} removed); their jobs run again\n"
            )
        return
    flying = [r for r in _records(folder) if not r.done]
    if flying and not args.batch_api:
        requests = sum(r.requests for r in flying)
        raise UsageProblem(
            f"{folder} holds {len(flying)} batch(es) in flight from a --batch-api run "
            f"({requests} requests): run the same command with --batch-api to pick up "
            "their answers, or with --batch-api --cancel to cancel them (what they did is "
            "written); an online run now would pay for those jobs twice (--forget-batches "
            "drops them unread)"
        )


def _records(folder: Path) -> list[Any]:
    try:
        return read_state(folder)
    except BatchStateError as exc:
        raise UsageProblem(str(exc)) from None


def batch_failure(error: AsyncGenError) -> str:
    """How to introduce a Batch API error: unreachable, failing, or refusing."""
    if isinstance(error, ConnectionFailedError):
        return "could not reach the Batch API"
    if isinstance(error, TransientError):
        return "the Batch API kept failing"
    return "the Batch API refused"


def record(outcome: BatchOutcome) -> dict[str, Any]:
    """An outcome as a result line, in the online mode's format."""
    completion, error = outcome.completion, outcome.error
    return {
        "id": outcome.id,
        "model": outcome.model,
        "ok": error is None and completion is not None,
        "text": completion.text if completion is not None else None,
        "error_type": type(error).__name__ if error is not None else None,
        "error": mask_secrets(str(error)) if error is not None else None,
        "attempts": outcome.attempts,
        "latency": 0.0,
        "usage": completion.usage.model_dump() if completion is not None else None,
        "fingerprint": outcome.fingerprint,
        "batch_api": True,
        **({"cached": True} if completion is not None and completion.cached else {}),
        **({"parsed": _jsonable(outcome.parsed)} if outcome.parsed is not None else {}),
    }


def _jsonable(value: Any) -> Any:
    return value.model_dump(mode="json") if isinstance(value, BaseModel) else value


class _Shown:
    """Progress: two live rich bars on a terminal (batches, requests), else plain lines
    (every 2 s at most, and the last one)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.last: BatchApiProgress | None = None
        self._at = 0.0
        self._bar: Progress | None = None
        self._tasks: tuple[TaskID, TaskID] | None = None
        if stream.isatty():
            self._bar = Progress(
                TextColumn("{task.description:>9}"),
                BarColumn(bar_width=24),
                MofNCompleteColumn(),
                TextColumn("{task.fields[extra]}"),
                console=Console(file=stream),
                transient=False,
            )
            self._tasks = (
                self._bar.add_task("batches", total=None, extra=""),
                self._bar.add_task("requests", total=None, extra=""),
            )
            self._bar.start()

    def __call__(self, progress: BatchApiProgress) -> None:
        self.last = progress
        if self._bar is not None and self._tasks is not None:
            batches, requests = self._tasks
            self._bar.update(batches, total=progress.batches, completed=progress.batches_done)
            extra = f"{progress.failed} failed" + (
                f", {progress.online} online" if progress.online else ""
            )
            self._bar.update(
                requests, total=progress.requests, completed=progress.requests_done, extra=extra
            )
            return
        now = time.monotonic()
        if now - self._at >= PLAIN_EVERY:
            self._at = now
            self.show(progress)

    def close(self) -> None:
        """Stop the bars, or print the last plain line."""
        if self._bar is not None:
            self._bar.stop()
        elif self.last is not None:
            self.show(self.last)

    def show(self, p: BatchApiProgress) -> None:
        online = f", {p.online} resent online" if p.online else ""
        self.stream.write(
            f"batch: {p.batches_done}/{p.batches} batches done, {p.requests_done}/"
            f"{p.requests} requests ({p.failed} failed){online}\n"
        )
        self.stream.flush()


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def run_batch_api(
    args: argparse.Namespace, client: ChatClient, resume: Resume, todo: int
) -> tuple[int, int]:
    """Submit (or pick up, or cancel) the batches; write each answer as it is read.

    Returns:
        (failed, not written): failed jobs, and jobs left for a later run (not
        submitted after a 402, or not reached by cancelled batches).
    """
    shown = _Shown(sys.stdout)
    counts = ResultCounts()
    with ResultWriter(args.output, resume) as writer:

        def write(outcome: BatchOutcome) -> None:
            before = resume.done.get(outcome.id)
            if before is not None and before.fingerprint in (None, outcome.fingerprint):
                return  # written by an earlier run
            writer.write_record(record(outcome))
            counts.finished(outcome.error is None, outcome.completion)

        run = BatchRun(
            client,
            batch_folder(args.output),
            on_outcome=write,
            on_progress=shown,
            max_requests=args.batch_size,
            poll_interval=args.poll,
            max_poll_interval=max(args.poll, 60.0),
            resubmit=args.batch_fallback,
            response_model=args.schema,
            missing="resubmit" if args.resubmit_missing or args.sim else "stop",
        )
        try:
            if args.cancel:
                cancelled = await run.cancel()
                _say(
                    f"cancelled {cancelled} batch(es) in flight; what they had done is "
                    "written, the rest runs when the command is run again"
                )
            else:
                flying = await run.pick_up()
                if flying:
                    _say(
                        f"picking up {len(run.records)} batch(es) from an earlier run "
                        f"({len(flying)} requests in flight)"
                    )
                jobs = read_jobs(
                    args.input,
                    done=resume.done,
                    default_model=args.model,
                    response_model=args.schema,
                )
                await run.submit(jobs)
                await run.wait()
                if run.stale:
                    _say(
                        f"{run.stale} answer(s) from batches in flight were dropped: their "
                        "job's request changed since, and it was sent again"
                    )
        finally:
            await client.aclose()  # the pool (Batch API and online), the cache's connection
            if client.rate_limit is not None:
                await client.rate_limit.aclose()
            shown.close()
    _say(
        f"summary: batch api: {counts.ok} ok, {counts.failed} failed, {counts.tokens} tokens, "
        f"{counts.cost_text()}, {len(run.records)} batch(es); output: {args.output}"
    )
    if (cached := cache_summary(client)) is not None:
        _say(f"summary: cache: {cached}")
    left = max(0, todo - counts.done)
    if run.stopped is not None:
        sys.stderr.write(f"asyncgen: submitting stopped: {run.stopped}\n")
    if all(r.done for r in run.records) and run.stopped is None and not args.cancel:
        shutil.rmtree(batch_folder(args.output), ignore_errors=True)
    return counts.failed, left

"""The provider's Batch API: about half the price, answers within 24 hours.

:class:`BatchRun` splits jobs into provider batches (at most ``max_requests`` requests
and ``max_bytes`` bytes per uploaded file), uploads them (``/files``), creates the
batches (``/batches``), polls them with backoff, and hands each answer on as a
:class:`BatchOutcome` as the output files are read. Everything it needs to resume lives
in one folder: each batch's request file and ``state.json`` (the batches and where they
are). Run it again on the same folder after a crash and it picks up the batches in
flight rather than submitting them again:

- a batch is recorded (with a random marker, sent as the batch's metadata) before it is
  created, and its id right after; a record without an id is looked up by its marker
  among the provider's batches before anything is created again;
- answers already handed on are skipped when a batch is read again (``skip``);
- a job whose id is in flight is not submitted again, unless its request changed since
  (its fingerprint): then it is submitted anew and the old request's answer is dropped;
- a request file missing from the folder (the folder deleted mid-run) is fetched back
  from the provider (the batch's input file) when it is needed;
- a recorded batch the provider does not know (HTTP 404: another key, deleted, or a
  simulator that has stopped) stops the run with :class:`BatchNotFoundError`, or with
  ``missing="resubmit"`` its request file is submitted again as a new batch.

Requests that fail for a reason that may pass (expired with the window, 429, 5xx, a
batch refused for the enqueued-token limit) are sent again: as a new batch
(``resubmit="batch"``) or at once through the client (``resubmit="online"``), at most
``max_rounds`` times in all. A 402 (no credits, ``insufficient_quota``) stops submitting:
what was not submitted is left for the next run.

:func:`generate_batch` (``_generate.py``) is the library's one-call form;
``asyncgen run --batch-api`` is the command's.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import structlog
from pydantic import BaseModel

from ...core._errors import (
    BadRequestError,
    BatchNotFoundError,
    InsufficientCreditsError,
    ValidationFailedError,
)
from ...core._retry import RetryPolicy
from ..client._batches import MAX_BATCH_BYTES, MAX_BATCH_REQUESTS, TERMINAL
from ..client._client import ChatClient
from ..engine._jobs import GenerationJob
from ._folder import BatchRecord, RequestFile, RunFolder
from ._handoff import BatchOutcome, Handoff
from ._lines import (
    batch_error,
    line_fingerprint,
    line_job,
    may_pass,
)

__all__ = ["BatchApiProgress", "BatchOutcome", "BatchRun"]


_log = structlog.get_logger("asyncgen.batch_api")


@dataclass(frozen=True, slots=True)
class BatchApiProgress:
    """Where a run is: batches created and ended, requests submitted and ended."""

    batches: int
    batches_done: int
    requests: int
    requests_done: int
    failed: int
    online: int = 0  # requests resubmitted online, in flight


class BatchRun:
    """Jobs through the provider's Batch API, resumable from ``folder``.

    Args:
        client: The API and key (its rate limits do not apply: batches are not requests).
        folder: Where the request files and ``state.json`` live (created if missing).
        on_outcome: Called with each request's end, once (as output files are read).
        on_progress: Called when batches or requests move.
        skip: Ids already handed on in an earlier run (not handed on again).
        max_requests: Requests per batch (at most the provider's 50,000).
        max_bytes: Bytes per request file (under the provider's 200 MB).
        poll_interval: Seconds between the first polls; it grows 1.5 x per quiet poll
            up to ``max_poll_interval``.
        resubmit: Where failed requests that may pass go again: ``batch`` or ``online``.
        max_rounds: Tries per request in all (the first batch included).
        response_model: A pydantic model every answer must be (its schema is in the
            request lines of jobs that have it): answers are parsed into it, and one
            that does not fit goes again like a retryable failure (online: with re-asks).
        missing: What to do with a recorded batch the provider does not know (404):
            ``stop`` (raise BatchNotFoundError) or ``resubmit`` its requests as a new
            batch.
        retry: Retries of the files and batches endpoints on transient failures
            (default: 6 attempts, 1 s doubling to 30 s).

    Raises:
        BatchStateError: The folder's ``state.json`` is damaged.
    """

    def __init__(
        self,
        client: ChatClient,
        folder: Path,
        *,
        on_outcome: Callable[[BatchOutcome], None],
        on_progress: Callable[[BatchApiProgress], None] | None = None,
        skip: set[str] | None = None,
        max_requests: int = MAX_BATCH_REQUESTS,
        max_bytes: int = MAX_BATCH_BYTES,
        poll_interval: float = 5.0,
        max_poll_interval: float = 60.0,
        resubmit: Literal["batch", "online"] = "batch",
        max_rounds: int = 3,
        response_model: type[BaseModel] | None = None,
        missing: Literal["stop", "resubmit"] = "stop",
        retry: RetryPolicy | None = None,
    ) -> None:
        if missing not in ("stop", "resubmit"):
            raise ValueError(f"missing must be 'stop' or 'resubmit', got {missing!r}")
        if not 1 <= max_requests <= MAX_BATCH_REQUESTS:
            raise ValueError(f"max_requests must be 1..{MAX_BATCH_REQUESTS}, got {max_requests}")
        if max_bytes < 1024:
            raise ValueError(f"max_bytes must be at least 1024, got {max_bytes}")
        if not 0 < poll_interval <= max_poll_interval:
            raise ValueError("poll_interval must be > 0 and <= max_poll_interval")
        if resubmit not in ("batch", "online"):
            raise ValueError(f"resubmit must be 'batch' or 'online', got {resubmit!r}")
        if max_rounds < 1:
            raise ValueError(f"max_rounds must be >= 1, got {max_rounds}")
        self.client = client
        self.folder = folder
        self._folder = RunFolder(folder)
        self.records = self._folder.load()
        self._on_progress = on_progress
        self.handoff = Handoff(
            client,
            on_outcome,
            skip=skip if skip is not None else set(),
            response_model=response_model,
        )
        self.max_requests, self.max_bytes = max_requests, max_bytes
        self.poll_interval, self.max_poll_interval = poll_interval, max_poll_interval
        self.resubmit, self.max_rounds = resubmit, max_rounds
        self.response_model = response_model
        self.missing = missing
        self.stale = 0  # answers dropped: their job's request changed while in flight
        self._stale: dict[str, str] = {}  # id -> the fingerprint of its outdated request
        self._flying: dict[str, str] | None = None
        self.stopped: InsufficientCreditsError | None = None  # a 402 stopped submitting
        self.not_submitted = 0
        self._online = 0  # requests sent again online, in flight
        self._api = client.batches.with_retry(retry) if retry is not None else client.batches

    def in_flight(self) -> dict[str, str]:
        """Ids in batches not finished yet (not to be submitted again), each with its
        request's fingerprint (see :meth:`pick_up`, which also fetches back missing
        request files)."""
        return self._folder.in_flight(self.records)

    async def pick_up(self) -> dict[str, str]:
        """Make sure every batch in flight has its request file (fetched back from the
        provider when the folder lost it; a batch never created whose file is gone is
        forgotten, its jobs left to be submitted), then return :meth:`in_flight`."""
        for record in list(self.records):
            if record.done or self._folder.has(record.chunk):
                continue
            batch = await self._batch_of(record)
            if batch is None or not batch.get("input_file_id"):
                why = "its request file is gone and the provider has no copy"
                _log.warning("batch_forgotten", chunk=record.chunk, reason=why)
                self.records.remove(record)
                continue
            await self._fetch_chunk(record, str(batch["input_file_id"]))
        self._folder.save(self.records)
        self._flying = self.in_flight()
        return self._flying

    async def _batch_of(self, record: BatchRecord) -> dict[str, Any] | None:
        if record.id is not None:
            try:
                return await self._api.retrieve(record.id)
            except BadRequestError as exc:
                if exc.status == 404:
                    return None
                raise
        return await self._api.find(record.marker)

    async def _fetch_chunk(self, record: BatchRecord, file_id: str) -> None:
        _log.warning(
            "batch_request_file_fetched",
            batch=record.id,
            chunk=record.chunk,
            reason="the run folder lost it",
        )
        await self._folder.write(record.chunk, self._api.content(file_id))

    def _progress(self) -> None:
        if self._on_progress is not None:
            self._on_progress(
                BatchApiProgress(
                    batches=len(self.records),
                    batches_done=sum(r.done for r in self.records),
                    requests=sum(r.requests for r in self.records if r.round == 1)
                    + self.handoff.cached,
                    requests_done=self.handoff.done,
                    failed=self.handoff.failed,
                    online=self._online,
                )
            )

    # -- submitting ------------------------------------------------------------------

    async def submit(self, jobs: Iterable[GenerationJob]) -> None:
        """Write ``jobs`` into request files and create a batch for each (after the
        batches of an earlier run that may not have been created). A job in flight is
        left to its batch, unless its request changed since: then it goes again and the
        old request's answer is dropped when it comes."""
        flying = self._flying if self._flying is not None else await self.pick_up()
        for record in self.records:
            if record.id is None and not record.done and self.stopped is None:
                await self._create(record)
        await self._submit_lines(self.handoff.not_cached(self._not_flying(jobs, flying)), round_=1)

    def _not_flying(
        self, jobs: Iterable[GenerationJob], flying: dict[str, str]
    ) -> Iterator[GenerationJob]:
        for job in jobs:
            was = flying.get(job.id)
            if was is not None and was != job.fingerprint():
                self._stale[job.id] = was
                _log.info(
                    "batch_request_changed",
                    job_id=job.id,
                    action="submitted again; the answer in flight is dropped",
                )
            if was is None or job.id in self._stale:
                yield job

    async def _submit_lines(self, lines: AsyncIterator[dict[str, Any]], *, round_: int) -> None:
        """Write the lines into request files as they come (one file open at a time,
        never a whole batch in memory), creating a batch for each file when it is full."""
        chunk: RequestFile | None = None
        async for line in lines:
            data = (json.dumps(line, ensure_ascii=False) + "\n").encode()
            if chunk is not None and (
                chunk.requests >= self.max_requests or chunk.size + len(data) > self.max_bytes
            ):
                await self._submit_chunk(chunk.close(), round_)
                chunk = None
            if self.stopped is not None:  # a 402: nothing more is written or submitted
                self.not_submitted += 1
                continue
            if chunk is None:
                chunk = RequestFile(self.folder, len(self.records) + 1)
            chunk.write(data)
        if chunk is not None:
            await self._submit_chunk(chunk.close(), round_)

    async def _submit_chunk(self, chunk: RequestFile, round_: int) -> None:
        record = BatchRecord(
            marker=chunk.marker, chunk=chunk.name, requests=chunk.requests, round=round_
        )
        self.records.append(record)
        # recorded before it is created: a crash now finds it by its marker
        self._folder.save(self.records)
        await self._create(record)

    async def _create(self, record: BatchRecord) -> None:
        found = await self._api.find(record.marker) if record.status == "pending" else None
        try:
            if found is None:
                file_id = await self._api.upload(self.folder / record.chunk)
                found = await self._api.create(file_id, record.marker)
        except InsufficientCreditsError as exc:
            self.stopped = exc
            self.not_submitted += record.requests
            self.records.remove(record)  # its jobs are left for the next run
            (self.folder / record.chunk).unlink(missing_ok=True)
            self._folder.save(self.records)
            _log.warning(
                "batch_submit_stopped",
                error=str(exc),
                action="add credits, run again: the rest is submitted then",
            )
            return
        record.id, record.status = str(found["id"]), str(found.get("status", "validating"))
        self._folder.save(self.records)
        _log.info("batch_created", batch=record.id, requests=record.requests, round=record.round)
        self._progress()

    # -- waiting ---------------------------------------------------------------------

    async def wait(self) -> None:
        """Poll every batch not done until it ends; read its files; send again what
        may pass (as new batches, or online) until nothing is left."""
        interval = self.poll_interval
        while pending := [r for r in self.records if not r.done and r.id is not None]:
            moved = False
            for record in pending:
                batch = await self._retrieve(record)
                if batch is None:  # resubmitted as a new batch (or forgotten)
                    moved = True
                    continue
                status = str(batch.get("status"))
                moved |= status != record.status
                record.status = status
                if status in TERMINAL:
                    await self._read(record, batch)
                    moved = True
            self._folder.save(self.records)
            self._progress()
            if [r for r in self.records if not r.done and r.id is not None]:
                interval = (
                    self.poll_interval if moved else min(interval * 1.5, self.max_poll_interval)
                )
                await asyncio.sleep(interval)

    async def _retrieve(self, record: BatchRecord) -> dict[str, Any] | None:
        """The batch as the provider has it; a 404 stops the run or (``missing=
        "resubmit"``) sends the batch's requests again as a new batch (None)."""
        try:
            return await self._api.retrieve(str(record.id))
        except BadRequestError as exc:
            if exc.status != 404:
                raise
            if self.missing == "stop":
                raise BatchNotFoundError(
                    f"batch {record.id} ({record.requests} requests, recorded in "
                    f"{self.folder / 'state.json'}) is not known to {self.client.base_url} "
                    f"({exc}): it was made with another key or project, deleted, or by a "
                    "simulator that has stopped",
                    status=404,
                ) from exc
        _log.warning("batch_not_found_resubmitted", batch=record.id, requests=record.requests)
        if not self._folder.has(record.chunk):
            self.records.remove(record)  # nothing to send again: its jobs run next time
            self._folder.save(self.records)
            return None
        record.marker, record.id, record.status = uuid.uuid4().hex, None, "pending"
        self._folder.save(self.records)
        await self._create(record)
        return None

    async def _read(self, record: BatchRecord, batch: dict[str, Any]) -> None:
        """Hand on a finished batch's answers and failures; collect what goes again.
        Answers to requests that their job has since changed are dropped."""
        if not self._folder.has(record.chunk) and batch.get("input_file_id"):
            await self._fetch_chunk(record, str(batch["input_file_id"]))
        index = {}
        for line in self._folder.lines(record.chunk):
            where = line_fingerprint(line)
            if self._stale.get(line["custom_id"]) == where[1]:
                self.stale += 1
                continue
            index[line["custom_id"]] = where
        again: set[str] = set()
        seen: set[str] = set()
        for file_key in ("output_file_id", "error_file_id"):
            file_id = batch.get(file_key)
            if not file_id:
                continue
            async for item in self._api.lines(str(file_id)):
                custom_id = str(item.get("custom_id"))
                if custom_id not in index:
                    continue
                seen.add(custom_id)
                model = index[custom_id][0]
                completion, parsed, error = self.handoff.verdict(item, model)
                passing = error is not None and (
                    may_pass(item, error) or isinstance(error, ValidationFailedError)
                )
                if passing and record.round < self.max_rounds:
                    again.add(custom_id)
                    continue
                await self.handoff.emit(
                    custom_id, index[custom_id], completion, parsed, error, record.round
                )
        unanswered = set(index) - seen
        if record.status == "failed" and unanswered:
            error = batch_error(batch)
            for custom_id in unanswered:
                if record.round < self.max_rounds and may_pass({}, error):
                    again.add(custom_id)
                else:
                    await self.handoff.emit(
                        custom_id, index[custom_id], None, None, error, record.round
                    )
        # cancelled: the requests it did not reach are left for the next run
        await self.handoff.flush()
        record.done = True
        self._folder.save(self.records)
        if again:
            await self._again(record, again)

    async def _again(self, record: BatchRecord, ids: set[str]) -> None:
        lines = [line for line in self._folder.lines(record.chunk) if line["custom_id"] in ids]
        _log.info("batch_resubmit", batch=record.id, requests=len(lines), to=self.resubmit)
        if self.resubmit == "batch":
            await self._submit_lines(_each(lines), round_=record.round + 1)
            return
        from ..engine._generate import generate_stream

        self._online += len(lines)
        self._progress()
        jobs = [line_job(line, self.response_model) for line in lines]
        wheres = {line["custom_id"]: line_fingerprint(line) for line in lines}
        async for result in generate_stream(jobs, client=self.client):
            self._online -= 1
            self.handoff.answered_online(result, wheres[result.job.id], record.round)
            self._progress()

    async def cancel(self) -> int:
        """Cancel every batch in flight, then read what they had done. Returns how many
        batches were cancelled."""
        cancelled = 0
        for record in self.records:  # created just before a crash? its marker says
            if record.id is None and not record.done:
                found = await self._api.find(record.marker)
                if found is None:
                    record.done = True  # never created: its jobs are left for later
                else:
                    record.id, record.status = str(found["id"]), str(found.get("status"))
        for record in self.records:
            if not record.done and record.id is not None and record.status not in TERMINAL:
                try:
                    batch = await self._api.cancel(record.id)
                except BadRequestError as exc:
                    if exc.status != 404:
                        raise
                    record.done = True  # the provider has no such batch: nothing to cancel
                    continue
                record.status = str(batch.get("status", "cancelling"))
                cancelled += 1
        self._folder.save(self.records)
        await self.wait()
        return cancelled


async def _each(lines: Iterable[dict[str, Any]]) -> AsyncIterator[dict[str, Any]]:
    for line in lines:
        yield line

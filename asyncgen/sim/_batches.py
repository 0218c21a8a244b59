"""The simulator's Batch API, as OpenAI's: files in, a batch, files out.

- ``POST /v1/files`` (multipart: ``purpose=batch``, ``file``) stores a JSONL file of
  requests (``{"custom_id", "method", "url", "body"}``); ``GET /v1/files/{id}/content``
  returns a file.
- ``POST /v1/batches`` (``input_file_id``, ``endpoint``, ``completion_window``,
  ``metadata``) creates a batch; ``GET /v1/batches/{id}`` retrieves it;
  ``GET /v1/batches`` lists them, newest first (``limit``, ``after``);
  ``POST /v1/batches/{id}/cancel`` cancels it.

A batch is ``in_progress`` for ``complete_after`` seconds, then ends: each request is
answered (into the output file, at ``discount`` of the online price), failed (HTTP 500,
into the error file) or left undone (``batch_expired``, into the error file; the batch
is then ``expired``). Cancelled, it answers what its elapsed time says it had done.
"""

from __future__ import annotations

import email.message
import email.parser
import json
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ._config import SimConfig

__all__ = ["BatchStore", "parse_multipart"]

Answer = Callable[[dict[str, Any]], dict[str, Any]]  # a request's body -> a chat completion


def parse_multipart(body: bytes, content_type: str) -> dict[str, bytes]:
    """The fields of a multipart/form-data body, by name."""
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    message = email.parser.BytesParser().parsebytes(head + body)
    fields: dict[str, bytes] = {}
    if not message.is_multipart():
        return fields
    for part in message.get_payload():
        if not isinstance(part, email.message.Message):
            continue
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if isinstance(name, str) and isinstance(payload, bytes):
            fields[name] = payload
    return fields


@dataclass
class _Batch:
    id: str
    input_file_id: str
    lines: list[dict[str, Any]]
    created: float  # monotonic
    created_at: int  # epoch seconds
    metadata: dict[str, Any]
    number: int  # 1 for the first batch created
    status: str = "in_progress"
    output_file_id: str | None = None
    error_file_id: str | None = None
    completed: int = 0
    failed: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)


class BatchStore:
    """Files and batches of one simulator."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.batches: dict[str, _Batch] = {}
        self.created = 0  # batches created since the last reset
        self.cancelled = 0

    def upload(self, fields: dict[str, bytes], config: SimConfig) -> tuple[int, dict[str, Any]]:
        if fields.get("purpose") != b"batch":
            return 400, _error("purpose must be 'batch'")
        data = fields.get("file")
        if data is None:
            return 400, _error("a file is required")
        if len(data) > config.batch.max_bytes:
            return 400, _error(f"file is larger than {config.batch.max_bytes} bytes")
        file_id = f"file-{uuid.uuid4().hex[:24]}"
        self.files[file_id] = data
        return 200, _file(file_id, data, "batch")

    def create(self, request: dict[str, Any], config: SimConfig) -> tuple[int, dict[str, Any]]:
        data = self.files.get(str(request.get("input_file_id")))
        if data is None:
            return 400, _error("input_file_id is not an uploaded file")
        if request.get("endpoint") != "/v1/chat/completions":
            return 400, _error("endpoint must be /v1/chat/completions")
        lines, problems = [], []
        for number, raw in enumerate(data.splitlines(), 1):
            if not raw.strip():
                continue
            try:
                line = json.loads(raw)
                line["body"]["messages"]
                lines.append(line)
            except (ValueError, KeyError, TypeError):
                problems.append(
                    {
                        "code": "invalid_request",
                        "line": number,
                        "message": "not a batch request line",
                    }
                )
        now = time.monotonic()
        batch = _Batch(
            f"batch_{uuid.uuid4().hex[:24]}",
            str(request["input_file_id"]),
            lines,
            now,
            int(time.time()),
            dict(request.get("metadata") or {}),
            self.created + 1,
        )
        if len(lines) > config.batch.max_requests:
            too_many = f"more than {config.batch.max_requests} requests"
            problems.append({"code": "batch_too_large", "line": None, "message": too_many})
        if problems:
            batch.status, batch.errors = "failed", problems
        self.batches[batch.id] = batch
        self.created += 1
        return 200, self.view(batch)

    def retrieve(self, batch_id: str, config: SimConfig, answer: Answer) -> _Batch | None:
        batch = self.batches.get(batch_id)
        if batch is None:
            return None
        elapsed = time.monotonic() - batch.created
        if batch.status == "in_progress":
            if elapsed >= config.batch.complete_after:
                self._finish(batch, len(batch.lines), config, answer, ended="completed")
            else:
                share = elapsed / config.batch.complete_after if config.batch.complete_after else 1
                batch.completed = int(len(batch.lines) * share)
        elif batch.status == "cancelling":
            done = min(len(batch.lines), batch.completed)
            self._finish(batch, done, config, answer, ended="cancelled")
        return batch

    def cancel(self, batch_id: str, config: SimConfig) -> _Batch | None:
        batch = self.batches.get(batch_id)
        if batch is not None and batch.status == "in_progress":
            elapsed = time.monotonic() - batch.created
            share = (
                min(1.0, elapsed / config.batch.complete_after)
                if config.batch.complete_after
                else 1
            )
            batch.completed = int(len(batch.lines) * share)
            batch.status = "cancelling"
            self.cancelled += 1
        return batch

    def _finish(
        self, batch: _Batch, reached: int, config: SimConfig, answer: Answer, *, ended: str
    ) -> None:
        """Answer the first ``reached`` requests (less the failed and expired ones)."""
        rng = random.Random(batch.id)  # the batch's own draws: a retrieve repeats them
        faulty = config.batch.first is None or batch.number <= config.batch.first
        expire_rate = config.batch.expire_rate if faulty else 0.0
        fail_rate = config.batch.fail_rate if faulty else 0.0
        out, err = [], []
        expired_any = False
        for number, line in enumerate(batch.lines):
            custom_id = line.get("custom_id")
            if number >= reached:  # cancelled before it was done: in neither file
                continue
            if rng.random() < expire_rate:
                expired_any = True
                err.append(
                    {
                        "id": f"batch_req_{uuid.uuid4().hex[:16]}",
                        "custom_id": custom_id,
                        "response": None,
                        "error": {
                            "code": "batch_expired",
                            "message": "not completed within the window",
                        },
                    }
                )
                continue
            if rng.random() < fail_rate:
                response = {"status_code": 500, "body": _error("simulated server error")}
                err.append(
                    {
                        "id": f"batch_req_{uuid.uuid4().hex[:16]}",
                        "custom_id": custom_id,
                        "response": response,
                        "error": None,
                    }
                )
                batch.failed += 1
                continue
            completion = answer(line["body"])
            usage = completion["usage"]
            if "cost" in usage:
                usage["cost"] = round(usage["cost"] * config.batch.discount, 10)
            out.append(
                {
                    "id": f"batch_req_{uuid.uuid4().hex[:16]}",
                    "custom_id": custom_id,
                    "response": {
                        "status_code": 200,
                        "request_id": uuid.uuid4().hex,
                        "body": completion,
                    },
                    "error": None,
                }
            )
        batch.completed = len(out)
        if out:
            batch.output_file_id = self._store(out)
        if err:
            batch.error_file_id = self._store(err)
        batch.status = "expired" if ended == "completed" and expired_any else ended

    def _store(self, records: list[dict[str, Any]]) -> str:
        file_id = f"file-{uuid.uuid4().hex[:24]}"
        self.files[file_id] = "".join(json.dumps(r) + "\n" for r in records).encode()
        return file_id

    def view(self, batch: _Batch) -> dict[str, Any]:
        """The batch as the API shows it."""
        return {
            "id": batch.id,
            "object": "batch",
            "endpoint": "/v1/chat/completions",
            "input_file_id": batch.input_file_id,
            "completion_window": "24h",
            "status": batch.status,
            "output_file_id": batch.output_file_id,
            "error_file_id": batch.error_file_id,
            "created_at": batch.created_at,
            "metadata": batch.metadata,
            "errors": {"object": "list", "data": batch.errors} if batch.errors else None,
            "request_counts": {
                "total": len(batch.lines),
                "completed": batch.completed,
                "failed": batch.failed,
            },
        }

    def listing(self, limit: int, after: str | None) -> dict[str, Any]:
        """Batches, newest first, ``limit`` at a time after the batch ``after``."""
        newest = list(reversed(self.batches.values()))
        if after is not None:
            ids = [b.id for b in newest]
            newest = newest[ids.index(after) + 1 :] if after in ids else []
        page = newest[:limit]
        return {
            "object": "list",
            "data": [self.view(b) for b in page],
            "has_more": len(newest) > limit,
            "last_id": page[-1].id if page else None,
        }


def _file(file_id: str, data: bytes, purpose: str) -> dict[str, Any]:
    return {
        "id": file_id,
        "object": "file",
        "bytes": len(data),
        "purpose": purpose,
        "created_at": int(time.time()),
        "filename": "batch.jsonl",
    }


def _error(message: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": "invalid_request_error", "code": None}}

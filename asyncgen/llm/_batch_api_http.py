"""The provider's Batch API on the wire: its endpoints, and its files' lines.

:class:`BatchApi` (``client.batches``) calls ``/files`` and ``/batches`` through its
ChatClient's own transport (the same pool, backend, key and TLS settings as its chat
requests; statuses mapped to errors by the same rules), transient failures retried with
backoff; a create that failed in transit is looked for by its marker before it is tried
again. The functions turn a job into a request line and back, and an output or error
file's record into an answer or an error.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from pydantic import BaseModel

from ..core._errors import (
    AsyncGenError,
    BadRequestError,
    InvalidResponseError,
    ServerError,
    TransientError,
)
from ..core._retry import RetryPolicy, retry
from ._mapping import error_for_reply, error_for_status
from ._models import Completion, GenerationJob, Usage
from ._request import request_fingerprint, schema_params
from ._transport import Reply, StreamReply, Transport, byte_lines, encode_json

__all__ = [
    "DEFAULT_FILE_TIMEOUT",
    "ENDPOINT",
    "MAX_BATCH_BYTES",
    "MAX_BATCH_REQUESTS",
    "TERMINAL",
    "BatchApi",
    "batch_error",
    "completion_of",
    "item_error",
    "line_fingerprint",
    "line_job",
    "may_pass",
    "request_line",
]

MAX_BATCH_REQUESTS = 50_000  # OpenAI's limit per batch
MAX_BATCH_BYTES = 190 * 1024 * 1024  # under OpenAI's 200 MB per file
TERMINAL = frozenset({"completed", "failed", "expired", "cancelled"})
RETRY_CODES = frozenset({"batch_expired", "token_limit_exceeded", "rate_limit_exceeded"})
ENDPOINT = "/v1/chat/completions"
DEFAULT_FILE_TIMEOUT = 300.0  # seconds per read or write of a file or batch call
_POLICY = RetryPolicy(max_attempts=6, base_delay=1.0, max_delay=30.0)  # files and batches


class BatchApi:
    """The provider's files and batches endpoints (its Batch API), as ``client.batches``.

    Every call goes through the client's transport (the pool of the running event loop,
    either backend), so it needs no closing of its own: closing the client closes it.

    Args:
        transport: Returns the transport to send on (``ChatClient.transport``).
        base_url: The API's root (``https://api.openai.com/v1``).
        retry: How calls are retried (default: 6 attempts, backoff from 1 s to 30 s).
        timeout: Seconds for each read or write of a call (default 300, or the client's
            timeout when longer): uploads and file downloads take longer than an answer.
    """

    def __init__(
        self,
        transport: Callable[[], Transport],
        base_url: str,
        *,
        retry: RetryPolicy | None = None,
        timeout: float = DEFAULT_FILE_TIMEOUT,
    ) -> None:
        self.policy = retry if retry is not None else _POLICY
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._transport = transport

    def with_retry(self, policy: RetryPolicy | None) -> BatchApi:
        """The same endpoints with calls retried by ``policy`` (None: the default)."""
        return BatchApi(self._transport, self.base_url, retry=policy, timeout=self.timeout)

    async def _json(self, method: str, path: str, body: Any = None) -> Any:
        """One call, retried on transient errors (429, 5xx, timeouts) with backoff."""
        return await retry(self._json_once, method, path, body, policy=self.policy)

    async def _json_once(self, method: str, path: str, body: Any = None) -> Any:
        content = encode_json(body) if body is not None else None
        reply = await self._transport().send(
            method, f"{self.base_url}{path}", content, what=path, read_timeout=self.timeout
        )
        return _json_of(reply, path)

    async def upload(self, path: Path) -> str:
        """Upload a request file (read as it is sent); return its id."""

        async def once() -> Any:
            reply = await self._transport().upload(
                f"{self.base_url}/files",
                {"purpose": "batch"},
                path,
                content_type="application/jsonl",
                what="/files",
                read_timeout=self.timeout,
            )
            return _json_of(reply, "/files")

        reply = await retry(once, policy=self.policy)
        return str(reply["id"])

    async def create(self, file_id: str, marker: str) -> dict[str, Any]:
        """Create a batch, once: a create that failed in transit may have been made,
        so before trying again the batch is looked for by its marker."""
        body = {
            "input_file_id": file_id,
            "endpoint": ENDPOINT,
            "completion_window": "24h",
            "metadata": {"asyncgen_marker": marker},
        }

        async def once() -> dict[str, Any]:
            found = await self.find(marker)
            if found is not None:
                return found
            reply: dict[str, Any] = await self._json_once("POST", "/batches", body)
            return reply

        try:
            reply: dict[str, Any] = await self._json_once("POST", "/batches", body)
        except TransientError:
            return await retry(once, policy=self.policy)
        return reply

    async def retrieve(self, batch_id: str) -> dict[str, Any]:
        reply: dict[str, Any] = await self._json("GET", f"/batches/{batch_id}")
        return reply

    async def cancel(self, batch_id: str) -> dict[str, Any]:
        reply: dict[str, Any] = await self._json("POST", f"/batches/{batch_id}/cancel")
        return reply

    async def find(self, marker: str, *, pages: int = 10) -> dict[str, Any] | None:
        """The batch created with ``marker``, among the newest ``pages`` x 100."""
        after = None
        for _ in range(pages):
            query = urlencode({"limit": 100, **({"after": after} if after else {})})
            page = await self._json("GET", f"/batches?{query}")
            for batch in page.get("data", []):
                if (batch.get("metadata") or {}).get("asyncgen_marker") == marker:
                    return dict(batch)
            if not page.get("has_more"):
                return None
            after = page.get("last_id")
        return None

    @contextlib.asynccontextmanager
    async def _file(self, file_id: str) -> AsyncIterator[StreamReply]:
        """A provider file's content as a streamed answer (errors mapped)."""
        path = f"/files/{file_id}/content"
        url = f"{self.base_url}{path}"
        opened = self._transport().stream(
            "GET", url, None, what=path, accept="*/*", read_timeout=self.timeout
        )
        async with opened as reply:
            if reply.status >= 300:
                content = await reply.read()
                text = content.decode("utf-8", errors="replace")
                raise error_for_status(reply.status, reply.headers, None, model=path, text=text)
            yield reply

    async def content(self, file_id: str) -> AsyncIterator[bytes]:
        """A provider file's bytes, streamed."""
        async with self._file(file_id) as reply:
            async for chunk in reply.chunks():
                yield chunk

    async def lines(self, file_id: str) -> AsyncIterator[dict[str, Any]]:
        """The records of a provider file, one at a time (streamed).

        Raises:
            InvalidResponseError: A line that is not a UTF-8 JSON object (never skipped:
                its request would be lost without a word).
        """
        async with self._file(file_id) as reply:
            number = 0
            # split here, not by the backend: aiohttp's readline refuses lines over
            # 128 KiB, and an output line holds a whole answer
            async for raw in byte_lines(reply.chunks()):
                number += 1
                if raw.strip():
                    yield _record(raw, file_id, number)


def _json_of(reply: Reply, path: str) -> Any:
    """The JSON of a 2xx answer; the mapped error of any other."""
    if reply.status >= 300:
        raise error_for_reply(reply, path)
    try:
        return reply.json()
    except ValueError as exc:
        raise InvalidResponseError(f"{path}: HTTP {reply.status} but the body is not JSON") from exc


def _record(raw: bytes, file_id: str, number: int) -> dict[str, Any]:
    """One line of a provider's output or error file as its JSON object."""
    try:
        record = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidResponseError(
            f"/files/{file_id}: line {number} is not UTF-8 JSON ({exc}): {raw[:80]!r}"
        ) from None
    if not isinstance(record, dict):
        raise InvalidResponseError(f"/files/{file_id}: line {number} is not a JSON object")
    return record


def request_line(job: GenerationJob) -> dict[str, Any]:
    """A job as one line of a batch request file."""
    params = schema_params(job.response_model, job.params)
    body = {"model": job.model, "messages": job.to_messages(), **params}
    return {"custom_id": job.id, "method": "POST", "url": ENDPOINT, "body": body}


def line_job(line: dict[str, Any], response_model: type[BaseModel] | None = None) -> GenerationJob:
    """A request line back as a job (to send it online); with ``response_model`` the
    schema in its params is the model's again (so the online path re-asks)."""
    body = dict(line["body"])
    model, messages = body.pop("model"), body.pop("messages")
    if response_model is not None:
        body.pop("response_format", None)  # schema_params puts it back from the model
    return GenerationJob(
        id=line["custom_id"],
        model=model,
        messages=messages,
        params=body,
        response_model=response_model,
    )


def line_fingerprint(line: dict[str, Any]) -> tuple[str, str]:
    body = dict(line["body"])
    model, messages = str(body.pop("model")), body.pop("messages")
    return model, request_fingerprint(model, messages, body)


def item_error(item: dict[str, Any]) -> AsyncGenError | None:
    """The error an output or error file record carries, or None for an answer."""
    error = item.get("error")
    response = item.get("response") or {}
    status = int(response.get("status_code") or 0)
    if error:
        code = str(error.get("code") or "batch_error")
        message = str(error.get("message") or code)
        if code == "batch_expired":
            return ServerError(f"expired: {message}", status=504)
        return BadRequestError(f"{code}: {message}", status=400)
    if status >= 300 or not response:
        body = response.get("body")
        return error_for_status(status or 502, {}, body, model="batch request")
    return None


def may_pass(item: dict[str, Any], error: AsyncGenError) -> bool:
    """Worth sending again: expired, rate limited, or the provider's own failure."""
    code = str((item.get("error") or {}).get("code") or "")
    status = error.status or 0
    return code in RETRY_CODES or status in (408, 429, 504) or status >= 500


def batch_error(batch: dict[str, Any]) -> AsyncGenError:
    """Why a whole batch failed (its ``errors``)."""
    errors = ((batch.get("errors") or {}).get("data")) or [{}]
    first = errors[0] or {}
    code = str(first.get("code") or "batch_failed")
    message = f"batch {batch.get('id')} failed: {code}: {first.get('message') or ''}".strip()
    if code in RETRY_CODES:
        return ServerError(message, status=503)
    return BadRequestError(message, status=400)


def completion_of(body: dict[str, Any], model: str) -> Completion:
    choice = (body.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    usage = body.get("usage") if isinstance(body.get("usage"), dict) else {}
    return Completion(
        text=str(message.get("content") or ""),
        finish_reason=choice.get("finish_reason"),
        usage=Usage.model_validate(usage or {}),
        model=str(body.get("model") or model),
        latency=0.0,
        id=body.get("id"),
    )

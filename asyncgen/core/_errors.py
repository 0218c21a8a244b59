"""The exception hierarchy of asyncgen.

Every error the library raises, or stores in an :class:`~asyncgen.Outcome`, derives
from :class:`AsyncGenError`. Whether an error is worth retrying is a class distinction,
so ``isinstance(exc, TransientError)`` decides it::

    AsyncGenError
    ├── TransientError                 worth retrying
    │   ├── RateLimitedError           429, carries retry_after
    │   ├── ServerError                5xx, 408, 409; carries status
    │   ├── RequestTimeoutError        also a builtin TimeoutError
    │   ├── ConnectionFailedError      also a builtin ConnectionError
    │   ├── JobTimeoutError            a queued job ran past its timeout (retried)
    │   ├── ReplicationError           a durable write not confirmed by its replicas
    │   └── WorkerCrashedError         a worker's claim loop failed: restart the worker
    └── PermanentError                 not retried (by default)
        ├── InvalidResponseError       a 2xx that is not JSON, or has no choices
        ├── InsufficientCreditsError   402: add credits
        ├── AuthenticationError        403, and 401:
        │   └── InvalidKeyError        401: the key itself was refused (stops a batch)
        ├── BadRequestError            other 4xx
        │   └── BatchNotFoundError     the provider does not know a recorded batch (404)
        ├── ValidationFailedError      the answer failed the caller's validation
        ├── StreamInterruptedError     a stream broke after text was delivered (not retried)
        ├── DeadlineExceededError      also a builtin TimeoutError
        ├── CircuitOpenError           the model's circuit breaker is open
        ├── BudgetExceededError        the batch's max_cost / max_tokens was reached
        ├── JobFailedError             a background job ended dead or cancelled
        ├── ResultNotStorableError     a queued job returned what JSON cannot hold
        ├── UnsupportedServerError     a queue server too old for asyncgen (Redis < 6.2)
        └── StoreError                 a job store that cannot be used (damaged, not ours)

Messages never contain API keys: the HTTP layer builds them from status codes and
provider messages, and never from request headers.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AsyncGenError",
    "AuthenticationError",
    "BadRequestError",
    "BatchNotFoundError",
    "BudgetExceededError",
    "CircuitOpenError",
    "ConnectionFailedError",
    "DeadlineExceededError",
    "InsufficientCreditsError",
    "InvalidKeyError",
    "InvalidResponseError",
    "JobFailedError",
    "JobTimeoutError",
    "PermanentError",
    "RateLimitedError",
    "ReplicationError",
    "RequestTimeoutError",
    "ResultNotStorableError",
    "ServerError",
    "StoreError",
    "StreamInterruptedError",
    "TransientError",
    "UnsupportedServerError",
    "ValidationFailedError",
    "WorkerCrashedError",
]


class AsyncGenError(Exception):
    """Root of every error raised by asyncgen.

    Args:
        message: A sentence for a person: what happened and, where it helps, what to do.
        status: The HTTP status code behind the error, or None when there was no response.
    """

    def __init__(self, message: str = "", *, status: int | None = None) -> None:
        super().__init__(message or self.default_message())
        self.message = message or self.default_message()
        self.status = status

    @classmethod
    def default_message(cls) -> str:
        """The message used when none is given: the class docstring's first line."""
        return (cls.__doc__ or cls.__name__).strip().splitlines()[0]

    def _state(self) -> dict[str, Any]:
        return {"status": self.status}

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only arguments defeat Exception's default pickling; queues need it.
        return (_rebuild, (type(self), self.message, self._state()))

    def __repr__(self) -> str:
        extra = "".join(f", {k}={v!r}" for k, v in self._state().items() if v is not None)
        return f"{type(self).__name__}({self.message!r}{extra})"


def _rebuild(cls: type[AsyncGenError], message: str, state: dict[str, Any]) -> AsyncGenError:
    return cls(message, **state)


class TransientError(AsyncGenError):
    """A failure that may succeed if tried again.

    Args:
        message: What happened.
        status: The HTTP status code, if any.
        retry_after: Seconds the server asked us to wait before trying again, if it said.
    """

    def __init__(
        self, message: str = "", *, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, status=status)
        self.retry_after = retry_after

    def _state(self) -> dict[str, Any]:
        return {"status": self.status, "retry_after": self.retry_after}


class PermanentError(AsyncGenError):
    """A failure that trying again cannot fix."""


class RateLimitedError(TransientError):
    """The provider is rate limiting us (HTTP 429); wait retry_after seconds if given."""

    def __init__(
        self, message: str = "", *, status: int | None = 429, retry_after: float | None = None
    ) -> None:
        super().__init__(message, status=status, retry_after=retry_after)


class ServerError(TransientError):
    """The provider failed to answer (HTTP 5xx, 408 or 409)."""


class RequestTimeoutError(TransientError, TimeoutError):
    """The request took longer than its timeout."""


class ConnectionFailedError(TransientError, ConnectionError):
    """The connection could not be made, or was dropped before an answer came."""


class JobTimeoutError(TransientError, TimeoutError):
    """A background job ran past its timeout: it was cancelled, and is retried."""


class ReplicationError(TransientError):
    """A durable queue write (``?durable=N``) reached the master, but fewer than N
    replicas confirmed it in time: it may not survive a failover. Retrying is safe when
    the write can be repeated (a submit with an idempotency key)."""


class WorkerCrashedError(TransientError):
    """A worker's claim loop failed unexpectedly; its running jobs were drained, restart it."""


class InvalidResponseError(PermanentError):
    """The provider's answer was not the JSON we expected (malformed, or no choices).

    Not retried by default, as the retry rules asyncgen follows specify; opt in with
    ``RetryPolicy(retry_on=(TransientError, InvalidResponseError))``.
    """


class InsufficientCreditsError(PermanentError):
    """Insufficient credits (HTTP 402): add credits to your provider account, then run again.

    Args:
        message: What happened.
        status: The HTTP status (402).
        scope: ``"key"``: the account is out (everything on it waits for credits), or
            ``"request"``: this request costs more than the key can afford (e.g.
            OpenRouter's "requires more credits, or fewer max_tokens"): lower its
            ``max_tokens`` or add credits; other requests go on.
    """

    def __init__(self, message: str = "", *, status: int | None = 402, scope: str = "key") -> None:
        super().__init__(message, status=status)
        self.scope = scope

    def _state(self) -> dict[str, Any]:
        return {"status": self.status, "scope": self.scope}


class AuthenticationError(PermanentError):
    """The API key was refused (HTTP 401 or 403): check the key and its permissions."""


class InvalidKeyError(AuthenticationError):
    """The API key was refused (HTTP 401): check it; a batch sends nothing more on it."""


class BadRequestError(PermanentError):
    """The provider rejected the request (HTTP 4xx): fix the request before retrying."""


class BatchNotFoundError(BadRequestError):
    """The provider does not know a batch a run recorded (HTTP 404): another key, deleted."""


class ValidationFailedError(PermanentError):
    """The answer arrived but failed the caller's validation.

    Args:
        message: What happened.
        status: The HTTP status, if any.
        text: The last answer's text (for a ``response_model``: the one that failed).
        errors: What was wrong with it (pydantic's error list, for a ``response_model``).
    """

    def __init__(
        self,
        message: str = "",
        *,
        status: int | None = None,
        text: str | None = None,
        errors: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(message, status=status)
        self.text = text
        self.errors = errors

    def _state(self) -> dict[str, Any]:
        return {"status": self.status, "text": self.text, "errors": self.errors}


class StreamInterruptedError(PermanentError):
    """A streamed answer broke after part of it was delivered: not retried, since the
    caller has already shown or used that part."""


class DeadlineExceededError(PermanentError, TimeoutError):
    """The overall deadline passed before this call finished."""


class CircuitOpenError(PermanentError):
    """The circuit breaker for this model is open: too many recent failures."""


class BudgetExceededError(PermanentError):
    """The batch's spend limit (max_cost or max_tokens) was reached; the job was not sent."""


class JobFailedError(PermanentError):
    """A background job ended without a result (dead after its attempts, or cancelled)."""


class ResultNotStorableError(PermanentError):
    """A queued job returned a value that cannot be stored as JSON."""


class UnsupportedServerError(PermanentError):
    """The queue's server lacks what asyncgen needs (Redis 6.2 or newer): upgrade it."""


class StoreError(PermanentError):
    """The job store cannot be used (not a queue database, damaged, or not writable)."""

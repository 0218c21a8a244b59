"""asyncgen: run many LLM generation requests at once, fast and safely.

Bounded, ordered concurrency with partial-failure tolerance, jittered retries that
honour Retry-After and deadlines, blocking twins for sync code, and structured logs
that never show a secret.

Names are imported on first use (``asyncgen.generate`` loads the LLM layer, ``open_queue``
the queue, neither loads Redis until a Redis URL is opened), so ``import asyncgen`` and
the ``asyncgen`` command start quickly; type checkers see ordinary imports.
"""

import importlib as _importlib
import types as _types
import typing as _typing

if _typing.TYPE_CHECKING:
    from . import sync as sync
    from .chat._background import BackgroundStats as BackgroundStats
    from .chat._background import BackgroundTasks as BackgroundTasks
    from .chat._background import BackgroundTasksFull as BackgroundTasksFull
    from .chat._background import BlockingBackgroundTasks as BlockingBackgroundTasks
    from .chat._background import TaskFailure as TaskFailure
    from .chat._conversation import Conversation as Conversation
    from .chat._conversation import ConversationLog as ConversationLog
    from .chat._conversation import conversation as conversation
    from .core._bridge import blocking as blocking
    from .core._errors import AsyncGenError as AsyncGenError
    from .core._errors import AuthenticationError as AuthenticationError
    from .core._errors import BadRequestError as BadRequestError
    from .core._errors import BatchNotFoundError as BatchNotFoundError
    from .core._errors import BudgetExceededError as BudgetExceededError
    from .core._errors import CircuitOpenError as CircuitOpenError
    from .core._errors import ConnectionFailedError as ConnectionFailedError
    from .core._errors import DeadlineExceededError as DeadlineExceededError
    from .core._errors import InsufficientCreditsError as InsufficientCreditsError
    from .core._errors import InvalidKeyError as InvalidKeyError
    from .core._errors import InvalidResponseError as InvalidResponseError
    from .core._errors import JobFailedError as JobFailedError
    from .core._errors import JobTimeoutError as JobTimeoutError
    from .core._errors import PermanentError as PermanentError
    from .core._errors import RateLimitedError as RateLimitedError
    from .core._errors import RequestTimeoutError as RequestTimeoutError
    from .core._errors import ResultNotStorableError as ResultNotStorableError
    from .core._errors import ServerError as ServerError
    from .core._errors import StoreError as StoreError
    from .core._errors import StreamInterruptedError as StreamInterruptedError
    from .core._errors import TransientError as TransientError
    from .core._errors import UnsupportedServerError as UnsupportedServerError
    from .core._errors import ValidationFailedError as ValidationFailedError
    from .core._errors import WorkerCrashedError as WorkerCrashedError
    from .core._gather import gather_bounded as gather_bounded
    from .core._gather import map_bounded as map_bounded
    from .core._logging import configure_logging as configure_logging
    from .core._logging import mask_secrets as mask_secrets
    from .core._logging import redact_secrets as redact_secrets
    from .core._outcome import Outcome as Outcome
    from .core._retry import RetryCaller as RetryCaller
    from .core._retry import RetryPolicy as RetryPolicy
    from .core._retry import retry as retry
    from .core._retry import retrying as retrying
    from .core._retry_after import parse_retry_after as parse_retry_after
    from .core._settings import Settings as Settings
    from .limits._adaptive import AdaptiveConcurrency as AdaptiveConcurrency
    from .limits._breaker import CircuitBreaker as CircuitBreaker
    from .limits._ratelimit import RateLimiter as RateLimiter
    from .limits._shared_limit import SharedRateLimiter as SharedRateLimiter
    from .llm import BatchApiProgress as BatchApiProgress
    from .llm import BatchProgress as BatchProgress
    from .llm import ChatClient as ChatClient
    from .llm import ClientPaused as ClientPaused
    from .llm import ClientStatistics as ClientStatistics
    from .llm import Completion as Completion
    from .llm import Event as Event
    from .llm import GenerationJob as GenerationJob
    from .llm import GenerationResult as GenerationResult
    from .llm import JobFailed as JobFailed
    from .llm import JobFellBack as JobFellBack
    from .llm import JobRetrying as JobRetrying
    from .llm import JobStarted as JobStarted
    from .llm import JobSucceeded as JobSucceeded
    from .llm import JobToken as JobToken
    from .llm import KeyInfo as KeyInfo
    from .llm import RedisCache as RedisCache
    from .llm import ResponseCache as ResponseCache
    from .llm import SqliteCache as SqliteCache
    from .llm import Stream as Stream
    from .llm import Usage as Usage
    from .llm import fan_out as fan_out
    from .llm import generate as generate
    from .llm import generate_batch as generate_batch
    from .llm import generate_iter as generate_iter
    from .llm import generate_stream as generate_stream
    from .llm import legacy_progress as legacy_progress
    from .queue import JobQueue as JobQueue
    from .queue import JobRecord as JobRecord
    from .queue import JobState as JobState
    from .queue import QueueStatistics as QueueStatistics
    from .queue import Worker as Worker
    from .queue import open_queue as open_queue
    from .queue import open_worker as open_worker

__version__ = "0.1.0.dev0"

# Each public name and the module that defines it.
_EXPORTS: dict[str, str] = {
    "AdaptiveConcurrency": ".limits._adaptive",
    "AsyncGenError": ".core._errors",
    "AuthenticationError": ".core._errors",
    "BadRequestError": ".core._errors",
    "BatchNotFoundError": ".core._errors",
    "BatchProgress": ".llm",
    "BudgetExceededError": ".core._errors",
    "ChatClient": ".llm",
    "CircuitBreaker": ".limits._breaker",
    "CircuitOpenError": ".core._errors",
    "BackgroundStats": ".chat._background",
    "BackgroundTasks": ".chat._background",
    "BackgroundTasksFull": ".chat._background",
    "BlockingBackgroundTasks": ".chat._background",
    "TaskFailure": ".chat._background",
    "Conversation": ".chat._conversation",
    "ConversationLog": ".chat._conversation",
    "conversation": ".chat._conversation",
    "ClientPaused": ".llm",
    "ClientStatistics": ".llm",
    "Completion": ".llm",
    "BatchApiProgress": ".llm",
    "generate_batch": ".llm",
    "RedisCache": ".llm",
    "ResponseCache": ".llm",
    "SqliteCache": ".llm",
    "ConnectionFailedError": ".core._errors",
    "DeadlineExceededError": ".core._errors",
    "Event": ".llm",
    "GenerationJob": ".llm",
    "GenerationResult": ".llm",
    "InsufficientCreditsError": ".core._errors",
    "InvalidKeyError": ".core._errors",
    "InvalidResponseError": ".core._errors",
    "JobFailed": ".llm",
    "JobFailedError": ".core._errors",
    "JobTimeoutError": ".core._errors",
    "JobQueue": ".queue",
    "JobRecord": ".queue",
    "JobFellBack": ".llm",
    "Stream": ".llm",
    "JobToken": ".llm",
    "JobRetrying": ".llm",
    "JobStarted": ".llm",
    "JobState": ".queue",
    "JobSucceeded": ".llm",
    "KeyInfo": ".llm",
    "Outcome": ".core._outcome",
    "PermanentError": ".core._errors",
    "QueueStatistics": ".queue",
    "RateLimitedError": ".core._errors",
    "RateLimiter": ".limits._ratelimit",
    "RequestTimeoutError": ".core._errors",
    "RetryCaller": ".core._retry",
    "RetryPolicy": ".core._retry",
    "ResultNotStorableError": ".core._errors",
    "ServerError": ".core._errors",
    "Settings": ".core._settings",
    "SharedRateLimiter": ".limits._shared_limit",
    "StoreError": ".core._errors",
    "StreamInterruptedError": ".core._errors",
    "TransientError": ".core._errors",
    "UnsupportedServerError": ".core._errors",
    "Usage": ".llm",
    "ValidationFailedError": ".core._errors",
    "Worker": ".queue",
    "WorkerCrashedError": ".core._errors",
    "blocking": ".core._bridge",
    "configure_logging": ".core._logging",
    "fan_out": ".llm",
    "gather_bounded": ".core._gather",
    "generate": ".llm",
    "generate_iter": ".llm",
    "generate_stream": ".llm",
    "legacy_progress": ".llm",
    "map_bounded": ".core._gather",
    "mask_secrets": ".core._logging",
    "open_queue": ".queue",
    "open_worker": ".queue",
    "parse_retry_after": ".core._retry_after",
    "redact_secrets": ".core._logging",
    "retry": ".core._retry",
    "retrying": ".core._retry",
}

__all__ = [
    "AdaptiveConcurrency",
    "AsyncGenError",
    "AuthenticationError",
    "BackgroundStats",
    "BackgroundTasks",
    "BackgroundTasksFull",
    "BadRequestError",
    "BatchApiProgress",
    "BatchNotFoundError",
    "BatchProgress",
    "BlockingBackgroundTasks",
    "BudgetExceededError",
    "ChatClient",
    "CircuitBreaker",
    "CircuitOpenError",
    "ClientPaused",
    "ClientStatistics",
    "Completion",
    "ConnectionFailedError",
    "Conversation",
    "ConversationLog",
    "DeadlineExceededError",
    "Event",
    "GenerationJob",
    "GenerationResult",
    "InsufficientCreditsError",
    "InvalidKeyError",
    "InvalidResponseError",
    "JobFailed",
    "JobFailedError",
    "JobFellBack",
    "JobQueue",
    "JobRecord",
    "JobRetrying",
    "JobStarted",
    "JobState",
    "JobSucceeded",
    "JobTimeoutError",
    "JobToken",
    "KeyInfo",
    "Outcome",
    "PermanentError",
    "QueueStatistics",
    "RateLimitedError",
    "RateLimiter",
    "RedisCache",
    "RequestTimeoutError",
    "ResponseCache",
    "ResultNotStorableError",
    "RetryCaller",
    "RetryPolicy",
    "ServerError",
    "Settings",
    "SharedRateLimiter",
    "SqliteCache",
    "StoreError",
    "Stream",
    "StreamInterruptedError",
    "TaskFailure",
    "TransientError",
    "UnsupportedServerError",
    "Usage",
    "ValidationFailedError",
    "Worker",
    "WorkerCrashedError",
    "__version__",
    "blocking",
    "configure_logging",
    "conversation",
    "fan_out",
    "gather_bounded",
    "generate",
    "generate_batch",
    "generate_iter",
    "generate_stream",
    "legacy_progress",
    "map_bounded",
    "mask_secrets",
    "open_queue",
    "open_worker",
    "parse_retry_after",
    "redact_secrets",
    "retry",
    "retrying",
]


if not _typing.TYPE_CHECKING:  # type checkers see the imports above, and a typo is an error

    def __getattr__(name: str) -> _typing.Any:
        if name == "sync":
            return _importlib.import_module(".sync", __name__)
        where = _EXPORTS.get(name)
        if where is None:
            raise AttributeError(f"module 'asyncgen' has no attribute {name!r}")
        value = getattr(_importlib.import_module(where, __name__), name)
        # Public classes and functions report the public module, as httpx does, so reprs
        # and docs say asyncgen.X rather than a private module.
        private = getattr(value, "__module__", "").startswith("asyncgen.")
        if isinstance(value, type | _types.FunctionType) and private:
            value.__module__ = "asyncgen"
        globals()[name] = value
        return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__, "sync"})

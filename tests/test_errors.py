"""The exception hierarchy: transient vs permanent, builtin bases, messages, pickling."""

import pickle

import pytest

import asyncgen
from asyncgen import (
    AsyncGenError,
    InsufficientCreditsError,
    PermanentError,
    RateLimitedError,
    ServerError,
    TransientError,
)

TRANSIENT = [
    "RateLimitedError",
    "ServerError",
    "RequestTimeoutError",
    "ConnectionFailedError",
    "JobTimeoutError",
]
PERMANENT = [
    "InvalidResponseError",
    "InsufficientCreditsError",
    "AuthenticationError",
    "BadRequestError",
    "ValidationFailedError",
    "DeadlineExceededError",
    "CircuitOpenError",
    "BudgetExceededError",
    "JobFailedError",
    "ResultNotStorableError",
    "UnsupportedServerError",
    "StoreError",
    "StreamInterruptedError",
]


class TestHierarchy:
    @pytest.mark.parametrize("name", TRANSIENT)
    def test_transient_leaves(self, name: str) -> None:
        """Retryable leaves derive from TransientError and the root."""
        cls = getattr(asyncgen, name)
        assert issubclass(cls, TransientError)
        assert issubclass(cls, AsyncGenError)
        assert not issubclass(cls, PermanentError)

    @pytest.mark.parametrize("name", PERMANENT)
    def test_permanent_leaves(self, name: str) -> None:
        """Non-retryable leaves derive from PermanentError and the root."""
        cls = getattr(asyncgen, name)
        assert issubclass(cls, PermanentError)
        assert not issubclass(cls, TransientError)

    def test_builtin_bases(self) -> None:
        """Timeouts are TimeoutErrors and connection failures ConnectionErrors."""
        assert issubclass(asyncgen.RequestTimeoutError, TimeoutError)
        assert issubclass(asyncgen.DeadlineExceededError, TimeoutError)
        assert issubclass(asyncgen.ConnectionFailedError, ConnectionError)


class TestMessagesAndState:
    def test_insufficient_credits_says_what_to_do(self) -> None:
        """The 402 error tells the user to add credits."""
        assert "add credits" in str(InsufficientCreditsError())

    def test_rate_limited_carries_retry_after(self) -> None:
        """A 429 error carries the server's wait and its status."""
        exc = RateLimitedError("slow down", retry_after=2.5)
        assert (exc.retry_after, exc.status, str(exc)) == (2.5, 429, "slow down")

    def test_server_error_carries_status(self) -> None:
        """A 5xx error carries its status code and shows it in its repr."""
        exc = ServerError("bad gateway", status=502)
        assert exc.status == 502
        assert repr(exc) == "ServerError('bad gateway', status=502)"

    @pytest.mark.parametrize("name", TRANSIENT + PERMANENT)
    def test_pickle_round_trip(self, name: str) -> None:
        """Errors survive pickling with their type, message and fields (queues need it)."""
        cls = getattr(asyncgen, name)
        kwargs = {"retry_after": 1.5} if issubclass(cls, TransientError) else {}
        exc = cls("boom", status=499, **kwargs)
        back = pickle.loads(pickle.dumps(exc))
        assert type(back) is cls
        assert (str(back), back.status) == ("boom", 499)
        assert getattr(back, "retry_after", None) == kwargs.get("retry_after")

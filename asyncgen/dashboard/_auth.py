"""The dashboard's sign-in: a token, server-side sessions, and a limit on failed tries."""

from __future__ import annotations

import collections
import hmac
import secrets
import time
from collections.abc import Callable

__all__ = ["SESSION_COOKIE", "SESSION_LIFETIME", "Auth"]

SESSION_COOKIE = "asyncgen_dashboard"
SESSION_LIFETIME = 12 * 3600.0  # seconds a sign-in lasts
LOGIN_ATTEMPTS, LOGIN_WINDOW = 5, 300.0  # failed sign-ins allowed per client per window


class Auth:
    """Read-only without a token. With one, signing in with it starts a server-side
    session: a random id in the cookie (never derived from the token), a form token of
    its own, an expiry; signing out ends it. Failed sign-ins are limited per client."""

    def __init__(self, token: str | None, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.token = token
        self._clock = clock
        self._sessions: dict[str, tuple[str, float]] = {}  # id -> (form token, expiry)
        self._failures: dict[str, collections.deque[float]] = {}

    @property
    def enabled(self) -> bool:
        """True when a token is set (actions are possible once signed in)."""
        return bool(self.token)

    def check_token(self, given: str) -> bool:
        """Whether ``given`` is the token (compared in constant time)."""
        return self.enabled and hmac.compare_digest(given.encode(), (self.token or "").encode())

    def start(self) -> str:
        """A new session; returns its id (the cookie's value)."""
        now = self._clock()
        self._sessions = {k: v for k, v in self._sessions.items() if v[1] > now}
        session = secrets.token_urlsafe(32)
        self._sessions[session] = (secrets.token_urlsafe(32), now + SESSION_LIFETIME)
        return session

    def end(self, session: str | None) -> None:
        """Sign out: the session is gone."""
        if session is not None:
            self._sessions.pop(session, None)

    def form_token(self, session: str | None) -> str | None:
        """The session's form token while it lasts, else None."""
        found = self._sessions.get(session or "")
        if found is None or found[1] <= self._clock():
            return None
        return found[0]

    def signed_in(self, session: str | None) -> bool:
        """Whether ``session`` is a live session."""
        return self.enabled and self.form_token(session) is not None

    def form_ok(self, session: str | None, field: str | None) -> bool:
        """Whether a posted form's token is the live session's (constant time)."""
        expected = self.form_token(session)
        return (
            self.enabled
            and expected is not None
            and field is not None
            and hmac.compare_digest(field, expected)
        )

    def wait_before_trying(self, client: str) -> float:
        """Seconds this client must wait before another sign-in (0: it may try now)."""
        failures = self._failures.get(client)
        now = self._clock()
        while failures and failures[0] <= now - LOGIN_WINDOW:
            failures.popleft()
        if not failures or len(failures) < LOGIN_ATTEMPTS:
            return 0.0
        return failures[0] + LOGIN_WINDOW - now

    def failed(self, client: str) -> None:
        """Count a failed sign-in of ``client``."""
        if len(self._failures) > 10_000:  # many clients: forget the oldest entries
            self._failures.clear()
        self._failures.setdefault(client, collections.deque()).append(self._clock())

"""A key's standing: the 402 (no credits) or 401 (key refused) that stops unstarted jobs."""

from __future__ import annotations

import structlog

from ...core._errors import InsufficientCreditsError, InvalidKeyError

__all__ = ["KeyStanding"]

_log = structlog.get_logger("asyncgen.client")


class KeyStanding:
    """What one key's answers said of the key itself, kept until cleared.

    A 402 that is the key's (``scope="key"``: the balance is spent) and a 401 (the key
    is refused) stop a run's unstarted jobs; a 402 for one request that is too dear
    (``scope="request"``) does not: the other jobs go on.
    """

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.out_of_credits: InsufficientCreditsError | None = None
        self.key_refused: InvalidKeyError | None = None

    def note(self, error: BaseException | None) -> None:
        """Keep a request's error when it says something of the key (logged once)."""
        if isinstance(error, InsufficientCreditsError) and error.scope == "key":
            if self.out_of_credits is None:
                self.out_of_credits = error
                _log.warning(
                    "insufficient_credits",
                    base_url=self.base_url,
                    error=str(error),
                    action="add credits; remaining jobs on this key are stopped",
                )
        elif isinstance(error, InvalidKeyError) and self.key_refused is None:
            self.key_refused = error
            _log.warning(
                "api_key_refused",
                base_url=self.base_url,
                error=str(error),
                action="check the API key; remaining jobs on it are stopped",
            )

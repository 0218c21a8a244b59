"""Logging: structlog, JSON or console, with secrets masked before anything is written."""

from __future__ import annotations

import logging
import re
import sys
import threading
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

__all__ = ["configure_logging", "mask_secrets", "redact_secrets", "register_secret"]

MASK = "***"

# Keys whose values are secret wherever they appear in an event (case-insensitive).
_SECRET_KEY = re.compile(
    r"^(.*[_-])?(api[_-]?key|authorization|proxy-authorization|password|passwd|secret|"
    r"client[_-]?secret|token|access[_-]?token|refresh[_-]?token|credentials?|cookie|"
    r"set-cookie|x-api-key)$",
    re.IGNORECASE,
)
# Secrets inside free text: (pattern, replacement).
_SECRET_TEXT: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{4,}"), r"\1 " + MASK),
    (re.compile(r"\b(sk|rk|pk)-[A-Za-z0-9_-]{8,}"), r"\1-" + MASK),
    (
        re.compile(r"\b([a-zA-Z][a-zA-Z0-9+.-]*://)([^:/?#@\s]*):([^@/?#\s]+)@"),
        r"\1\2:" + MASK + "@",
    ),
    (
        re.compile(
            r"(?i)\b(api[_-]?key|apikey|key|access[_-]?token|token|password|passwd|secret|"
            r"authorization)(\"?'?\s*[:=]\s*[\"']?)(?!\*\*\*|(?:bearer|basic)\s)[^\s\"',;&}]+"
        ),
        r"\1\2" + MASK,
    ),
)
_registered: set[str] = set()
_registered_lock = threading.Lock()
_MIN_REGISTERED = 6


def register_secret(value: str | None) -> None:
    """Mask every later occurrence of ``value`` in logs, whatever its format.

    Values shorter than 6 characters are ignored: masking them would garble ordinary text.
    """
    if value and len(value) >= _MIN_REGISTERED:
        with _registered_lock:
            _registered.add(value)


def mask_secrets(text: str) -> str:
    """Return ``text`` with API keys, bearer tokens, passwords and URL credentials masked."""
    for secret in tuple(_registered):
        if secret in text:
            text = text.replace(secret, MASK)
    for pattern, replacement in _SECRET_TEXT:
        text = pattern.sub(replacement, text)
    return text


def _mask_value(key: str | None, value: Any) -> Any:
    if key is not None and _SECRET_KEY.match(key) and value not in (None, ""):
        return MASK
    if isinstance(value, str):
        return mask_secrets(value)
    if isinstance(value, MutableMapping | dict):
        return {k: _mask_value(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return type(value)(_mask_value(None, v) for v in value)
    return value


def redact_secrets(
    logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """A structlog processor that masks secrets in every key and value of an event.

    Put it after ``format_exc_info`` so that tracebacks are masked too. Other values
    (errors, URLs, objects) are masked in their string form.
    """
    for key, value in list(event_dict.items()):
        masked = _mask_value(key, value)
        if masked is value and not isinstance(value, str | int | float | bool | type(None)):
            masked = mask_secrets(str(value))
        event_dict[key] = masked
    return event_dict


def configure_logging(
    *,
    json: bool | None = None,
    level: str | int = "INFO",
    stream: TextIO | None = None,
    conversations: structlog.typing.Processor | None = None,
) -> None:
    """Configure structlog for asyncgen and the application: one line per event.

    Each line carries the context bound with ``structlog.contextvars`` (asyncgen binds
    the job id, model and attempt), and passes through :func:`redact_secrets` last
    before rendering, so API keys, Authorization headers, passwords and credentials in
    URLs never reach the output.

    Args:
        json: JSON lines (True) or human-readable console lines (False); None picks
            console when ``stream`` is a terminal and JSON otherwise.
        level: The lowest level written, as a name ("DEBUG") or a ``logging`` number.
        stream: Where to write; None means standard error.
        conversations: A :class:`asyncgen.ConversationLog`: each conversation's lines
            also go to its own file (after secrets are masked).

    Raises:
        ValueError: For an unknown level name.
    """
    out = stream if stream is not None else sys.stderr
    numeric = _level_number(level)
    as_json = json if json is not None else not (hasattr(out, "isatty") and out.isatty())
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer(default=str)
        if as_json
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            redact_secrets,
            *([conversations] if conversations is not None else []),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.WriteLoggerFactory(out),
        cache_logger_on_first_use=False,
    )


def _level_number(level: str | int) -> int:
    if isinstance(level, int):
        return level
    number = logging.getLevelNamesMapping().get(level.upper())
    if number is None:
        raise ValueError(f"unknown log level {level!r}: use DEBUG, INFO, WARNING or ERROR")
    return number

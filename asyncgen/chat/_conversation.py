"""Conversation logs: every log line of one user's conversation, in its own file.

``with conversation(user_id):`` binds the user and a conversation id to every log line
made inside it (structlog contextvars), across ``generate``, its retries, background
tasks spawned inside it, and queue jobs submitted inside it (the worker binds them
again while it runs the job). :class:`ConversationLog`, a structlog processor, writes
those lines to one file per conversation::

    log/conversations/<user>/<YYYY.MM.DD>/<HH-MM-SS>.log

    2026-12-01T09:30:00.120Z  +0.000  bot/handler-1  RECEIVED  text='hello'
    2026-12-01T09:30:03.410Z  +3.290  samplellm/worker-2  PROCESSING_COMPLETE  chars=42

Columns: wall time (UTC), seconds since the conversation began, agent role/instance
(``agent_role`` / ``agent_instance`` when bound; a worker binds the job's kind and its
own name), the event, then the rest of the line's keys. Secrets are masked as in every
asyncgen log line.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import re
import sys
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterator, Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from ..core._logging import mask_secrets

__all__ = ["Conversation", "ConversationLog", "conversation", "conversation_context"]

# The keys that carry a conversation from a handler into background work and queue jobs.
CONTEXT_KEYS = ("user_id", "conversation_id", "conversation_started", "conversation_file")
# Keys shown in their own columns (or in the file's path), not repeated in the tail.
_COLUMN_KEYS = frozenset(
    {*CONTEXT_KEYS, "timestamp", "event", "agent_role", "agent_instance", "logger", "level"}
)
_UNSAFE = re.compile(r"[^A-Za-z0-9._@+:-]")
DEFAULT_RETENTION = 30 * 86_400.0  # seconds a conversation file is kept
DEFAULT_MAX_OPEN = 64
_SWEEP_EVERY = 3_600.0

_log = structlog.get_logger("asyncgen.conversation")
_issued_lock = threading.Lock()
_issued: dict[str, float] = {}  # file names handed out lately in this process


@dataclass(frozen=True, slots=True)
class Conversation:
    """What :func:`conversation` bound.

    Attributes:
        user_id: The user, as a string.
        conversation_id: Given, or a new random one.
        started: Epoch seconds it began (the elapsed column counts from here).
        file: Its log file, relative to a ConversationLog's directory.
    """

    user_id: str
    conversation_id: str
    started: float
    file: str


@contextlib.contextmanager
def conversation(
    user_id: str | int, conversation_id: str | None = None, **extra: Any
) -> Iterator[Conversation]:
    """Bind a conversation's ids to every log line made inside the block.

    Usable in sync and async code (the binding is per task or thread). Logs
    ``conversation_started`` on entry, the file's first line.

    Args:
        user_id: Who is talking (any id; it becomes a folder name, made safe).
        conversation_id: An id of your own (default: a new random one).
        **extra: More keys to bind for the block only (e.g. ``agent_role="bot"``); they
            do not travel to queue jobs.
    """
    started = time.time()
    user = str(user_id)
    ids = Conversation(
        user, conversation_id or uuid.uuid4().hex[:12], started, _file_for(user, started)
    )
    with structlog.contextvars.bound_contextvars(
        user_id=ids.user_id,
        conversation_id=ids.conversation_id,
        conversation_started=started,
        conversation_file=ids.file,
        **extra,
    ):
        _log.info("conversation_started")
        yield ids


def conversation_context() -> dict[str, str]:
    """The conversation bound now, as strings (empty outside one): what a queue job
    carries to its worker."""
    bound = structlog.contextvars.get_contextvars()
    return {key: str(bound[key]) for key in CONTEXT_KEYS if key in bound}


def restored(context: Mapping[str, str]) -> dict[str, str]:
    """The conversation keys of a job's stored context (nothing else), to bind again."""
    return {key: value for key, value in context.items() if key in CONTEXT_KEYS}


def _file_for(user: str, started: float) -> str:
    """``<user>/<YYYY.MM.DD>/<HH-MM-SS>.log``; a second conversation of the same user in
    the same second (in this process) gets ``<HH-MM-SS>.2.log``, and so on."""
    moment = datetime.datetime.fromtimestamp(started, datetime.UTC)
    folder = f"{_safe(user)}/{moment:%Y.%m.%d}"
    base = f"{moment:%H-%M-%S}"  # no colons: not valid in Windows or some sync tools
    with _issued_lock:
        for old in [name for name, at in _issued.items() if at < started - 5]:
            del _issued[old]
        name, n = f"{folder}/{base}.log", 1
        while name in _issued:
            n += 1
            name = f"{folder}/{base}.{n}.log"
        _issued[name] = started
    return name


def _safe(part: str) -> str:
    cleaned = _UNSAFE.sub("_", part)[:100]
    return cleaned if cleaned.strip(".") else "_"


class ConversationLog:
    """A structlog processor writing each conversation's lines to its own file.

    Pass it to ``configure_logging(conversations=...)``, or put it in your own structlog
    chain after :func:`asyncgen.redact_secrets`. Lines outside a conversation pass
    through untouched; every line goes on to the next processor as it came.

    Processes share the files: each line is one append (``O_APPEND``), so the handler
    and the queue workers of one conversation write to the same file when they share
    the directory.

    Args:
        directory: Where the ``<user>/<YYYY.MM.DD>/<HH-MM-SS>.log`` files go (created).
        retention: Seconds a file is kept after its last line (checked at start and
            hourly; None keeps every file).
        max_open: Files held open at once; the least recently written is closed first
            (and opened again when its conversation goes on).

    Raises:
        ValueError: A retention <= 0 or ``max_open`` < 1.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str] = "log/conversations",
        *,
        retention: float | None = DEFAULT_RETENTION,
        max_open: int = DEFAULT_MAX_OPEN,
    ) -> None:
        if retention is not None and not retention > 0:
            raise ValueError(f"retention must be > 0 seconds or None, got {retention}")
        if isinstance(max_open, bool) or not isinstance(max_open, int) or max_open < 1:
            raise ValueError(f"max_open must be a whole number >= 1, got {max_open!r}")
        self.directory = Path(directory)
        self.retention = retention
        self.max_open = max_open
        self._open: OrderedDict[str, int] = OrderedDict()  # relative path -> fd
        self._lock = threading.Lock()
        self._swept = 0.0
        self.directory.mkdir(parents=True, exist_ok=True)
        self.sweep()

    def __repr__(self) -> str:
        return f"ConversationLog({str(self.directory)!r}, open={len(self._open)})"

    def __call__(
        self, logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        relative = event_dict.get("conversation_file")
        if isinstance(relative, str):
            self.write(relative, format_line(event_dict))
        return event_dict

    def write(self, relative: str, line: str) -> None:
        """Append one line to a conversation's file (masked once more, to be sure)."""
        data = (mask_secrets(line) + "\n").encode("utf-8", "replace")
        with self._lock:
            try:
                os.write(self._fd(relative), data)
            except OSError as exc:  # a full disk must not break the application
                _log_failure(relative, exc)
            if time.monotonic() - self._swept > _SWEEP_EVERY:
                self.sweep()

    def _fd(self, relative: str) -> int:
        fd = self._open.get(relative)
        if fd is not None:
            self._open.move_to_end(relative)
            return fd
        path = self._path(relative)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        self._open[relative] = fd
        while len(self._open) > self.max_open:
            _, oldest = self._open.popitem(last=False)
            os.close(oldest)
        return fd

    def _path(self, relative: str) -> Path:
        parts = [_safe(part) for part in relative.split("/")]  # never outside directory
        return self.directory.joinpath(*parts)

    @property
    def open_files(self) -> int:
        """Files held open now (at most ``max_open``)."""
        return len(self._open)

    def sweep(self) -> int:
        """Delete conversation files older than ``retention`` (by last write) and the
        folders left empty; return how many files went."""
        self._swept = time.monotonic()
        if self.retention is None:
            return 0
        cutoff = time.time() - self.retention
        removed = 0
        for path in sorted(self.directory.rglob("*.log")):
            with contextlib.suppress(OSError):
                if path.stat().st_mtime < cutoff:
                    relative = path.relative_to(self.directory).as_posix()
                    fd = self._open.pop(relative, None)
                    if fd is not None:
                        os.close(fd)
                    path.unlink()
                    removed += 1
        for folder in sorted(self.directory.rglob("*"), key=lambda p: -len(p.parts)):
            with contextlib.suppress(OSError):
                if folder.is_dir() and not any(folder.iterdir()):
                    folder.rmdir()
        return removed

    def close(self) -> None:
        """Close every open file (later lines open them again)."""
        with self._lock:
            for fd in self._open.values():
                os.close(fd)
            self._open.clear()


def format_line(event: Mapping[str, Any]) -> str:
    """One conversation line: wall time, elapsed, role/instance, event, the rest."""
    now = time.time()
    try:
        elapsed = now - float(event.get("conversation_started", now))
    except (TypeError, ValueError):
        elapsed = 0.0
    wall = datetime.datetime.fromtimestamp(now, datetime.UTC).isoformat(timespec="milliseconds")
    role = event.get("agent_role")
    agent = "-" if role is None else f"{role}/{event.get('agent_instance', '-')}"
    rest = [f"{key}={_show(value)}" for key, value in event.items() if key not in _COLUMN_KEYS]
    level = event.get("level")
    if level not in (None, "info"):
        rest.insert(0, f"level={level}")
    head = f"{wall.replace('+00:00', 'Z')}  {elapsed:+.3f}  {agent}  {event.get('event', '')}"
    return "  ".join([head, *rest]) if rest else head


def _show(value: Any) -> str:
    text = value if isinstance(value, str) else str(value)
    return repr(text) if isinstance(value, str) and (not text or " " in text) else text


def _log_failure(relative: str, error: OSError) -> None:
    # Not through structlog: this runs inside its processor chain.
    sys.stderr.write(f"asyncgen: cannot write conversation log {relative}: {error}\n")

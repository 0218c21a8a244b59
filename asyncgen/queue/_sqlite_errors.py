"""The SQLite store's checks and error translation, at the boundary with sqlite3."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from ..core._errors import ServerError, StoreError

__all__ = ["add_columns", "check_path", "check_schema", "store_error"]


def check_path(path: Path) -> None:
    """Refuse a path SQLite would fail on with a vaguer message (or not at all yet)."""
    if path.is_dir():
        raise StoreError(f"the queue path {path} is a directory: give a file, e.g. {path}/jobs.db")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"cannot create the folder of {path}: {exc.strerror or exc}") from exc
    if path.exists() and not os.access(path, os.R_OK | os.W_OK):
        raise StoreError(f"the queue file {path} is not readable and writable by this user")
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise StoreError(
            f"the folder {path.parent} is not writable: SQLite needs to create files beside "
            f"{path.name} (its journal); choose a writable folder or fix the permissions"
        )


def check_schema(db: sqlite3.Connection, path: str, columns: str) -> None:
    """Refuse a database whose ``jobs`` table lacks one of ``columns`` (comma-separated)."""
    have = {row[1] for row in db.execute("PRAGMA table_info(jobs)")}
    missing = [name.strip() for name in columns.split(",") if name.strip() not in have]
    if have and missing:  # an empty ``have``: no table yet, the schema script makes it
        raise StoreError(
            f"{path} holds a 'jobs' table of another shape (no column {missing[0]!r}): it is "
            "not an asyncgen queue; give another file"
        )


def add_columns(db: sqlite3.Connection, columns: dict[str, str]) -> None:
    """Add the columns (name: SQL type) a queue file made by an earlier version lacks."""
    have = {row[1] for row in db.execute("PRAGMA table_info(jobs)")}
    for name, kind in columns.items():
        if name not in have:
            try:
                db.execute(f"ALTER TABLE jobs ADD COLUMN {name} {kind}")
            except sqlite3.OperationalError as exc:  # another process added it first
                if "duplicate column" not in str(exc):
                    raise


def store_error(exc: sqlite3.Error, path: str) -> Exception:
    """Translate an sqlite3 error at the boundary: busy is transient, the rest says what to do."""
    text = str(exc)
    if isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text):
        return ServerError(f"the queue database {path} stayed locked for 30 s: {text}")
    if "not a database" in text or "malformed" in text or "corrupt" in text:
        return StoreError(
            f"{path} is not a usable SQLite database ({text}): if it is a queue that was "
            "damaged, restore it from a backup (or try the sqlite3 shell's .recover); "
            "otherwise give another file"
        )
    if "readonly" in text or "unable to open" in text:
        return StoreError(f"cannot write the queue database {path} ({text}): check permissions")
    return StoreError(f"the queue database {path} failed: {text}")

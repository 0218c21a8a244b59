"""Ctrl-C while the command loads: held out of imports, then one line.

Python raises KeyboardInterrupt wherever the main thread is when SIGINT arrives. While the
command loads (its libraries, then the HTTP stack when a client is made: the better part
of a second) that is often inside an import, and there it can land in one of importlib's
weakref callbacks, where Python prints "Exception ignored" with a traceback and carries on
loading as if no key had been pressed. So from :func:`main`'s start until the command's
work starts, SIGINT goes to :class:`Hold`: outside an import it raises KeyboardInterrupt
at once, as Python would; inside one it notes the press, and :func:`start_work` raises
it. main() turns either into one line and exit 130, before anything was sent.

:func:`start_work` also gives SIGINT back to Python's own handler, which asyncio.run,
uvicorn and the worker supervisor each replace with theirs while they run.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Coroutine, Iterator
from types import FrameType
from typing import Any, TypeVar

__all__ = ["Hold", "held_interrupts", "run", "start_work"]

T = TypeVar("T")
IMPORT_MACHINERY = "<frozen importlib."  # the file name importlib's frames carry


class Hold:
    """The SIGINT handler while the command loads; see the module."""

    def __init__(self) -> None:
        self.pressed = False

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        if _importing(frame):
            self.pressed = True  # raised by start_work(), outside any import
            return
        raise KeyboardInterrupt


_HOLD = Hold()


def _importing(frame: FrameType | None) -> bool:
    while frame is not None:
        if frame.f_code.co_filename.startswith(IMPORT_MACHINERY):
            return True
        frame = frame.f_back
    return False


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _holding() -> bool:
    return _main_thread() and signal.getsignal(signal.SIGINT) is _HOLD


@contextlib.contextmanager
def held_interrupts() -> Iterator[None]:
    """Hold Ctrl-C out of imports for the block (the whole of main()).

    Does nothing off the main thread or when the caller has a SIGINT handler of its own
    (main() called from a program that handles Ctrl-C itself). A press held to the end of
    the block is raised there.
    """
    if not _main_thread() or signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield
        return
    _HOLD.pressed = False
    signal.signal(signal.SIGINT, _HOLD)
    try:
        yield
    finally:
        if _holding():
            signal.signal(signal.SIGINT, signal.default_int_handler)
    if _HOLD.pressed:
        _HOLD.pressed = False
        raise KeyboardInterrupt


def start_work() -> None:
    """End the hold: raise a held Ctrl-C now, else give SIGINT back to Python's handler.

    Call it just before the command's work (an event loop, a server, child processes)
    installs its own SIGINT handling; a no-op when nothing is held.
    """
    if not _holding():
        return
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if _HOLD.pressed:
        _HOLD.pressed = False
        raise KeyboardInterrupt


def run(work: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(work)`` once the hold has ended; a held Ctrl-C closes ``work`` unrun."""
    import asyncio  # here, not above: this module loads before the hold begins

    try:
        start_work()
    except KeyboardInterrupt:
        work.close()
        raise
    return asyncio.run(work)

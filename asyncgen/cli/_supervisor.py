"""``asyncgen worker --processes N``: N worker processes from one command.

The supervisor starts N copies of the worker command (each a whole ``asyncgen worker``
with its own event loop and store connections), restarts one that dies with a backoff
(1 s, doubling to 30 s; back to 1 s once a process has run for a minute), forwards
SIGTERM and SIGINT so that every process drains, and exits when they all have: 0 when
each drained cleanly, 1 otherwise. A process that exits 2 (a usage or store error: the
queue refused the password, say) is not restarted: the others are drained and the
supervisor exits 2.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import FrameType

__all__ = ["CHILD_VARIABLE", "supervise"]

CHILD_VARIABLE = "ASYNCGEN_SUPERVISED"  # set in the children: they run, not supervise
EXIT_USAGE = 2
FIRST_BACKOFF = 1.0
MAX_BACKOFF = 30.0
STEADY = 60.0  # seconds alive after which a process's restarts start from FIRST_BACKOFF
TICK = 0.2


@dataclass
class _Slot:
    number: int
    process: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    backoff: float = FIRST_BACKOFF
    restart_at: float = 0.0
    codes: list[int] = field(default_factory=list)


def _say(text: str) -> None:
    sys.stderr.write(f"asyncgen worker supervisor: {text}\n")
    sys.stderr.flush()


def supervise(
    command: list[str], processes: int, *, on_exit: Callable[[int], object] | None = None
) -> int:
    """Run ``command`` in ``processes`` child processes until SIGTERM/SIGINT; see module.

    ``on_exit`` is called with the pid of each child that ends.
    """
    slots = [_Slot(number) for number in range(1, processes + 1)]
    stopping: list[int] = []

    def forward(signum: int, frame: FrameType | None) -> None:
        if not stopping:
            _say(f"{signal.Signals(signum).name}: draining {processes} process(es)")
        stopping.append(signum)
        for slot in slots:
            if slot.process is not None and slot.process.poll() is None:
                slot.process.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}
    env = {**os.environ, CHILD_VARIABLE: "1"}
    _say(f"{processes} worker processes; SIGTERM or SIGINT drains them all")
    try:
        while True:
            now = time.monotonic()
            for slot in slots:
                ended = _tend(slot, command, env, now, stopping=bool(stopping))
                if ended is not None and on_exit is not None:
                    on_exit(ended)
                if EXIT_USAGE in slot.codes and not stopping:
                    _say(
                        f"process {slot.number} exited {EXIT_USAGE} (a usage or store "
                        "error): not restarting; draining the others"
                    )
                    forward(signal.SIGTERM, None)
            if stopping and all(s.process is None or s.process.poll() is not None for s in slots):
                break
            time.sleep(TICK)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if any(EXIT_USAGE in s.codes for s in slots):
        return EXIT_USAGE
    # A process that the forwarded signal ended by default action was still starting up
    # (it installs its drain handler before it claims anything): nothing was lost.
    drained = (0, -signal.SIGTERM, -signal.SIGINT)
    clean = all(s.process is None or s.process.returncode in drained for s in slots)
    return 0 if clean else 1


def _tend(
    slot: _Slot, command: list[str], env: dict[str, str], now: float, *, stopping: bool
) -> int | None:
    """Start the slot's process when due; notice when it ended (its pid is returned,
    once) and plan its restart."""
    process = slot.process
    if process is not None and process.poll() is None:
        return None
    if process is not None and slot.restart_at <= slot.started:  # it just ended
        code = process.returncode
        slot.codes.append(code)
        if stopping or code == EXIT_USAGE:
            slot.restart_at = float("inf")
            return process.pid
        lived = now - slot.started
        slot.backoff = FIRST_BACKOFF if lived >= STEADY else slot.backoff
        slot.restart_at = now + slot.backoff
        how = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exited {code}"
        _say(
            f"process {slot.number} (pid {process.pid}) {how} after {lived:.1f} s; "
            f"restarting in {slot.backoff:g} s"
        )
        slot.backoff = min(MAX_BACKOFF, slot.backoff * 2)
        return process.pid
    if stopping or now < slot.restart_at:
        return None
    slot.process = subprocess.Popen(command, env=env)
    slot.started = now
    return None

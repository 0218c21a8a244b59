"""Progress for a run: a live rich bar on a terminal, plain lines elsewhere, a summary."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import TextIO

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeRemainingColumn
from rich.table import Table

from ..llm import ChatClient, Event, RunProgress
from ..llm.engine._events import ResultCounts

__all__ = ["ProgressDisplay", "cache_summary"]

PLAIN_EVERY = 2.0  # seconds between plain progress lines


@dataclass
class Tally(ResultCounts):
    """Counters of a run: the finished jobs' counts, of ``total``, since ``started``."""

    total: int = 0
    skipped: int = 0
    started: float = field(default_factory=time.monotonic)

    @property
    def rate(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.done / elapsed if elapsed > 0 else 0.0

    def compact(self) -> str:
        """The counters in a form that fits beside a bar on an 80-column terminal."""
        return (
            f"{self.done}/{self.total} ok {self.ok} fail {self.failed} retry {self.retries} "
            f"{self.rate:.0f}/s {self.tokens} tok ${self.cost:.4f}"
        )

    def line(self) -> str:
        eta = (self.total - self.done) / self.rate if self.rate else float("inf")
        eta_text = f"{eta:.0f}s" if eta != float("inf") else "?"
        return (
            f"{self.done}/{self.total} done, {self.ok} ok, {self.failed} failed, "
            f"{self.retries} retries, {self.rate:.1f} jobs/s, {self.tokens} tokens, "
            f"${self.cost:.4f}, eta {eta_text}"
        )


class ProgressDisplay:
    """Receives generation events and shows progress; prints a summary at the end.

    Args:
        total: Jobs to run in this invocation (skipped ones excluded).
        skipped: Jobs already finished by an earlier run.
        stream: Where to write; default standard output.
        live: A rich live bar (True) or plain lines (False); None: live on a terminal.
    """

    def __init__(
        self,
        total: int,
        *,
        skipped: int = 0,
        stream: TextIO | None = None,
        live: bool | None = None,
    ) -> None:
        self.stream = stream or sys.stdout
        self.live = self.stream.isatty() if live is None else live
        self.tally = Tally(total=total, skipped=skipped)
        self.console = Console(file=self.stream, force_terminal=self.live or None, highlight=False)
        self._last_plain = 0.0
        self._bar: Progress | None = None
        self._task: TaskID | None = None

    def __enter__(self) -> ProgressDisplay:
        if self.live:
            self._bar = Progress(
                BarColumn(bar_width=16),
                TextColumn("{task.description}"),
                TimeRemainingColumn(),
                console=self.console,
                transient=False,
            )
            self._bar.start()
            self._task = self._bar.add_task(self.tally.compact(), total=self.tally.total)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()

    def handle(self, event: Event) -> None:
        """Count one event and refresh the display."""
        if self.tally.count(event) or not isinstance(event, RunProgress):
            self._show()

    def _show(self) -> None:
        if self._bar is not None and self._task is not None:
            self._bar.update(
                self._task, completed=self.tally.done, description=self.tally.compact()
            )
            return
        now = time.monotonic()
        if now - self._last_plain >= PLAIN_EVERY or self.tally.done == self.tally.total:
            self._last_plain = now
            self.stream.write(f"progress: {self.tally.line()}\n")
            self.stream.flush()

    def summary(self, output: str, *, cache: str | None = None) -> None:
        """Print the final counts (a table on a terminal, plain lines otherwise); ``cache``
        is the response cache's line, when one was used."""
        t = self.tally
        elapsed = time.monotonic() - t.started
        rows = [
            ("jobs run", str(t.done)),
            ("ok", str(t.ok)),
            ("failed", str(t.failed)),
            ("skipped (done before)", str(t.skipped)),
            ("retries", str(t.retries)),
            ("tokens", str(t.tokens)),
            ("cost", t.cost_text()),
            ("elapsed", f"{elapsed:.1f} s"),
            ("jobs/s", f"{t.rate:.1f}"),
            ("output", output),
        ]
        if cache is not None:
            rows.insert(7, ("cache", cache))
        if self.live:
            table = Table(title="asyncgen run", show_header=False)
            for name, value in rows:
                table.add_row(name, value)
            self.console.print(table)
        else:
            for name, value in rows:
                self.stream.write(f"summary: {name}: {value}\n")
            self.stream.flush()


def cache_summary(client: ChatClient) -> str | None:
    """The response cache's figures for the summary (None: no cache)."""
    if client.cache is None:
        return None
    stats = client.statistics()
    return (
        f"{stats.cache_hits} hit(s) at $0 (they cost ${stats.cache_saved:.6f} when "
        f"generated), {stats.cache_misses} miss(es) sent"
    )

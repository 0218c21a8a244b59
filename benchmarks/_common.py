"""Helpers shared by the benchmarks: the JSON report, ``asyncgen`` command lines, worker
processes started and stopped."""

from __future__ import annotations

import json
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"


def asyncgen_argv(*args: str) -> list[str]:
    """The command line of ``python -m asyncgen ARGS`` in this interpreter."""
    return [sys.executable, "-m", "asyncgen", *args]


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile of ``values`` (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def write_report(name: str, figures: dict[str, Any], path: Path | None = None) -> Path:
    """Write the figures with a note of the machine; return the file's path."""
    target = path or RESULTS / f"{name}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "benchmark": name,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **figures,
    }
    target.write_text(json.dumps(report, indent=2) + "\n")
    return target


def spawn(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    """Start a process in benchmarks/ with ``env`` added, its output dropped."""
    return subprocess.Popen(
        args,
        cwd=Path(__file__).parent,
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def stop(processes: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM every process, then wait (SIGKILL one that has not ended in 30 s)."""
    for process in processes:
        process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()

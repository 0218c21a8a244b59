"""Helpers shared by the benchmarks: the JSON report, ``asyncgen`` command lines."""

from __future__ import annotations

import json
import platform
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

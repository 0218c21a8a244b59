"""``asyncgen run --sim`` over big files: jobs per second and peak RSS.

Writes 10,000- and 100,000-line job files, runs each through the command (simulator at
zero latency in its own process, concurrency 64), and samples the command's peak RSS
(VmHWM). Target (issue 5): peak RSS does not grow with the file.

Run: python benchmarks/bench_cli.py [--sizes 10000 100000] [--backend aiohttp]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from _common import asyncgen_argv, write_report


def write_jobs(path: Path, count: int) -> None:
    with path.open("w") as stream:
        for i in range(count):
            stream.write(json.dumps({"id": f"job-{i}", "model": "m", "prompt": f"p {i}"}) + "\n")


def hwm_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def run_once(count: int, backend: str, folder: Path) -> dict[str, Any]:
    jobs, out = folder / f"in-{count}.jsonl", folder / f"out-{count}.jsonl"
    write_jobs(jobs, count)
    command = asyncgen_argv(
        "run", str(jobs), "-o", str(out), "--sim", "--concurrency", "64", "--backend", backend
    )
    began = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peak = 0
    while child.poll() is None:
        peak = max(peak, hwm_kib(child.pid))
        time.sleep(0.1)
    elapsed = time.perf_counter() - began
    if child.returncode != 0:
        problem = child.stderr.read() if child.stderr else ""
        raise RuntimeError(f"asyncgen run failed: {problem}")
    lines = sum(1 for _ in out.open())
    return {
        "lines": count,
        "results": lines,
        "wall_s": round(elapsed, 2),
        "jobs_per_s": round(count / elapsed, 1),
        "peak_rss_mb": round(peak / 1024, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--backend", choices=["httpx", "aiohttp"], default="aiohttp")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    figures: dict[str, Any] = {"backend": args.backend, "runs": []}
    with tempfile.TemporaryDirectory() as folder:
        for count in args.sizes:
            figures["runs"].append(run_once(count, args.backend, Path(folder)))
            print(figures["runs"][-1])
    rss = [run["peak_rss_mb"] for run in figures["runs"]]
    figures["rss_growth_ratio_largest_vs_smallest"] = round(rss[-1] / rss[0], 3)
    print(f"peak RSS, largest vs smallest file: {figures['rss_growth_ratio_largest_vs_smallest']}x")
    print(f"wrote {write_report('bench_cli', figures, args.json)}")


if __name__ == "__main__":
    main()

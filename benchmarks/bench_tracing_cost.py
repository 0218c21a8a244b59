"""What OpenTelemetry's API costs per request when nothing traces, in instructions.

Wall-clock rates on this shared machine spread 8-15 % between rounds of the same code,
so a 3 % target cannot be read off them (docs/performance.md, "Tracing"). Instructions
can: valgrind's callgrind counts them, the same for the same code whatever else runs.

Each case runs ``asyncgen.generate`` (the aiohttp backend, concurrency 64) against the
simulator in another process (not counted), twice: SMALL and LARGE requests. The
difference divided by LARGE - SMALL is the instructions per request, startup and
imports cancelled out. Cases: ``absent`` (``opentelemetry`` made unimportable) and
``installed`` (the API importable, no TracerProvider set).

Writes benchmarks/results/bench_tracing_cost.json. Needs valgrind (Debian's package).

Run: python benchmarks/bench_tracing_cost.py [--small 200] [--large 1200]
"""

from __future__ import annotations

import argparse
import asyncio
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from _common import write_report

CASES = ("absent", "installed")


def workload(case: str, requests: int, base_url: str) -> None:
    """The counted process: ``requests`` generations through asyncgen."""
    if case == "absent":
        sys.modules["opentelemetry"] = None  # type: ignore[assignment]
    import asyncgen  # after the case is set up

    async def run() -> None:
        async with asyncgen.ChatClient(base_url, backend="aiohttp") as client:
            jobs = [{"model": "m", "prompt": f"q{i}"} for i in range(requests)]
            results = await asyncgen.generate(jobs, client=client, concurrency=64)
            assert all(r.ok for r in results), [r.error for r in results if not r.ok][:3]

    asyncio.run(run())


def instructions(case: str, requests: int, base_url: str) -> int:
    """The instructions the workload process ran (callgrind's total)."""
    with tempfile.TemporaryDirectory() as folder:
        done = subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={folder}/out",
                sys.executable,
                __file__,
                "--workload",
                case,
                str(requests),
                base_url,
            ],
            capture_output=True,
            text=True,
            check=True,
        )
    found = re.search(r"Collected : (\d+)", done.stderr)
    assert found, done.stderr[-2000:]
    return int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=200)
    parser.add_argument("--large", type=int, default=1200)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--workload", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.workload:
        case, requests, base_url = args.workload
        workload(case, int(requests), base_url)
        return
    from asyncgen.testing import sim_server

    figures: dict[str, Any] = {"small": args.small, "large": args.large}
    with sim_server(process=True) as sim:
        for case in CASES:
            small = instructions(case, args.small, sim.base_url)
            large = instructions(case, args.large, sim.base_url)
            per_request = (large - small) / (args.large - args.small)
            figures[case] = {
                "instructions_small": small,
                "instructions_large": large,
                "per_request": round(per_request),
            }
            print(f"{case}: {per_request:,.0f} instructions per request")
    figures["installed_over_absent"] = round(
        figures["installed"]["per_request"] / figures["absent"]["per_request"], 4
    )
    print(f"installed / absent: {figures['installed_over_absent']}")
    print(f"wrote {write_report('bench_tracing_cost', figures, args.json)}")


if __name__ == "__main__":
    main()

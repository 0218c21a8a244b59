"""The Batch API mode on large files: peak memory and the upload/download paths' speed.

- Peak RSS: ``asyncgen run --batch-api`` as a child process on 10,000, 100,000 and
  200,000 lines (the simulator's Batch API in another process, 1 s per batch, 50,000
  requests a batch); the child's peak resident memory (``wait4``). Request files are
  written as they fill and output files read as streams; what still grows is one
  batch's index (up to 50,000 ids) and the ids kept to refuse duplicates and resume.
- Speed, in this process on 100,000 lines: the submit path (jobs to request files,
  upload, create: lines/s) and the read path (download the output files, parse, hand
  each answer on and write it as a result line: lines/s; the time of each batch's
  ``_read``, so polling is not in it).

Run: python benchmarks/bench_batch_api.py [--lines 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from asyncgen import ChatClient, GenerationJob
from asyncgen.llm.batch_api._folder import BatchRecord
from asyncgen.llm.batch_api._run import BatchOutcome, BatchRun
from asyncgen.testing import BatchProfile, SimConfig, sim_server

sys.path.insert(0, str(Path(__file__).parent))
from _common import asyncgen_argv, write_report

PROMPT = "Classify the sentiment of this review: " + "great product, works well " * 4


def write_input(path: Path, lines: int) -> None:
    with path.open("w") as stream:
        for i in range(lines):
            stream.write(
                json.dumps({"id": f"r{i}", "model": "m", "prompt": f"{PROMPT} #{i}"}) + "\n"
            )


def batch_api_flags(base_url: str) -> tuple[str, ...]:
    return ("--base-url", base_url, "--batch-api", "--poll", "0.5")


def peak_rss_mib(base_url: str, lines: int, folder: Path) -> dict[str, Any]:
    """Run the command on ``lines`` lines; its peak RSS (MiB) and wall time."""
    source, out = folder / f"in-{lines}.jsonl", folder / f"out-{lines}.jsonl"
    write_input(source, lines)
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    began = time.perf_counter()
    child = subprocess.Popen(
        asyncgen_argv("run", str(source), "-o", str(out), *batch_api_flags(base_url)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    written = sum(1 for _ in out.open()) if out.exists() else 0
    return {
        "lines": lines,
        "exit_code": child.returncode,
        "lines_written": written,
        "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),
        "wall_s": round(time.perf_counter() - began, 2),
    }


class TimedRun(BatchRun):
    """BatchRun that times each batch's reading (download, parse, hand on)."""

    read_seconds = 0.0

    async def _read(self, record: BatchRecord, batch: dict[str, Any]) -> None:
        began = time.perf_counter()
        await super()._read(record, batch)
        self.read_seconds += time.perf_counter() - began


async def speed(base_url: str, lines: int, folder: Path) -> dict[str, Any]:
    out = (folder / "speed-out.jsonl").open("w")

    def write(outcome: BatchOutcome) -> None:
        completion = outcome.completion
        out.write(
            json.dumps(
                {
                    "id": outcome.id,
                    "ok": outcome.error is None,
                    "text": completion.text if completion else None,
                    "usage": completion.usage.model_dump() if completion else None,
                    "fingerprint": outcome.fingerprint,
                }
            )
            + "\n"
        )

    jobs = (GenerationJob(id=f"s{i}", model="m", prompt=f"{PROMPT} #{i}") for i in range(lines))
    async with ChatClient(base_url) as client:
        run = TimedRun(client, folder / "speed", on_outcome=write, poll_interval=0.2)
        began = time.perf_counter()
        await run.submit(jobs)
        submit = time.perf_counter() - began
        await run.wait()
    out.close()
    return {
        "lines": lines,
        "batches": len(run.records),
        "submit_s": round(submit, 2),
        "submit_lines_per_s": round(lines / submit),
        "read_s": round(run.read_seconds, 2),
        "read_lines_per_s": round(lines / run.read_seconds),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    config = SimConfig(batch=BatchProfile(complete_after=1.0))
    figures: dict[str, Any] = {}
    with sim_server(config, process=True) as sim, tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        sizes = [args.lines // 10, args.lines, args.lines * 2]
        runs = []
        for lines in sizes:
            runs.append(peak_rss_mib(sim.base_url, lines, folder))
            print("rss", runs[-1], flush=True)
        small, large, double = runs
        figures["peak_rss"] = {
            "runs": runs,
            "growth_mib_10x": round(large["peak_rss_mib"] - small["peak_rss_mib"], 1),
            # past one full batch the per-batch index stops growing: what is left is the
            # id bookkeeping (duplicate check, resume), as in the online mode
            "bytes_per_line_beyond_one_batch": round(
                (double["peak_rss_mib"] - large["peak_rss_mib"]) * 2**20 / args.lines
            ),
        }
        figures["speed"] = asyncio.run(speed(sim.base_url, args.lines, folder))
        print("speed", figures["speed"], flush=True)
    print(f"wrote {write_report('bench_batch_api', figures, args.json)}")


if __name__ == "__main__":
    main()

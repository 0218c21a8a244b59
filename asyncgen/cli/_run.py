"""``asyncgen run``: a JSONL file of jobs through generate_stream, resumable."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from .._ratelimit import RateLimiter
from .._retry import RetryPolicy
from ..llm import ChatClient, generate_stream
from ..sim import SimConfig, SimServer
from ._files import ResultWriter, finished_ids, read_jobs, validate_input
from ._progress import RunProgress

__all__ = ["EXIT_FAILED", "EXIT_OK", "EXIT_USAGE", "run_command"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
PROVIDERS = {"openrouter": ChatClient.openrouter, "openai": ChatClient.openai,
             "deepseek": ChatClient.deepseek}  # fmt: skip
KEY_VARIABLES = {"openrouter": "OPENROUTER_API_KEY", "openai": "OPENAI_API_KEY",
                 "deepseek": "DEEPSEEK_API_KEY"}  # fmt: skip


class UsageProblem(Exception):
    """A problem with the command line or its inputs: exit code 2."""


def _err(message: str) -> None:
    sys.stderr.write(f"asyncgen: {message}\n")


@contextlib.contextmanager
def _client(args: argparse.Namespace) -> Iterator[ChatClient]:
    """The client the flags ask for; with --sim, a simulator in a child process."""
    limiter = RateLimiter(args.rpm, args.tpm) if (args.rpm or args.tpm) else None
    options = {
        "rate_limit": limiter,
        "max_connections": max(10, args.max_connections),
        "backend": args.backend,
    }
    if args.sim:
        with SimServer(SimConfig(), process=True) as sim:
            yield ChatClient(sim.base_url, **options)
        return
    if args.base_url:
        yield ChatClient(args.base_url, os.environ.get("ASYNCGEN_API_KEY"), **options)
        return
    variable = KEY_VARIABLES[args.provider]
    if not os.environ.get(variable):
        raise UsageProblem(
            f"no API key: set {variable} in the environment (or use --sim to try the "
            "built-in simulator, or --base-url with ASYNCGEN_API_KEY)"
        )
    yield PROVIDERS[args.provider](**options)


def _concurrency(text: str) -> int | Literal["auto"]:
    if text == "auto":
        return "auto"
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'auto', got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("concurrency must be >= 1")
    return value


def add_run_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Declare ``asyncgen run`` and its flags."""
    run = commands.add_parser(
        "run",
        help="run a JSONL file of jobs, appending results (resumable)",
        description="Run every job of INPUT.jsonl, appending one result line per job to "
        "OUTPUT.jsonl as it finishes. Run the same command again to resume: jobs already "
        "answered are skipped. Exit codes: 0 all OK, 1 some failed, 2 usage or input error.",
    )
    run.add_argument("input", type=Path, help="JSONL: {id, model, prompt|messages, params}")
    run.add_argument("-o", "--output", type=Path, required=True, help="results JSONL")
    where = run.add_mutually_exclusive_group()
    where.add_argument(
        "--provider",
        choices=sorted(PROVIDERS),
        default="openrouter",
        help="API preset; its key comes from the environment",
    )
    where.add_argument("--base-url", help="any OpenAI-compatible root; key: $ASYNCGEN_API_KEY")
    where.add_argument("--sim", action="store_true", help="use the built-in simulator")
    run.add_argument("--model", help="model for lines that name none")
    run.add_argument("--concurrency", type=_concurrency, default=6, help="N or auto (default 6)")
    run.add_argument("--rpm", type=float, help="requests per minute limit")
    run.add_argument("--tpm", type=float, help="tokens per minute limit")
    run.add_argument("--retries", type=int, default=3, help="attempts per job (default 3)")
    run.add_argument("--deadline", type=float, help="stop after this many seconds (resumable)")
    run.add_argument("--retry-failed", action="store_true", help="re-run jobs that failed before")
    run.add_argument(
        "--backend",
        choices=["httpx", "aiohttp"],
        default="httpx",
        help="HTTP backend; aiohttp (asyncgen[fast]) costs less CPU per request",
    )
    run.add_argument("--max-connections", type=int, default=64, help=argparse.SUPPRESS)
    run.set_defaults(handler=run_command)


def run_command(args: argparse.Namespace) -> int:
    """Validate, resume, run, report. Returns the exit code."""
    if not args.input.is_file():
        _err(f"input file not found: {args.input}")
        return EXIT_USAGE
    if args.retries < 1:
        _err("--retries must be >= 1")
        return EXIT_USAGE
    skip, failed_before = finished_ids(args.output, include_failed=not args.retry_failed)
    summary = validate_input(args.input, skip=skip, default_model=args.model)
    if summary.problem_count:
        for problem in summary.problems:
            _err(f"{args.input}:{problem}")
        more = summary.problem_count - len(summary.problems)
        if more:
            _err(f"... and {more} more bad lines")
        _err(f"{summary.problem_count} bad line(s); nothing was sent. Fix them and run again.")
        return EXIT_USAGE
    try:
        with _client(args) as client:
            failed = asyncio.run(_run(args, client, skip, summary.todo, summary.done_before))
    except UsageProblem as exc:
        _err(str(exc))
        return EXIT_USAGE
    left_failed = 0 if args.retry_failed else failed_before
    return EXIT_OK if failed + left_failed == 0 else EXIT_FAILED


async def _run(
    args: argparse.Namespace, client: ChatClient, skip: set[str], todo: int, skipped: int
) -> int:
    jobs = read_jobs(args.input, skip=skip, default_model=args.model)
    progress = RunProgress(todo, skipped=skipped)
    with ResultWriter(args.output) as writer, progress:
        stream = generate_stream(
            jobs, client=client, concurrency=args.concurrency,
            retry=RetryPolicy(max_attempts=args.retries), on_event=progress.handle,
        )  # fmt: skip
        try:
            async with asyncio.timeout(args.deadline), contextlib.aclosing(stream) as results:
                async for result in results:
                    writer.write(result)
        except TimeoutError:
            left = todo - progress.tally.done
            _err(
                f"deadline of {args.deadline:g} s reached: {left} job(s) not run; "
                "run the same command again to resume"
            )
        finally:
            await client.aclose()
    progress.summary(str(args.output))
    return progress.tally.failed + (todo - progress.tally.done)

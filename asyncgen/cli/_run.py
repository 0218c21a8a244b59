"""``asyncgen run``: a JSONL file of jobs through generate_stream, resumable."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

from ..core._defaults import DEFAULT_CONCURRENCY, DEFAULT_MAX_ATTEMPTS
from ..core._errors import AsyncGenError, BatchNotFoundError, InsufficientCreditsError
from ..core._logging import configure_logging, mask_secrets
from ..core._retry import RetryPolicy
from ..core._settings import Settings
from ..llm import ChatClient, Event, generate_stream
from ..sim import SimConfig, SimServer
from ._args import (
    PROVIDERS,
    add_limit_flags,
    add_settings_flag,
    cache_url_type,
    concurrency_flag,
    limiter_from,
    load_settings,
    number,
    provider_client,
    schema_type,
    whole,
)
from ._batch_api import batch_failure, check_batches, run_batch_api
from ._dashboard import DASHBOARD_PORT, run_board
from ._files import UsageProblem, check_files, read_jobs, validate_input
from ._interrupts import run
from ._output import RERUN_ERRORS, OutputLock, OutputWriteError, ResultWriter, Resume
from ._progress import ProgressDisplay, cache_summary

__all__ = ["EXIT_FAILED", "EXIT_OK", "EXIT_USAGE", "Terminated", "run_command"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
MAX_CONCURRENCY = 10_000
DEFAULT_BATCH_POLL = 30.0  # seconds before the first poll of a provider's batches
SIM_CACHE_SCOPE = "asyncgen-sim"  # the simulator's name in cache keys, whatever its port


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled as Ctrl-C is: stop, keep what is written, say how to resume."""


def _err(message: str) -> None:
    sys.stderr.write(f"asyncgen: {message}\n")


@contextlib.contextmanager
def _client(args: argparse.Namespace, settings: Settings) -> Iterator[ChatClient]:
    """The client the flags ask for; with --sim, a simulator in a child process."""
    budget = args.base_url or args.provider or settings.base_url or "openrouter"
    limiter = limiter_from(args, base_url=budget, learns=args.concurrency == "auto")
    concurrency = 64 if args.concurrency == "auto" else args.concurrency
    options = {
        "rate_limit": limiter,
        "max_connections": max(10, min(args.max_connections, concurrency)),
        "backend": args.backend,
        "cache": args.cache,
    }
    if not args.sim:
        yield provider_client(args.provider, args.base_url, settings=settings, **options)
        return
    provider_client(None, "http://127.0.0.1", settings=settings, **options)  # a bad backend
    with SimServer(SimConfig(), process=True) as sim:
        # Each run's simulator has a new port: its answers are cached under one name.
        yield ChatClient(sim.base_url, cache_scope=SIM_CACHE_SCOPE, **options)


def add_run_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Declare ``asyncgen run`` and its flags."""
    run = commands.add_parser(
        "run",
        help="run a JSONL file of jobs, appending results (resumable)",
        description="Run every job of INPUT.jsonl, appending one result line per job to "
        "OUTPUT.jsonl as it finishes. Run the same command again to resume: jobs already "
        "answered are skipped, and jobs stopped by a 402 (no credits) or by --max-cost run "
        "again. Exit codes: 0 all OK, 1 some failed, 2 usage or input error, 130 interrupted "
        "(Ctrl-C), 143 terminated (SIGTERM).",
    )
    run.add_argument("input", type=Path, help="JSONL: {id, model, prompt|messages, params}")
    run.add_argument("-o", "--output", type=Path, required=True, help="results JSONL")
    run.add_argument(
        "--provider",
        choices=sorted(PROVIDERS),
        help="API preset; its key comes from the environment (default: base_url from the "
        "settings, else openrouter); with --base-url, the provider behind that gateway (its "
        "prices, its key variable unless $ASYNCGEN_API_KEY is set)",
    )
    run.add_argument("--base-url", help="any OpenAI-compatible root; key: $ASYNCGEN_API_KEY")
    run.add_argument("--sim", action="store_true", help="use the built-in simulator")
    run.add_argument("--model", help="model for lines that name none")
    run.add_argument(
        "--concurrency",
        type=concurrency_flag("requests at once", maximum=MAX_CONCURRENCY),
        default=None,
        help=f"N or auto (default {DEFAULT_CONCURRENCY})",
    )
    add_limit_flags(run, shared_default="default: not shared")
    run.add_argument(
        "--retries",
        type=whole("attempts", minimum=1),
        default=None,
        help=f"attempts per job (default {DEFAULT_MAX_ATTEMPTS})",
    )
    run.add_argument(
        "--deadline", type=number("seconds"), help="stop after this many seconds (resumable)"
    )
    run.add_argument(
        "--max-cost",
        type=number("dollars"),
        help="stop starting jobs once the reported cost reaches this many dollars; "
        "the jobs not sent run when the command is run again",
    )
    run.add_argument("--retry-failed", action="store_true", help="re-run jobs that failed before")
    run.add_argument(
        "--backend",
        choices=["httpx", "aiohttp"],
        default="httpx",
        help="HTTP backend; aiohttp (asyncgen[fast]) costs less CPU per request",
    )
    run.add_argument(
        "--max-connections",
        type=whole("connections", minimum=1),
        default=64,
        help=argparse.SUPPRESS,
    )
    run.add_argument(
        "--dashboard",
        nargs="?",
        const=DASHBOARD_PORT,
        default=None,
        type=whole("port", minimum=1, maximum=65535),
        metavar="PORT",
        help="serve a live page of this run on http://127.0.0.1:PORT/ (default "
        f"{DASHBOARD_PORT}; needs asyncgen[dashboard])",
    )
    run.add_argument(
        "--schema",
        metavar="MODULE:MODEL",
        type=schema_type,
        default=None,
        help="a pydantic model every answer must fit (its JSON schema is sent; "
        "an answer that does not fit is re-asked twice); results gain "
        "'parsed'",
    )
    batch = run.add_argument_group("Batch API (about half the price, answers within 24 h)")
    batch.add_argument(
        "--batch-api",
        action="store_true",
        help="send the jobs as provider batches (state in OUTPUT.batch/; run "
        "the same command again to pick up batches in flight)",
    )
    batch.add_argument(
        "--batch-fallback",
        choices=["batch", "online"],
        default="batch",
        help="where expired and failed-but-retryable requests go again (default: a new batch)",
    )
    batch.add_argument(
        "--batch-size",
        type=whole("requests", minimum=1, maximum=50_000),
        default=50_000,
        help="requests per batch (default 50000)",
    )
    batch.add_argument(
        "--poll",
        type=number("seconds"),
        default=None,
        help="seconds between polls at first (default 30, 1 with --sim; grows to 60)",
    )
    batch.add_argument(
        "--cancel",
        action="store_true",
        help="cancel the batches in flight; write what they had done",
    )
    batch.add_argument(
        "--resubmit-missing",
        action="store_true",
        help="send the requests of recorded batches the provider does not "
        "know (HTTP 404) again as new batches (implied with --sim)",
    )
    batch.add_argument(
        "--forget-batches",
        action="store_true",
        help="drop OUTPUT.batch/ (the batches recorded in flight) before "
        "running: their answers are never read, their jobs run again (cancel "
        "them first with --cancel if they may still run)",
    )
    run.add_argument(
        "--cache",
        metavar="URL",
        type=cache_url_type,
        default=None,
        help="answer identical requests from a response cache instead of sending "
        "them: sqlite:///FILE or redis://HOST:PORT/DB (hits cost 0)",
    )
    add_settings_flag(run)
    run.set_defaults(handler=run_command)


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise Terminated


def run_command(args: argparse.Namespace) -> int:
    """Validate, resume, run, report. Returns the exit code."""
    signal.signal(signal.SIGTERM, _terminate)
    try:
        settings = load_settings(args.settings)
        # Masks keys in every line; stderr shows progress, so warnings and up by default.
        configure_logging(
            json=settings.log_json, level=settings.log_level or "WARNING", stream=sys.stderr
        )
        if args.batch_api:  # before the settings fill in: flags given, not defaults
            _batch_api_flags(args)
        if args.poll is None:  # the simulator's batches end in a second: look soon
            args.poll = 1.0 if args.sim else DEFAULT_BATCH_POLL
        for name in ("concurrency", "retries", "deadline"):  # flags win over settings
            if getattr(args, name) is None:
                setattr(args, name, getattr(settings, name))
        check_files(args.input, args.output)
        if args.sim and (args.provider or args.base_url):
            raise UsageProblem("--sim is its own server: drop --provider and --base-url")
        if args.cancel and not args.batch_api:
            raise UsageProblem("--cancel cancels Batch API batches: give --batch-api too")
        if args.resubmit_missing and not args.batch_api:
            raise UsageProblem("--resubmit-missing is for Batch API runs: give --batch-api too")
        if args.forget_batches and args.cancel:
            raise UsageProblem(
                "--forget-batches drops the batches --cancel would cancel: "
                "cancel first, then forget"
            )
        with OutputLock(args.output):
            return _locked(args, settings)
    except UsageProblem as exc:
        _err(str(exc))
        return EXIT_USAGE


def _locked(args: argparse.Namespace, settings: Settings) -> int:
    check_batches(args)
    resume = Resume.read(args.output, retry_failed=args.retry_failed)
    summary = validate_input(
        args.input, done=resume.done, default_model=args.model, response_model=args.schema
    )
    if summary.problem_count:
        for problem in summary.problems:
            _err(f"{args.input}:{problem}")
        more = summary.problem_count - len(summary.problems)
        if more:
            _err(f"... and {more} more bad lines")
        _err(f"{summary.problem_count} bad line(s); nothing was sent. Fix them and run again.")
        return EXIT_USAGE
    if summary.jobs == 0:
        _err(f"{args.input} holds no jobs (it is empty, or blank lines only): nothing to run")
        return EXIT_OK
    if resume.rerun:
        _err(
            f"{resume.rerun} job(s) stopped earlier by a 402, a refused key or --max-cost "
            "run again now"
        )
    if summary.changed:
        _err(
            f"{summary.changed} job(s) answered earlier run again: their request changed "
            "since (model, messages, params or schema); the new line replaces the old"
        )
    with _client(args, settings) as client:
        if args.batch_api:
            try:
                failed, left = run(run_batch_api(args, client, resume, summary.todo))
            except BatchNotFoundError as exc:
                _err(
                    f"{mask_secrets(str(exc))}. What was written is kept. Run the same "
                    "command with --resubmit-missing to send its requests again as a new "
                    "batch, or with --forget-batches to drop every recorded batch (their "
                    "jobs run again)"
                )
                return EXIT_FAILED
            except AsyncGenError as exc:
                _err(
                    f"{batch_failure(exc)}: {mask_secrets(str(exc))}; what was written is "
                    "kept and the batches recorded: fix it, run the same command"
                )
                return EXIT_FAILED
            if left:
                _err(
                    f"{left} job(s) not answered yet (not submitted, or in cancelled "
                    "batches): run the same command again"
                )
            return EXIT_OK if failed + left + summary.failed_before == 0 else EXIT_FAILED
        failed = run(_run(args, client, resume, summary.todo, summary.done_before))
    if summary.failed_before:
        _err(
            f"{summary.failed_before} job(s) failed in an earlier run and were not re-run: "
            "add --retry-failed to run them again"
        )
    return EXIT_OK if failed + summary.failed_before == 0 else EXIT_FAILED


async def _run(
    args: argparse.Namespace, client: ChatClient, resume: Resume, todo: int, skipped: int
) -> int:
    jobs = read_jobs(
        args.input, done=resume.done, default_model=args.model, response_model=args.schema
    )
    progress = ProgressDisplay(todo, skipped=skipped)
    board_served = run_board(args.dashboard, todo, str(args.input))
    async with board_served as board:
        return await _run_with(args, client, jobs, todo, resume, progress, board)


async def _run_with(
    args: argparse.Namespace,
    client: ChatClient,
    jobs: Any,
    todo: int,
    resume: Resume,
    progress: ProgressDisplay,
    board: Any,
) -> int:
    def on_event(event: Event) -> None:
        progress.handle(event)
        if board is not None:
            board.handle(event)

    stopped: Counter[str] = Counter()  # jobs stopped by the key or --max-cost, by error
    with ResultWriter(args.output, resume) as writer, progress:
        stream = generate_stream(
            jobs,
            client=client,
            concurrency=args.concurrency,
            retry=RetryPolicy(max_attempts=args.retries),
            on_event=on_event,
            max_cost=args.max_cost,
        )
        try:
            async with asyncio.timeout(args.deadline), contextlib.aclosing(stream) as results:
                async for result in results:
                    writer.write(result)
                    stopped.update(_stopped_by(result.error))
        except TimeoutError:
            left = todo - progress.tally.done
            _err(
                f"deadline of {args.deadline:g} s reached: {left} job(s) not run; "
                "run the same command again to resume"
            )
        except OutputWriteError as exc:
            raise UsageProblem(str(exc)) from None
        finally:
            await client.aclose()
            if client.rate_limit is not None:
                await client.rate_limit.aclose()
    progress.summary(str(args.output), cache=cache_summary(client))
    _explain(client, progress.tally.failed, stopped, args.max_cost)
    return progress.tally.failed + (todo - progress.tally.done)


def _batch_api_flags(args: argparse.Namespace) -> None:
    """Refuse the online-only flags with --batch-api rather than ignore them."""
    online_only = {
        "--max-cost": args.max_cost,
        "--deadline": args.deadline,
        "--dashboard": args.dashboard,
    }
    given = [flag for flag, value in online_only.items() if value is not None]
    if given:
        raise UsageProblem(
            f"{', '.join(given)} apply to online runs, not to --batch-api (a batch is "
            "priced and run by the provider as a whole): drop them or drop --batch-api"
        )


def _stopped_by(error: BaseException | None) -> list[str]:
    """What stopped a job that runs again by itself (the key, --max-cost, or its own
    price), as a name to count; [] for any other outcome."""
    if error is None or type(error).__name__ not in RERUN_ERRORS:
        return []
    if isinstance(error, InsufficientCreditsError) and error.scope == "request":
        return ["unaffordable"]
    return [type(error).__name__]


def _explain(
    client: ChatClient, failed: int, stopped: Counter[str], max_cost: float | None
) -> None:
    """After a run with failures, say what to run next: jobs stopped by the key or the
    spend limit run again by themselves; only other failures need --retry-failed."""
    if client.out_of_credits is not None:
        _err(
            "the key ran out of credits (HTTP 402): add credits, then run the same command "
            "again; the jobs it stopped run then (no --retry-failed needed)"
        )
    if client.key_refused is not None:
        _err(
            "the API key was refused (HTTP 401): check it (--base-url sends "
            "$ASYNCGEN_API_KEY, --provider its own variable); nothing more was sent, and "
            "the jobs it stopped run when the same command is run again (no --retry-failed "
            "needed)"
        )
    if stopped["BudgetExceededError"]:
        _err(
            f"{stopped['BudgetExceededError']} job(s) not sent: --max-cost {max_cost:g} was "
            "reached; run the same command again (with a higher --max-cost) to run them "
            "(no --retry-failed needed)"
        )
    if stopped["unaffordable"]:
        _err(
            f"{stopped['unaffordable']} job(s) cost more than the key can afford (HTTP 402 "
            "for the request): lower their max_tokens (params) or add credits; the same "
            "command runs them again"
        )
    others = failed - sum(stopped.values())
    if others > 0:
        _err(
            f"{others} job(s) failed: see error_type/error in the output; "
            "run again with --retry-failed to retry them"
        )

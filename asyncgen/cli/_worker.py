"""``asyncgen worker URL``: run a queue's jobs in this process until SIGTERM / SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import signal
import sys

from pydantic import ValidationError

from .._errors import PermanentError
from .._logging import configure_logging
from .._settings import Settings
from ..llm import ChatClient
from ..queue import JobQueue, Task, Worker, open_queue

__all__ = ["add_worker_parser"]


def add_worker_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Declare ``asyncgen worker``."""
    worker = commands.add_parser(
        "worker",
        help="run background jobs from a queue (SIGTERM/SIGINT drain)",
        description="Claim and run jobs from the queue at URL (sqlite:///jobs.db, "
        "redis://host:6379/0). On SIGTERM "
        "or SIGINT: take no new jobs, give running ones --grace seconds, release the rest.",
    )
    worker.add_argument(
        "url",
        nargs="?",
        help="queue URL, e.g. sqlite:///jobs.db or redis://host:6379/0 "
        "(default: ASYNCGEN_QUEUE_URL or queue_url in asyncgen.toml; prefer those for a URL "
        "with a password: command lines show in ps)",
    )
    worker.add_argument("--concurrency", type=int, default=None)
    worker.add_argument("--kinds", help="comma-separated task names to run (default: all)")
    worker.add_argument(
        "--tasks", action="append", default=[], help="module whose Tasks to register (repeatable)"
    )
    worker.add_argument("--lease", type=float, default=None, help="seconds per lease")
    worker.add_argument("--grace", type=float, default=None, help="drain grace in seconds")
    worker.add_argument("--settings", help="TOML settings file (default ./asyncgen.toml)")
    worker.add_argument(
        "--base-url",
        help="OpenAI-compatible root for generation jobs "
        "(key: $ASYNCGEN_API_KEY); default OpenRouter if its key is set",
    )
    worker.set_defaults(handler=worker_command)


def _register(queue: JobQueue, modules: list[str]) -> None:
    sys.path.insert(0, os.getcwd())
    for name in modules:
        module = importlib.import_module(name)
        for value in vars(module).values():
            if isinstance(value, Task):
                queue.register(value)


def _client(args: argparse.Namespace) -> ChatClient | None:
    if args.base_url:
        return ChatClient(args.base_url, os.environ.get("ASYNCGEN_API_KEY"))
    if os.environ.get("OPENROUTER_API_KEY"):
        return ChatClient.openrouter()
    return None


async def _serve(args: argparse.Namespace) -> int:
    settings = Settings.load(args.settings)
    args.url = args.url or settings.queue_url
    args.concurrency = args.concurrency or settings.worker_concurrency
    args.lease = args.lease or settings.worker_lease
    args.grace = settings.worker_grace if args.grace is None else args.grace
    configure_logging(json=settings.log_json, level=settings.log_level)
    queue = open_queue(args.url)
    _register(queue, args.tasks)
    kinds = [k for k in (args.kinds or "").split(",") if k] or None
    worker = Worker(queue, concurrency=args.concurrency, kinds=kinds, client=_client(args),
                    lease=args.lease, grace=args.grace)  # fmt: skip
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, worker.stop)
    sys.stdout.write(f"asyncgen worker {worker.name}: {len(queue.tasks)} task(s), "
                     f"concurrency {args.concurrency}\n")  # fmt: skip
    sys.stdout.flush()
    await worker.run()
    await queue.aclose()
    return 0


def worker_command(args: argparse.Namespace) -> int:
    """Run the worker; returns the exit code."""
    try:
        return asyncio.run(_serve(args))
    except (ValueError, ImportError, ValidationError, PermanentError) as exc:
        # PermanentError: the store refused us (a wrong password, a Redis too old);
        # its message says what to fix and never holds the password.
        sys.stderr.write(f"asyncgen worker: {exc}\n")
        return 2

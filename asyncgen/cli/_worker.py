"""``asyncgen worker URL``: run a queue's jobs in this process until SIGTERM / SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import signal
import sys
import tempfile
from typing import Any

import structlog

from ..chat._conversation import ConversationLog
from ..core._errors import AsyncGenError, TransientError, WorkerCrashedError
from ..core._logging import configure_logging
from ..core._redis import SCHEMES as REDIS_SCHEMES
from ..core._settings import Settings
from ..llm import ChatClient
from ..llm.client._client import DEFAULT_MAX_CONNECTIONS
from ..queue import JobQueue, Task, Worker, open_queue
from ..queue._credits import DEFAULT_CREDIT_PROBE
from ..queue._exporter import MULTIPROCESS_VARIABLE, require_prometheus, serve_metrics
from ..queue._outcomes import STORE_RETRY
from ..queue._redis_url import server_url
from ..queue._tasks import GENERATE_KIND
from ._args import (
    PROVIDERS,
    add_limit_flags,
    add_settings_flag,
    concurrency_flag,
    limiter_from,
    load_settings,
    number,
    provider_client,
    whole,
)
from ._files import UsageProblem
from ._interrupts import run, start_work
from ._supervisor import CHILD_VARIABLE, supervise

__all__ = ["add_worker_parser", "max_processes"]

_log = structlog.get_logger("asyncgen.worker")

PROCESSES_PER_CPU = 8  # --processes above this many per CPU needs --force-processes
AUTO_WORKER_JOBS = 64  # jobs at once with --concurrency auto (the client's pace rules)


def max_processes() -> int:
    """The most --processes allowed without --force-processes on this machine."""
    return max(16, PROCESSES_PER_CPU * (os.cpu_count() or 1))


def add_worker_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Declare ``asyncgen worker``."""
    worker = commands.add_parser(
        "worker",
        help="run background jobs from a queue (SIGTERM/SIGINT drain)",
        description="Claim and run jobs from the queue at URL (sqlite:///jobs.db, "
        "redis://host:6379/0). A worker claims only what it can run: the tasks of its --tasks "
        "modules and, with --base-url or --provider (or OPENROUTER_API_KEY set), generation "
        "jobs. On SIGTERM or SIGINT: take no new jobs, give running ones --grace seconds, "
        "then give the rest back to the queue (their attempt counts).",
    )
    worker.add_argument(
        "url",
        nargs="?",
        help="queue URL, e.g. sqlite:///jobs.db or redis://host:6379/0 "
        "(default: ASYNCGEN_QUEUE_URL or queue_url in asyncgen.toml, else "
        "sqlite:///asyncgen-jobs.db in this folder; prefer the variable for a URL with a "
        "password: command lines show in ps)",
    )
    worker.add_argument(
        "--concurrency",
        type=concurrency_flag("jobs at once"),
        default=None,
        help="N jobs at once, or auto: up to "
        f"{AUTO_WORKER_JOBS} at once, generation paced by what the provider admits "
        "(with no --rpm/--tpm on a Redis queue, the pace learned is shared by every worker "
        "on the key)",
    )
    worker.add_argument(
        "--kinds",
        help="comma-separated job kinds to run: task names, and "
        "'generate' for generation jobs (default: every task, and generation "
        "jobs when a client is configured)",
    )
    worker.add_argument(
        "--tasks", action="append", default=[], help="module whose Tasks to register (repeatable)"
    )
    worker.add_argument(
        "--django",
        metavar="SETTINGS",
        help="run Django's tasks (django.tasks, or django-tasks) of a QueueBackend: set "
        "DJANGO_SETTINGS_MODULE to SETTINGS, django.setup(), serve each of the backend's "
        "queues (kind django:NAME); the queue URL defaults to the backend's",
    )
    worker.add_argument(
        "--django-backend",
        metavar="ALIAS",
        default="default",
        help="which of TASKS to serve with --django (default: default)",
    )
    worker.add_argument("--lease", type=number("seconds"), default=None, help="seconds per lease")
    worker.add_argument(
        "--grace", type=number("seconds", zero=True), default=None, help="drain grace in seconds"
    )
    add_settings_flag(worker)
    worker.add_argument(
        "--metrics-port",
        type=whole("port", minimum=1, maximum=65535),
        help="serve Prometheus metrics on this port at /metrics (needs "
        "asyncgen[metrics]; under --processes the supervisor serves "
        "all)",
    )
    worker.add_argument(
        "--metrics-host",
        default="127.0.0.1",
        help="address for --metrics-port (default 127.0.0.1; 0.0.0.0 for a "
        "scraper on another host)",
    )
    worker.add_argument(
        "--processes",
        type=whole("processes", minimum=1),
        default=1,
        help="run this many worker processes under a supervisor that "
        "restarts one that dies and drains them all on SIGTERM/SIGINT",
    )
    worker.add_argument(
        "--force-processes",
        action="store_true",
        help=f"allow --processes above {PROCESSES_PER_CPU} per CPU",
    )
    worker.add_argument(
        "--timeout",
        type=number("seconds"),
        default=None,
        help="seconds a job may run when neither its submit nor its task "
        "sets a timeout (default: no limit)",
    )
    worker.add_argument(
        "--credit-probe",
        type=number("seconds"),
        default=DEFAULT_CREDIT_PROBE,
        help="while the key is out of credits (HTTP 402), generation jobs wait "
        "and one is tried every this many seconds (default "
        f"{DEFAULT_CREDIT_PROBE:g})",
    )
    worker.add_argument(
        "--conversation-log",
        metavar="DIR",
        default=None,
        help="also write each conversation's lines (asyncgen.conversation, "
        "carried by its jobs) to DIR/<user>/<YYYY.MM.DD>/<HH-MM-SS>.log: "
        "the app's own files, when it uses the same DIR",
    )
    worker.add_argument(
        "--base-url",
        help="OpenAI-compatible root for generation jobs (key: $ASYNCGEN_API_KEY)",
    )
    worker.add_argument(
        "--provider",
        choices=sorted(PROVIDERS),
        help="API preset for generation jobs; its key comes from the environment "
        "(default: openrouter when OPENROUTER_API_KEY is set, else no generation jobs); "
        "with --base-url, the provider behind that gateway (its prices)",
    )
    add_limit_flags(worker, shared_default="default: the queue's Redis, when it is on Redis")
    worker.set_defaults(handler=worker_command)


def _django(args: argparse.Namespace) -> str:
    """Set Django up from ``--django SETTINGS``; the URL of the backend to serve."""
    sys.path.insert(0, os.getcwd())
    os.environ["DJANGO_SETTINGS_MODULE"] = args.django
    try:
        import django

        django.setup()
        from ..integrations.django import QueueBackend, backend_named
    except ImportError as exc:
        raise UsageProblem(f"--django {args.django}: {exc}") from None
    try:
        backend = backend_named(args.django_backend)
    except Exception as exc:  # Django's own: an unknown alias, a bad setting
        raise UsageProblem(f"--django {args.django}: {exc}") from None
    if not isinstance(backend, QueueBackend):
        raise UsageProblem(
            f"--django {args.django}: TASKS[{args.django_backend!r}] is "
            f"{type(backend).__name__}, not asyncgen.integrations.django.QueueBackend"
        )
    return backend.url


def _register(queue: JobQueue, modules: list[str]) -> None:
    sys.path.insert(0, os.getcwd())
    for name in modules:
        try:
            module = importlib.import_module(name)
        except ImportError as exc:
            raise UsageProblem(f"--tasks {name}: cannot import it ({exc})") from None
        found = [value for value in vars(module).values() if isinstance(value, Task)]
        if not found:
            raise UsageProblem(f"--tasks {name}: the module defines no task (@task)")
        for value in found:
            queue.register(value)


def _client(args: argparse.Namespace, queue_url: str, settings: Settings) -> ChatClient | None:
    asked = args.base_url or args.provider or settings.base_url
    if not (asked or os.environ.get("OPENROUTER_API_KEY", "").strip()):
        if args.rpm or args.tpm:
            raise UsageProblem("--rpm/--tpm limit generation jobs: give --base-url or --provider")
        return None
    on_redis = queue_url.partition("://")[0] in REDIS_SCHEMES
    budget = args.base_url or args.provider or settings.base_url or "openrouter"
    auto = args.concurrency == "auto"
    shared_default = server_url(queue_url) if on_redis else None
    limiter = limiter_from(args, base_url=budget, shared_default=shared_default, learns=auto)
    # A connection for every job the worker may run at once: with the client's default
    # pool (10) a worker of 24 jobs sent 10 requests at a time and queued the rest.
    jobs = _jobs_at_once(args.concurrency, settings)
    client = provider_client(
        args.provider,
        args.base_url,
        settings=settings,
        rate_limit=limiter,
        max_connections=max(DEFAULT_MAX_CONNECTIONS, jobs),
    )
    if auto:
        client.adaptive_concurrency(AUTO_WORKER_JOBS)
    return client


def _jobs_at_once(flag: int | str | None, settings: Settings) -> int:
    if flag == "auto":
        return AUTO_WORKER_JOBS
    return flag if isinstance(flag, int) else settings.worker_concurrency


def _worker(args: argparse.Namespace, settings: Settings) -> Worker:
    django_url = _django(args) if args.django else None
    url = args.url or django_url or settings.queue_url
    if url == "memory://":
        raise UsageProblem(
            "memory:// lives inside one process, so no one could submit to this worker: "
            "use sqlite:///path/jobs.db (one machine) or redis://host:6379/0"
        )
    queue = open_queue(url)
    _register(queue, args.tasks)
    if args.django:
        from ..integrations.django import serve

        serve(queue, args.django_backend)
    kinds = [k for k in (args.kinds or "").split(",") if k] or None
    unknown = sorted(set(kinds or ()) - set(queue.tasks) - {GENERATE_KIND})
    if unknown:
        raise UsageProblem(f"--kinds names {', '.join(unknown)}, which no --tasks module defines")
    client = _client(args, url, settings)
    if kinds is not None and GENERATE_KIND in kinds and client is None:
        raise UsageProblem("--kinds generate runs generation jobs: give --base-url or --provider")
    worker = Worker(
        queue,
        kinds=kinds,
        client=client,
        concurrency=_jobs_at_once(args.concurrency, settings),
        lease=args.lease if args.lease is not None else settings.worker_lease,
        grace=args.grace if args.grace is not None else settings.worker_grace,
        credit_probe=args.credit_probe,
        timeout=args.timeout if args.timeout is not None else settings.worker_timeout,
    )
    if not worker.serves():
        raise UsageProblem(
            "this worker could run nothing: give --tasks MODULE for task jobs, and --base-url "
            "or --provider for generation jobs"
        )
    return worker


async def _serve(worker: Worker, *, default_url: bool) -> int:
    queue = worker.queue
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, worker.stop)
    if not await _reach(worker):
        await queue.aclose()
        return 0
    where = f"{queue.url} (the default: no URL was given)" if default_url else queue.url
    sys.stdout.write(
        f"asyncgen worker {worker.name}: queue {where}; serves {', '.join(worker.serves())}; "
        f"concurrency {worker.concurrency}\n"
    )
    sys.stdout.flush()
    try:
        await worker.run()
    except WorkerCrashedError as exc:  # logged with its traceback as worker_crashed
        sys.stderr.write(
            f"asyncgen worker: {exc}; exiting 1 (under --processes the supervisor restarts "
            "it; otherwise restart it yourself, e.g. with systemd's Restart=on-failure)\n"
        )
        return 1
    finally:
        await queue.aclose()
        if worker.client is not None:
            await worker.client.aclose()
            if worker.client.rate_limit is not None:
                await worker.client.rate_limit.aclose()
    return 0


async def _reach(worker: Worker) -> bool:
    """Reach the store before working. A refused password, a server too old or a damaged
    store is said at once (raised: exit 2); one that cannot be reached yet (Redis starting,
    or failing over) is waited for, with backoff, until it answers (True) or the worker
    is stopped (False)."""
    failures = 0
    while True:
        try:
            await worker.queue.statistics()
            return True
        except TransientError as exc:
            failures += 1
            if failures == 1:
                sys.stderr.write(f"asyncgen worker: {exc}; waiting for it\n")
                sys.stderr.flush()
            _log.warning("store_unavailable", error=str(exc), failures=failures)
            if await worker.wait_stopped(STORE_RETRY.backoff(min(failures, 10))):
                return False


def _supervise(args: argparse.Namespace, queue: JobQueue) -> int:
    """Run ``--processes`` copies of this command; serve their summed metrics."""
    command = [sys.executable, "-m", "asyncgen", *args.argv]
    if args.metrics_port is None:
        return supervise(command, args.processes)
    with tempfile.TemporaryDirectory(prefix="asyncgen-metrics-") as folder:
        os.environ[MULTIPROCESS_VARIABLE] = folder  # the children inherit it
        _metrics(args, queue=queue)
        return supervise(command, args.processes, on_exit=_mark_dead)


def _metrics(args: argparse.Namespace, **options: Any) -> None:
    """Serve /metrics for --metrics-port, or say in one line why it cannot be."""
    port, host = args.metrics_port, args.metrics_host
    try:
        serve_metrics(port, host=host, **options)
    except OSError as exc:
        raise UsageProblem(
            f"--metrics-port {port}: cannot serve on {host}:{port} ({exc.strerror or exc}): "
            "another program may be using it; give another --metrics-port"
        ) from None


def _mark_dead(pid: int) -> None:
    """Drop a finished worker process's live gauges from the summed metrics."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


def worker_command(args: argparse.Namespace) -> int:
    """Run the worker; returns the exit code."""
    try:
        settings = load_settings(args.settings)
        conversations = ConversationLog(args.conversation_log) if args.conversation_log else None
        configure_logging(
            json=settings.log_json, level=settings.log_level or "INFO", conversations=conversations
        )
        if args.processes > max_processes() and not args.force_processes:
            raise UsageProblem(
                f"--processes {args.processes} is more than {max_processes()} "
                f"({PROCESSES_PER_CPU} per CPU, {os.cpu_count()} CPUs here): each is a whole "
                "worker with its own connections; raise --concurrency instead, or add "
                "--force-processes"
            )
        worker = _worker(args, settings)  # every flag checked before any process starts
        if args.metrics_port is not None:
            require_prometheus()
        supervised = bool(os.environ.get(CHILD_VARIABLE))
        if args.processes > 1 and not supervised:
            start_work()
            return _supervise(args, worker.queue)
        if args.metrics_port is not None and not supervised:
            from prometheus_client import CollectorRegistry

            endpoint = CollectorRegistry()
            endpoint.register(worker.metrics.registry)
            _metrics(args, registry=endpoint, queue=worker.queue)
        default_url = not args.url and "queue_url" not in settings.model_fields_set
        return run(_serve(worker, default_url=default_url))
    except (UsageProblem, ValueError, AsyncGenError) as exc:
        # AsyncGenError: the store refused us (a wrong password, a Redis too old) or
        # cannot be reached; its message says what to fix and never holds the password.
        sys.stderr.write(f"asyncgen worker: {exc}\n")
        return 2

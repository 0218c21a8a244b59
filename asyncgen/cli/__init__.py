"""The ``asyncgen`` command: run job files, try the demo, serve the simulator.

This module imports little: the commands (and the libraries they need) are imported
inside :func:`main`, which holds Ctrl-C out of those imports (see ``_interrupts``), so a
Ctrl-C while they load is one line, not a traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ._interrupts import held_interrupts

if TYPE_CHECKING:
    import argparse

__all__ = ["main"]

EXIT_USAGE, EXIT_INTERRUPTED, EXIT_TERMINATED = 2, 130, 143
RESUMABLE = frozenset({"run"})  # commands whose interruption leaves results to resume


def _parser() -> argparse.ArgumentParser:
    import argparse

    from .. import __version__
    from ._dashboard import add_dashboard_parser
    from ._demo import add_demo_parser
    from ._jobs import add_jobs_parser
    from ._run import add_run_parser
    from ._sim import add_sim_parser
    from ._worker import add_worker_parser

    parser = argparse.ArgumentParser(
        prog="asyncgen", description="Run many LLM requests at once, safely."
    )
    parser.add_argument("--version", action="version", version=f"asyncgen {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    add_run_parser(commands)
    add_demo_parser(commands)
    add_worker_parser(commands)
    add_jobs_parser(commands)
    add_sim_parser(commands)
    add_dashboard_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``asyncgen`` command; returns the exit code.

    Exit codes: 0 all OK, 1 some jobs failed, 2 usage or input error, 130 interrupted
    (Ctrl-C), 143 terminated (SIGTERM).
    """
    command: list[str] = []  # the command's name, once known
    try:
        with held_interrupts():
            return _main(argv, command)
    except KeyboardInterrupt as exc:
        from ._run import Terminated

        terminated = isinstance(exc, Terminated)
        how = "terminated (SIGTERM)" if terminated else "interrupted"
        if command and command[0] in RESUMABLE:
            how += "; finished results are written: run the same command again to resume"
        sys.stderr.write(f"asyncgen: {how}\n")
        return EXIT_TERMINATED if terminated else EXIT_INTERRUPTED


def _main(argv: Sequence[str] | None, command: list[str]) -> int:
    import argparse

    from ._files import UsageProblem

    try:
        # The raw arguments ride along for a command that starts copies of itself
        # (asyncgen worker --processes N).
        given = list(sys.argv[1:] if argv is None else argv)
        args = _parser().parse_args(given, namespace=argparse.Namespace(argv=given))
    except SystemExit as exc:  # argparse exits 2 on usage errors, 0 on --help
        return int(exc.code or 0)
    command.append(args.command)
    try:
        return int(args.handler(args))
    except UsageProblem as exc:
        sys.stderr.write(f"asyncgen: {exc}\n")
        return EXIT_USAGE
    except BrokenPipeError:  # `asyncgen jobs list | head`: the reader has gone
        _quiet_stdout()
        return 0
    except OSError as exc:
        sys.stderr.write(f"asyncgen: {exc}\n")
        return EXIT_USAGE


def _quiet_stdout() -> None:
    """After a broken pipe: point stdout at /dev/null so the exit flush says nothing."""
    import os

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


if __name__ == "__main__":
    raise SystemExit(main())

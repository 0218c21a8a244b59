"""The ``asyncgen`` command: run job files, try the demo, serve the simulator."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ._dashboard import add_dashboard_parser
from ._demo import add_demo_parser
from ._files import UsageProblem
from ._jobs import add_jobs_parser
from ._run import EXIT_USAGE, Terminated, add_run_parser
from ._sim import add_sim_parser
from ._worker import add_worker_parser

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="asyncgen", description="Run many LLM requests at once, safely."
    )
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
    try:
        # The raw arguments ride along for a command that starts copies of itself
        # (asyncgen worker --processes N).
        given = list(sys.argv[1:] if argv is None else argv)
        args = _parser().parse_args(given, namespace=argparse.Namespace(argv=given))
    except SystemExit as exc:  # argparse exits 2 on usage errors, 0 on --help
        return int(exc.code or 0)
    try:
        return int(args.handler(args))
    except KeyboardInterrupt as exc:
        how = "terminated (SIGTERM)" if isinstance(exc, Terminated) else "interrupted"
        sys.stderr.write(
            f"asyncgen: {how}; finished results are written: run the same command again to resume\n"
        )
        return 143 if isinstance(exc, Terminated) else 130
    except UsageProblem as exc:
        sys.stderr.write(f"asyncgen: {exc}\n")
        return EXIT_USAGE
    except OSError as exc:
        sys.stderr.write(f"asyncgen: {exc}\n")
        return EXIT_USAGE


if __name__ == "__main__":
    raise SystemExit(main())

"""The ``asyncgen`` command: run job files, try the demo, serve the simulator."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ._demo import add_demo_parser
from ._run import EXIT_USAGE, add_run_parser
from ._worker import add_worker_parser

__all__ = ["main"]


def _sim_command(args: argparse.Namespace) -> int:
    from ..sim.__main__ import main as sim_main

    forwarded = ["--port", str(args.port), "--host", args.host]
    if args.config:
        forwarded += ["--config", args.config]
    if args.latency is not None:
        forwarded += ["--latency", str(args.latency)]
    return sim_main(forwarded)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="asyncgen", description="Run many LLM requests at once, safely."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    add_run_parser(commands)
    add_demo_parser(commands)
    add_worker_parser(commands)
    sim = commands.add_parser("sim", help="serve the OpenAI-compatible simulator")
    sim.add_argument("--host", default="127.0.0.1")
    sim.add_argument("--port", type=int, default=8000)
    sim.add_argument("--config", help="a SimConfig JSON file")
    sim.add_argument("--latency", type=float, default=None, help="default latency (s)")
    sim.set_defaults(handler=_sim_command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``asyncgen`` command; returns the exit code.

    Exit codes: 0 all OK, 1 some jobs failed, 2 usage or input error.
    """
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on usage errors, 0 on --help
        return int(exc.code or 0)
    try:
        return int(args.handler(args))
    except KeyboardInterrupt:
        sys.stderr.write("asyncgen: interrupted; run the same command again to resume\n")
        return 130
    except OSError as exc:
        sys.stderr.write(f"asyncgen: {exc}\n")
        return EXIT_USAGE


if __name__ == "__main__":
    raise SystemExit(main())

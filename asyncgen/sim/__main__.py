"""python -m asyncgen.sim: serve the simulator on 127.0.0.1."""

from __future__ import annotations

import argparse
import socket
import sys
from pathlib import Path

from ._config import SimConfig
from ._server import listen, serve_socket


def main(argv: list[str] | None = None) -> int:
    """Parse arguments and serve until interrupted."""
    parser = argparse.ArgumentParser(
        prog="python -m asyncgen.sim", description="Serve asyncgen's OpenAI-compatible simulator."
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000; 0: any)")
    parser.add_argument("--config", help="a SimConfig JSON file, or - for standard input")
    parser.add_argument("--latency", type=float, default=None, help="default latency in seconds")
    parser.add_argument("--log-level", default="warning", help="uvicorn log level")
    parser.add_argument("--fd", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    config = SimConfig()
    if args.config:
        text = sys.stdin.read() if args.config == "-" else Path(args.config).read_text()
        config = SimConfig.model_validate_json(text)
    if args.latency is not None:
        default = config.default.model_copy(update={"latency": args.latency})
        config = config.model_copy(update={"default": default})
    sock = socket.socket(fileno=args.fd) if args.fd is not None else listen(args.host, args.port)
    if args.fd is None:
        port = sock.getsockname()[1]
        sys.stdout.write(f"asyncgen simulator on http://{args.host}:{port}/v1 (Ctrl-C to stop)\n")
        sys.stdout.flush()
    serve_socket(sock, config, log_level=args.log_level)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""python -m asyncgen.sim (and ``asyncgen sim``): serve the simulator on 127.0.0.1."""

from __future__ import annotations

import argparse
import contextlib
import socket
import sys
from pathlib import Path

from pydantic import ValidationError

from .._validation import describe_invalid
from ._config import SimConfig
from ._http2 import make_tls_files, serve_http2
from ._server import listen, serve_socket

__all__ = ["add_arguments", "main", "serve"]

EXIT_USAGE = 2


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 0 to 65535 (0: any free port), got {value}")
    return value


def _latency(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"latency must be 0 or more seconds, got {text}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the simulator's flags on ``parser``."""
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=_port, default=8000, help="port (default 8000; 0: any)")
    parser.add_argument("--config", help="a SimConfig JSON file, or - for standard input")
    parser.add_argument("--latency", type=_latency, default=None, help="default latency (s)")
    parser.add_argument("--log-level", default="warning", help="uvicorn log level")
    parser.add_argument("--http2", action="store_true", help="TLS + HTTP/2 (hypercorn)")
    parser.add_argument("--certfile", help="server certificate (with --http2; default: made)")
    parser.add_argument("--keyfile", help="server key (with --http2)")
    parser.add_argument("--fd", type=int, default=None, help=argparse.SUPPRESS)


def _config(args: argparse.Namespace) -> SimConfig:
    """The SimConfig the flags ask for.

    Raises:
        ValueError: An unreadable or invalid --config file, said in one line per field.
    """
    config = SimConfig()
    if args.config:
        try:
            text = sys.stdin.read() if args.config == "-" else Path(args.config).read_text()
            config = SimConfig.model_validate_json(text)
        except OSError as exc:
            raise ValueError(f"--config {args.config}: {exc.strerror or exc}") from None
        except ValidationError as exc:
            reasons = describe_invalid(exc, whole="file")
            raise ValueError(f"--config {args.config} is not a SimConfig: {reasons}") from None
    if args.latency is not None:
        default = config.default.model_copy(update={"latency": args.latency})
        config = config.model_copy(update={"default": default})
    return config


def serve(args: argparse.Namespace) -> int:
    """Serve until interrupted; returns the exit code (2 for a bad config or port)."""
    try:
        config = _config(args)
        fd = args.fd
        sock = socket.socket(fileno=fd) if fd is not None else listen(args.host, args.port)
    except (ValueError, OSError) as exc:
        sys.stderr.write(f"asyncgen sim: {exc}\n")
        return EXIT_USAGE
    if not args.http2:
        _announce(args.fd, f"http://{args.host}:{sock.getsockname()[1]}/v1")
        serve_socket(sock, config, log_level=args.log_level)
        return 0
    certfile, keyfile = args.certfile, args.keyfile
    if not (certfile and keyfile):
        files, _folder = make_tls_files()
        certfile, keyfile = str(files.certfile), str(files.keyfile)
        _announce(args.fd, f"CA certificate for clients: {files.ca}")
    _announce(args.fd, f"https://{args.host}:{sock.getsockname()[1]}/v1 (HTTP/2)")
    with contextlib.suppress(KeyboardInterrupt):
        serve_http2(sock, config, certfile=certfile, keyfile=keyfile)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parse arguments and serve until interrupted."""
    parser = argparse.ArgumentParser(
        prog="python -m asyncgen.sim", description="Serve asyncgen's OpenAI-compatible simulator."
    )
    add_arguments(parser)
    return serve(parser.parse_args(argv))


def _announce(fd: int | None, text: str) -> None:
    if fd is None:  # started by a person, not by SimServer
        sys.stdout.write(f"asyncgen simulator: {text}\n")
        sys.stdout.flush()


if __name__ == "__main__":
    raise SystemExit(main())

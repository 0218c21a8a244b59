"""python -m asyncgen.sim: serve the simulator on 127.0.0.1."""

from __future__ import annotations

import argparse
import contextlib
import socket
import sys
from pathlib import Path

from ._config import SimConfig
from ._http2 import make_tls_files, serve_http2
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
    parser.add_argument("--http2", action="store_true", help="TLS + HTTP/2 (hypercorn)")
    parser.add_argument("--certfile", help="server certificate (with --http2; default: made)")
    parser.add_argument("--keyfile", help="server key (with --http2)")
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


def _announce(fd: int | None, text: str) -> None:
    if fd is None:  # started by a person, not by SimServer
        sys.stdout.write(f"asyncgen simulator: {text}\n")
        sys.stdout.flush()


if __name__ == "__main__":
    raise SystemExit(main())

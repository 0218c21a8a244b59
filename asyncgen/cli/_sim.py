"""``asyncgen sim``: serve the OpenAI-compatible simulator on 127.0.0.1."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..core._validation import describe_invalid
from ..sim import SimConfig, serve
from ._args import number, whole
from ._interrupts import start_work

__all__ = ["add_sim_parser"]

EXIT_USAGE = 2
# Flags that set a field of the default model profile (models a --config does not list).
PROFILE_FLAGS = (
    "latency",
    "latency_spread",
    "rpm",
    "tpm",
    "burst",
    "limiter",
    "fixed_window",
    "retry_header",
    "max_concurrency",
    "price_per_token",
)


def add_sim_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Declare ``asyncgen sim``."""
    sim = commands.add_parser(
        "sim",
        help="serve the OpenAI-compatible simulator",
        description="Serve asyncgen's OpenAI-compatible simulator (chat completions, "
        "/key, /models) with the latency, rate limits and faults asked for. The flags set "
        "the default model profile; --config gives per-model profiles and faults.",
    )
    sim.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    sim.add_argument("--port", type=_port, default=8000, help="port (default 8000; 0: any)")
    sim.add_argument("--config", help="a SimConfig JSON file, or - for standard input")
    sim.add_argument("--latency", type=_latency, default=None, help="seconds before answering")
    sim.add_argument(
        "--latency-spread",
        type=number("seconds", zero=True),
        default=None,
        help="answers take latency +/- this, uniformly",
    )
    sim.add_argument(
        "--rpm",
        type=whole("requests per minute", minimum=1),
        default=None,
        help="requests per minute admitted; beyond it, 429",
    )
    sim.add_argument(
        "--tpm",
        type=whole("tokens per minute", minimum=1),
        default=None,
        help="tokens per minute admitted; beyond it, 429",
    )
    sim.add_argument(
        "--limiter",
        choices=["bucket", "sliding", "fixed"],
        default=None,
        help="how --rpm/--tpm are enforced (default bucket)",
    )
    sim.add_argument(
        "--burst",
        type=number("seconds", zero=True),
        default=None,
        help="seconds of traffic the bucket admits at once (default 1)",
    )
    sim.add_argument(
        "--fixed-window",
        type=number("seconds"),
        default=None,
        help="window of the fixed limiter (default 60)",
    )
    sim.add_argument(
        "--retry-header",
        default=None,
        choices=["both", "retry-after", "retry-after-ms", "none"],
        help="what a rate-limit 429 carries (default both)",
    )
    sim.add_argument(
        "--max-concurrency",
        type=whole("requests", minimum=1),
        default=None,
        help="requests in flight per model; beyond it, 429",
    )
    sim.add_argument(
        "--price-per-token",
        type=number("dollars", zero=True),
        default=None,
        help="reported as usage.cost",
    )
    sim.add_argument(
        "--api-key", default=None, help="require this bearer token (else 401); never printed"
    )
    sim.add_argument(
        "--credits",
        type=number("dollars", zero=True),
        default=None,
        help="the account's credit limit, for /key",
    )
    sim.add_argument("--seed", type=int, default=None, help="seed for latency and fault draws")
    sim.add_argument("--log-level", default="warning", help="uvicorn log level")
    sim.add_argument("--http2", action="store_true", help="TLS + HTTP/2 (hypercorn)")
    sim.add_argument("--certfile", help="server certificate (with --http2; default: made)")
    sim.add_argument("--keyfile", help="server key (with --http2)")
    sim.set_defaults(handler=sim_command)


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


def sim_config(args: argparse.Namespace) -> SimConfig:
    """The SimConfig the flags ask for: --config, then the flags over its default profile.

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
    profile = {name: getattr(args, name) for name in PROFILE_FLAGS}
    profile = {name: value for name, value in profile.items() if value is not None}
    account: dict[str, Any] = {
        name: getattr(args, name)
        for name in ("api_key", "credits", "seed")
        if getattr(args, name) is not None
    }
    try:
        merged = config.model_dump()
        merged["default"] |= profile
        return SimConfig.model_validate(merged | account)
    except ValidationError as exc:
        raise ValueError(f"the simulator flags: {describe_invalid(exc, whole='flags')}") from None


def sim_command(args: argparse.Namespace) -> int:
    """Serve until interrupted; 2 for a bad config or an address that cannot be bound."""
    try:
        config = sim_config(args)
        start_work()
        serve(
            config,
            host=args.host,
            port=args.port,
            http2=args.http2,
            certfile=args.certfile,
            keyfile=args.keyfile,
            log_level=args.log_level,
            announce=_announce,
        )
    except (ValueError, OSError) as exc:
        sys.stderr.write(f"asyncgen sim: {exc}\n")
        return EXIT_USAGE
    except ImportError as exc:
        sys.stderr.write(f"asyncgen sim: {exc}\n")
        return EXIT_USAGE
    return 0


def _announce(text: str) -> None:
    sys.stdout.write(f"asyncgen simulator: {text}\n")
    sys.stdout.flush()

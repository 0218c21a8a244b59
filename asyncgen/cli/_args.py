"""What the commands share: checked argument types, and the client the flags ask for."""

from __future__ import annotations

import argparse
import importlib
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ValidationError

from ..core._redis import SCHEMES as REDIS_SCHEMES
from ..core._redis import parse_redis_url
from ..core._settings import DEFAULT_SETTINGS_FILE, Settings, find_settings_file
from ..core._validation import describe_invalid
from ..limits._ratelimit import RateLimiter
from ..limits._shared_limit import SharedRateLimiter
from ..llm import ChatClient
from ._files import UsageProblem

__all__ = [
    "KEY_VARIABLES",
    "PROVIDERS",
    "add_limit_flags",
    "add_settings_flag",
    "cache_url_type",
    "concurrency_flag",
    "limiter_from",
    "load_settings",
    "number",
    "provider_client",
    "schema_type",
    "whole",
]

PROVIDERS: dict[str, Callable[..., ChatClient]] = {
    "openrouter": ChatClient.openrouter,
    "openai": ChatClient.openai,
    "deepseek": ChatClient.deepseek,
}
KEY_VARIABLES = {
    "openrouter": "OPENROUTER_API_KEY",
    "openai": "OPENAI_API_KEY",
    "deepseek": "DEEPSEEK_API_KEY",
}


def number(what: str, *, zero: bool = False, hint: str = "") -> Callable[[str], float]:
    """An argparse type: a finite number > 0 (>= 0 with ``zero``), or a usage error.

    Args:
        what: The unit, for the message ("seconds").
        zero: Accept 0.
        hint: Appended to the message for a value out of range.
    """

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number of {what}, got {text!r}") from None
        if not math.isfinite(value) or value < 0 or (value == 0 and not zero):
            bound = ">= 0" if zero else "> 0"
            raise argparse.ArgumentTypeError(f"must be a number of {what} {bound}{hint}")
        return value

    return parse


def whole(what: str, *, minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    """An argparse type: a whole number in ``minimum..maximum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number of {what}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum} {what}")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f"must be at most {maximum} {what}")
        return value

    return parse


def add_limit_flags(parser: argparse.ArgumentParser, *, shared_default: str) -> None:
    """Declare --rpm, --tpm and the shared limiter's --rate-limit-url / --rate-limit-name."""
    no_limit = " (leave the flag out for no limit)"
    parser.add_argument(
        "--rpm", type=number("requests per minute", hint=no_limit), help="requests per minute limit"
    )
    parser.add_argument(
        "--tpm", type=number("tokens per minute", hint=no_limit), help="tokens per minute limit"
    )
    parser.add_argument(
        "--rate-limit-url",
        help="redis:// URL where --rpm/--tpm (or, with --concurrency auto and neither, the "
        "key's learned pace) are shared with every other process using the same "
        f"--rate-limit-name ({shared_default})",
    )
    parser.add_argument(
        "--rate-limit-name",
        help="the shared budget's name, one per API key (default: the API's base URL)",
    )


def limiter_from(
    args: argparse.Namespace,
    *,
    base_url: str,
    shared_default: str | None = None,
    learns: bool = False,
) -> RateLimiter | None:
    """The RateLimiter the flags ask for: local, shared through Redis, or none.

    Args:
        args: The parsed --rpm, --tpm, --rate-limit-url and --rate-limit-name.
        base_url: The API's root: the shared budget's default name.
        shared_default: Where to share when --rate-limit-url is not given (a worker's
            Redis queue), or None for a local limiter.
        learns: ``--concurrency auto``: with no --rpm/--tpm, a shared limiter carries the
            key's pace that auto learns, so every process sharing it learns it once.

    Raises:
        UsageProblem: A shared URL without --rpm, --tpm or --concurrency auto, or one that
            is not redis://.
    """
    url = args.rate_limit_url or shared_default
    if not (args.rpm or args.tpm):
        if args.rate_limit_url and not learns:
            raise UsageProblem(
                "--rate-limit-url shares --rpm/--tpm, or with --concurrency auto the pace "
                "it learns: give one of them too"
            )
        if not (learns and url):
            return None
    if not url:
        return RateLimiter(args.rpm, args.tpm)
    if url.partition("://")[0] not in REDIS_SCHEMES:
        raise UsageProblem(
            "--rate-limit-url must be redis://, rediss://, redis+sentinel:// or "
            f"redis+cluster://, "
            f"not {url.split(':')[0]}://"
        )
    try:
        parse_redis_url(url)
    except ValueError as exc:  # the URL's own mistakes, said without its password
        raise UsageProblem(f"--rate-limit-url: {exc}") from None
    name = args.rate_limit_name or base_url
    return SharedRateLimiter(
        url, name=name, requests_per_minute=args.rpm, tokens_per_minute=args.tpm
    )


def concurrency_flag(
    what: str, *, maximum: int | None = None
) -> Callable[[str], int | Literal["auto"]]:
    """A parser for ``--concurrency``: a whole number of ``what`` at once, or ``auto``."""
    count = whole(what, minimum=1, maximum=maximum)

    def parse(text: str) -> int | Literal["auto"]:
        if text == "auto":
            return "auto"
        if not text.strip().lstrip("+-").isdigit():
            raise argparse.ArgumentTypeError(f"expected a whole number of {what}, or auto")
        return count(text)

    return parse


def add_settings_flag(parser: argparse.ArgumentParser) -> None:
    """Declare --settings (the TOML or YAML file; ASYNCGEN_* variables win over it)."""
    parser.add_argument(
        "--settings",
        type=Path,
        help=f"settings file, TOML or YAML (.yaml/.yml; default ./{DEFAULT_SETTINGS_FILE} or "
        "./asyncgen.yaml, if present); ASYNCGEN_* variables win over it and flags over both",
    )


def load_settings(path: Path | None) -> Settings:
    """Settings from the environment and the settings file (``path``, or ./asyncgen.toml
    or ./asyncgen.yaml).

    Raises:
        UsageProblem: A named file that does not exist; two default files; a file that
            cannot be read; a bad value or an unknown key (naming the file and key).
    """
    if path is not None and not path.is_file():
        raise UsageProblem(f"--settings {path}: no such file")
    try:
        where = path or find_settings_file()
    except ValueError as exc:
        raise UsageProblem(f"settings: {exc}") from None
    try:
        return Settings.load(where)
    except ValidationError as exc:
        raise UsageProblem(f"settings ({where} or ASYNCGEN_*): {describe_invalid(exc)}") from None
    except (ValueError, ImportError) as exc:  # each message names the file
        raise UsageProblem(f"settings: {exc}") from None


def provider_client(
    provider: str | None,
    base_url: str | None,
    *,
    settings: Settings | None = None,
    **options: Any,
) -> ChatClient:
    """The client for ``--base-url`` or a ``--provider`` preset (default: OpenRouter).

    A ``--base-url`` (or ``base_url`` in the settings, when no provider was asked for)
    is sent the settings' ``api_key`` (``ASYNCGEN_API_KEY``); a preset reads its own
    provider's variable. Both together: the preset (its prices) at that URL, with
    ``ASYNCGEN_API_KEY`` if set, else the provider's variable.

    Raises:
        UsageProblem: No key for the provider, a malformed key, a missing extra.
    """
    settings = settings or load_settings(None)
    base_url = base_url or (settings.base_url if provider is None else None)
    try:
        key = settings.api_key.get_secret_value() if settings.api_key else None
        if base_url and provider:  # a gateway in front of a known provider: its prices
            return PROVIDERS[provider](api_key=key, base_url=base_url, **options)
        if base_url:
            return ChatClient(base_url, key, **options)
        name = provider or "openrouter"
        variable = KEY_VARIABLES[name]
        if not os.environ.get(variable, "").strip():
            raise UsageProblem(
                f"no API key: set {variable} in the environment (or give --base-url, with "
                "ASYNCGEN_API_KEY if that server needs a key; asyncgen run also has --sim)"
            )
        return PROVIDERS[name](**options)
    except (ValueError, ImportError) as exc:  # a malformed key, a missing extra
        raise UsageProblem(str(exc)) from None


def cache_url_type(text: str) -> str:
    """A response cache's URL (``--cache``): sqlite:///FILE or redis://..."""
    if (text.startswith("sqlite:///") or text.partition("://")[0] in REDIS_SCHEMES) and len(
        text
    ) > 10:
        return text
    raise argparse.ArgumentTypeError(
        f"expected sqlite:///FILE or redis://HOST:PORT/DB, got {text!r}"
    )


def schema_type(text: str) -> type[BaseModel]:
    """``module:Model`` (imported from the current folder too) to the model class."""
    module_name, _, attribute = text.partition(":")
    if not module_name or not attribute:
        raise argparse.ArgumentTypeError(
            f"give MODULE:MODEL (e.g. app.models:Answer), not {text!r}"
        )
    sys.path.insert(0, os.getcwd())
    try:
        found = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise argparse.ArgumentTypeError(f"cannot load {text}: {exc}") from None
    except Exception as exc:  # the module itself failed: a SyntaxError, or raised
        where = f" (line {exc.lineno})" if isinstance(exc, SyntaxError) else ""
        raise argparse.ArgumentTypeError(
            f"cannot load {text}: importing {module_name} raised {type(exc).__name__}{where}: {exc}"
        ) from None
    if not (isinstance(found, type) and issubclass(found, BaseModel)) or found is BaseModel:
        raise argparse.ArgumentTypeError(
            f"{text} is not a pydantic model of yours: give a subclass of BaseModel"
        )
    try:
        found.model_json_schema()
    except Exception as exc:  # e.g. a field of a type with no JSON schema
        raise argparse.ArgumentTypeError(
            f"{text}: its JSON schema, which is sent with each request, cannot be made "
            f"({type(exc).__name__}: {exc})"
        ) from None
    return found

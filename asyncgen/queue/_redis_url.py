"""Checks of a Redis queue URL, made before redis-py sees it.

redis-py passes unknown query options on to its connection class, so a typo
(``?queu=llm``) surfaces later as a TypeError deep inside it; and a password with a
reserved character (``@ / ? #``) silently shifts the host. Both are refused here with a
sentence that says what to change, and never shows the password.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable

__all__ = ["OWN_OPTIONS", "check_url", "server_url"]

OWN_OPTIONS = ("queue", "result_ttl", "max_connections")
_REDIS_OPTIONS = (
    "socket_timeout",
    "socket_connect_timeout",
    "socket_keepalive",
    "health_check_interval",
    "retry_on_timeout",
    "client_name",
    "timeout",
)
_TLS_OPTIONS = (
    "ssl_keyfile",
    "ssl_certfile",
    "ssl_cert_reqs",
    "ssl_ca_certs",
    "ssl_ca_data",
    "ssl_ca_path",
    "ssl_check_hostname",
    "ssl_min_version",
    "ssl_ciphers",
    "ssl_password",
)


def check_url(parts: urllib.parse.SplitResult, query: dict[str, list[str]]) -> None:
    """Refuse a misparsed password, a database that is not a number, an unknown option.

    Raises:
        ValueError: What is wrong, without the password.
    """
    after_host = parts.path + parts.query + parts.fragment
    if (
        parts.netloc.count("@") > 1
        or "@" in after_host
        or (parts.netloc.startswith(":") and not parts.hostname)
    ):
        raise ValueError(
            "the Redis URL's user or password holds a character that ends it early "
            "(@ / ? or #): percent-encode them in the password (%40 %2F %3F %23), e.g. "
            "urllib.parse.quote(password, safe='')"
        )
    database = parts.path.strip("/")
    if database and not database.isdigit():
        raise ValueError(
            f"the database in a Redis URL is a number (redis://host:6379/0), got {database!r}"
        )
    allowed = (*OWN_OPTIONS, *_REDIS_OPTIONS, *(_TLS_OPTIONS if parts.scheme == "rediss" else ()))
    for name, values in query.items():
        if name in _TLS_OPTIONS and parts.scheme == "redis":
            raise ValueError(f"?{name}= is a TLS option: use a rediss:// URL")
        if name not in allowed:
            raise ValueError(
                f"unknown option ?{name}= in the Redis URL; asyncgen's are "
                f"{', '.join(OWN_OPTIONS)}; redis-py's accepted here are "
                f"{', '.join(allowed[len(OWN_OPTIONS) :])}"
            )
        from redis.connection import URL_QUERY_ARGUMENT_PARSERS  # a Redis URL: redis is used

        parse: Callable[[str], object] | None = URL_QUERY_ARGUMENT_PARSERS.get(name)  # type: ignore[assignment]
        if parse is not None and name not in OWN_OPTIONS:
            try:
                parse(values[-1])
            except (TypeError, ValueError):
                raise ValueError(f"?{name}= in the Redis URL: bad value {values[-1]!r}") from None


def server_url(url: str) -> str:
    """A queue's Redis URL without the queue's own options (``?queue=``, ...): the URL of
    the server alone, for another client of it (a shared rate limiter)."""
    parts = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qs(parts.query, keep_blank_values=True)
    kept = {name: values for name, values in query.items() if name not in OWN_OPTIONS}
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(kept, doseq=True)))

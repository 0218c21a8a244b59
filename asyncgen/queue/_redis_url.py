"""A Redis queue URL's own options (the rest is checked by ``core._redis``)."""

from __future__ import annotations

import urllib.parse

__all__ = ["OWN_OPTIONS", "server_url"]

OWN_OPTIONS = ("queue", "result_ttl", "max_connections", "durable", "durable_timeout")


def server_url(url: str) -> str:
    """A queue's Redis URL without the queue's own options (``?queue=``, ...): the URL of
    the server alone, for another client of it (a shared rate limiter)."""
    parts = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qs(parts.query, keep_blank_values=True)
    kept = {name: values for name, values in query.items() if name not in OWN_OPTIONS}
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(kept, doseq=True)))

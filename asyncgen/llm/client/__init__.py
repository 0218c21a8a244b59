"""The client: :class:`ChatClient`, a facade over its parts.

One transport per event loop (httpx or aiohttp) carries chat, streams and the provider's
Batch API (``client.batches``); answers are mapped to asyncgen's errors by one set of
rules; the traffic controls (rate limiter, breakers, pauses, the key's pace), the price
table and the response cache sit beside it. Public names are re-exported by
:mod:`asyncgen`.
"""

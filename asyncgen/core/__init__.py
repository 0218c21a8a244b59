"""The core: what every other room builds on and that imports nothing above it.

Typed errors, bounded gather and map, retry with jittered backoff and Retry-After
parsing, the bridge that runs coroutines from sync code, deadlines, outcomes, log
set-up with secrets masked, settings, and the library's defaults. Public names are
exported from ``asyncgen`` itself.
"""

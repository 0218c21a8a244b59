"""The online engine: jobs (:class:`GenerationJob`), one job's path through retries,
re-asks and fallbacks, and the runs under ``generate``, ``generate_iter``,
``generate_stream`` and ``fan_out`` (bounded, ordered, events as they happen).
Public names are re-exported by :mod:`asyncgen`.
"""

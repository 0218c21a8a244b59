"""Runnable examples of asyncgen, each with a test in tests/."""

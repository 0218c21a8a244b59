"""Runs through the provider's Batch API (half the price, within 24 hours): request
files written, submitted and polled through ``client.batches``, answers read back line
by line, state kept in a folder so a killed run picks up its batches. Public names are
re-exported by :mod:`asyncgen`.
"""

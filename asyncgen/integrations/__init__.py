"""Integrations with the frameworks users already run: ``asyncgen.integrations.celery``.

Each needs its framework installed (an extra: ``asyncgen[celery]``); importing this
package imports none of them.
"""

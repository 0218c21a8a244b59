"""One line a person can act on, from a pydantic ValidationError."""

from __future__ import annotations

from pydantic import ValidationError

__all__ = ["describe_invalid"]


def describe_invalid(exc: ValidationError, *, whole: str = "value") -> str:
    """``field.path: message; ...`` for every error (``whole`` names an error of the root)."""
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or whole}: {err['msg']}" for err in exc.errors()
    )

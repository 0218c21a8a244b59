"""API keys as they will be sent: checked once, at client creation, and always masked."""

from __future__ import annotations

from ...core._logging import register_secret

__all__ = ["clean_api_key"]


def clean_api_key(api_key: str | None) -> str | None:
    """The key as it will be sent: surrounding white space stripped, the rest checked.

    A trailing ``\\r`` or ``\\n`` (Windows ``.env`` files, ``echo`` into a file) is removed;
    a key with white space, control or non-ASCII characters inside is refused, since no
    HTTP header can carry it. Both the raw and the cleaned key are masked in logs.

    Raises:
        ValueError: The key has characters no API key has (the key is not shown).
    """
    if api_key is None:
        return None
    register_secret(api_key)
    cleaned = api_key.strip()
    register_secret(cleaned)
    bad = next((c for c in cleaned if not 0x21 <= ord(c) <= 0x7E), None)
    if bad is not None:
        raise ValueError(
            f"the API key contains {_describe(bad)} at position {cleaned.index(bad) + 1} "
            f"of {len(cleaned)}: API keys are printable ASCII with no spaces; check where it "
            "comes from (a quoted or multi-line value in a .env file?)"
        )
    return cleaned or None


def _describe(char: str) -> str:
    if ord(char) < 0x20 or ord(char) == 0x7F:
        return f"a control character (U+{ord(char):04X})"
    if char.isspace():
        return f"white space (U+{ord(char):04X})"
    return f"a non-ASCII character (U+{ord(char):04X})"

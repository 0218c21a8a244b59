"""The providers a client has a preset for: their URLs, and where key and URL are read."""

from __future__ import annotations

import os
from typing import Any

__all__ = ["PROVIDER_URLS", "preset_arguments"]

PROVIDER_URLS = {
    "openrouter": "https://openrouter.ai/api/v1",
    "openai": "https://api.openai.com/v1",
    "deepseek": "https://api.deepseek.com/v1",
}


def preset_arguments(
    provider: str, api_key: str | None, options: dict[str, Any]
) -> tuple[str, str | None, dict[str, Any]]:
    """The base URL, key and options of ``ChatClient.<provider>(api_key, **options)``.

    The key is ``api_key``, else ``$<PROVIDER>_API_KEY`` (e.g. ``$OPENAI_API_KEY``). The
    URL is ``options["base_url"]``, else ``$<PROVIDER>_BASE_URL`` when it is set (a
    gateway, a proxy, the simulator: as the openai SDK reads ``$OPENAI_BASE_URL``), else
    the provider's own. ``provider`` is set in the options unless they name one.

    Raises:
        ValueError: No key given or set, for the provider's own URL (no request could
            succeed); ``base_url=`` may point the preset elsewhere without a key.
    """
    url = PROVIDER_URLS[provider]
    prefix = provider.upper()
    options = dict(options)
    base_url = options.pop("base_url", None) or os.environ.get(f"{prefix}_BASE_URL") or url
    options.setdefault("provider", provider)
    key = api_key if api_key is not None else os.environ.get(f"{prefix}_API_KEY")
    if base_url == url and not (key or "").strip():
        raise ValueError(
            f"ChatClient.{provider}(): no API key: set {prefix}_API_KEY in the environment or "
            "pass api_key=...; for a local server or the simulator give base_url=..."
        )
    return base_url, key, options

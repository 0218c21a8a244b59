"""Dollar costs for answers whose provider does not report one, from a maintained price
table (the ``genai-prices`` package: ``pip install 'asyncgen[prices]'``).

OpenRouter reports each answer's cost; OpenAI, DeepSeek and most others do not. With the
table installed, a ChatClient prices those answers from their token counts (marked
``usage.cost_source == "table"``); a model the table does not know keeps ``cost=None``,
shown as unknown, never as 0.
"""

from __future__ import annotations

import functools
import importlib.util
import threading
from typing import Any

import structlog

__all__ = ["PriceTable", "price_table_installed"]

_log = structlog.get_logger("asyncgen.prices")


@functools.cache
def price_table_installed() -> bool:
    """True when ``genai-prices`` is installed (found, not imported: that waits for the
    first answer to price)."""
    return importlib.util.find_spec("genai_prices") is not None


class PriceTable:
    """Prices answers of one client (its provider, or its base URL, picks the prices).

    Args:
        provider: "openai", "deepseek", "openrouter"..., or None to go by ``base_url``.
        base_url: The client's API root.
    """

    def __init__(self, provider: str | None, base_url: str) -> None:
        self.provider = provider
        self.base_url = base_url
        self._unknown: set[str] = set()
        self._lock = threading.Lock()

    def cost(self, model: str, prompt_tokens: int, completion_tokens: int) -> float | None:
        """Dollars for one answer, or None when the table does not know the model."""
        if model in self._unknown:
            return None
        from genai_prices import Usage, calc_price  # imported on the first answer priced

        usage = Usage(input_tokens=prompt_tokens, output_tokens=completion_tokens)
        where: dict[str, Any] = (
            {"provider_id": self.provider} if self.provider else {"provider_api_url": self.base_url}
        )
        try:
            price = calc_price(usage, model, **where)
        except LookupError:
            with self._lock:
                if model not in self._unknown:
                    self._unknown.add(model)
                    _log.info("price_unknown", model=model, provider=self.provider,
                              action="its cost is shown as unknown")  # fmt: skip
            return None
        return float(price.total_price)

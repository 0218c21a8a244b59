"""Dollar costs for answers whose provider does not report one, from a maintained price
table (the ``genai-prices`` package: ``pip install 'asyncgen[prices]'``).

OpenRouter reports each answer's cost; OpenAI, DeepSeek and most others do not. With the
table installed, a ChatClient prices those answers from their token counts (marked
``usage.cost_source == "table"``); a model the table does not know keeps ``cost=None``,
shown as unknown, never as 0.

Prices are the client's provider's, found by its name (the presets) or its base URL.
Behind a URL the table does not know (a gateway, a proxy, a self-hosted server) the model
is looked up by its own name instead: ``vendor/name`` as that vendor's model, then as
OpenRouter lists it; a bare name in whichever provider lists it. Such a price says so
(``cost_source == "table_by_name"``): it is the vendor's list price, which a gateway may
not charge.
"""

from __future__ import annotations

import functools
import importlib.util
import threading
from typing import Any

import structlog

from ._models import Completion

__all__ = ["BATCH_DISCOUNT", "PriceTable", "price_table_for", "price_table_installed"]

BATCH_DISCOUNT = 0.5  # a Batch API answer's share of the online price (OpenAI, Anthropic)

_log = structlog.get_logger("asyncgen.prices")


@functools.cache
def price_table_installed() -> bool:
    """True when ``genai-prices`` is installed (found, not imported: that waits for the
    first answer to price)."""
    return importlib.util.find_spec("genai_prices") is not None


def price_table_for(prices: bool | None, provider: str | None, base_url: str) -> PriceTable | None:
    """The table a client's ``prices=`` asks for: None (use it when it is installed),
    True (require it), False (off: no table, answers without a cost stay unpriced).

    Raises:
        ImportError: ``prices=True`` without ``asyncgen[prices]`` installed.
    """
    if prices and not price_table_installed():
        raise ImportError("prices=True needs the price table: pip install 'asyncgen[prices]'")
    use_table = price_table_installed() if prices is None else prices
    return PriceTable(provider, base_url) if use_table else None


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
        self._url_known: bool | None = None
        self._lock = threading.Lock()

    def cost(self, model: str, prompt_tokens: int, completion_tokens: int) -> float | None:
        """Dollars for one answer, or None when the table does not know the model."""
        found = self.price(model, prompt_tokens, completion_tokens)
        return None if found is None else found[0]

    def priced(self, completion: Completion, model: str, *, batch: bool = False) -> Completion:
        """``completion`` with the table's cost when its provider sent none (unchanged
        when it sent one, or the table has no price). A Batch API answer (``batch``) costs
        BATCH_DISCOUNT of the online price, its source ``table_batch...``."""
        usage = completion.usage
        if usage.cost is not None:
            return completion
        found = self.price(model, usage.prompt_tokens, usage.completion_tokens)
        if found is None:
            return completion
        cost, source = found
        if batch:
            cost, source = cost * BATCH_DISCOUNT, source.replace("table", "table_batch")
        priced = usage.model_copy(update={"cost": cost, "cost_source": source})
        return completion.model_copy(update={"usage": priced})

    def price(
        self, model: str, prompt_tokens: int, completion_tokens: int
    ) -> tuple[float, str] | None:
        """Dollars for one answer and how the price was found ("table", or
        "table_by_name" behind an unknown URL), or None when the table has no price."""
        if model in self._unknown:
            return None
        from genai_prices import Usage, calc_price  # imported on the first answer priced

        usage = Usage(input_tokens=prompt_tokens, output_tokens=completion_tokens)
        where: dict[str, Any] = (
            {"provider_id": self.provider} if self.provider else {"provider_api_url": self.base_url}
        )
        try:
            return float(calc_price(usage, model, **where).total_price), "table"
        except LookupError:
            pass
        if not self.provider and not self._known_url():
            for ref, by_name in _by_name(model):
                try:
                    return float(calc_price(usage, ref, **by_name).total_price), "table_by_name"
                except LookupError:
                    continue
        with self._lock:
            if model not in self._unknown:
                self._unknown.add(model)
                _log.info(
                    "price_unknown",
                    model=model,
                    provider=self.provider,
                    action="its cost is shown as unknown",
                )
        return None

    def _known_url(self) -> bool:
        """True when the table knows a provider at this base URL (then a model it does not
        list there is unknown, not looked up by name elsewhere)."""
        if self._url_known is None:
            from genai_prices.data_snapshot import get_snapshot

            try:
                get_snapshot().find_provider(None, None, self.base_url)
            except LookupError:
                self._url_known = False
            else:
                self._url_known = True
        return self._url_known


def _by_name(model: str) -> list[tuple[str, dict[str, Any]]]:
    """Where to look a model up by its name: ``vendor/name`` at that vendor, then as
    OpenRouter lists it; a bare name wherever a provider lists it."""
    vendor, _, name = model.partition("/")
    if name:
        return [(name, {"provider_id": vendor}), (model, {"provider_id": "openrouter"})]
    return [(model, {})]

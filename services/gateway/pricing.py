"""Cost of a call from genai-prices' bundled data (its online updater is never started)."""

from __future__ import annotations

import warnings
from decimal import Decimal
from functools import lru_cache

from genai_prices import Usage as PriceUsage
from genai_prices import calc_price

from services.gateway.usage import Usage


@lru_cache(maxsize=1024)
def _known(provider: str, model: str) -> bool:
    try:
        calc_price(PriceUsage(input_tokens=0, output_tokens=0), model_ref=model, provider_id=provider)
    except LookupError:
        return False
    return True


def cost_of(provider: str, usage: Usage) -> Decimal | None:
    """USD as Decimal, or None when the model has no known price (recorded as unknown, never $0)."""
    model = usage.model
    if not model or not _known(provider, model):
        return None
    price_usage = PriceUsage(
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cache_read_tokens=usage.cached_tokens,
        cache_write_tokens=usage.cache_write_tokens,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            result = calc_price(price_usage, model_ref=model, provider_id=provider)
        except (LookupError, ValueError):
            return None
    return Decimal(result.total_price)

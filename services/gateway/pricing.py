"""Cost of a call from genai-prices' bundled data (its online updater is never started).

genai-prices' ``calc_price`` takes most of a millisecond per call, too slow for the hot path.
A model's prices are resolved once (per hour, as prices have validity dates) and text-token
calls are priced with the same linear formula; anything else (tiers above their threshold,
token kinds the model has no price for) goes through ``calc_price`` itself. A unit test checks
that both agree over generated usages.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from genai_prices import Usage as PriceUsage
from genai_prices import calc_price, data_snapshot
from genai_prices.types import TieredPrices

from services.gateway.usage import Usage

_MTOK = Decimal(1_000_000)
_KILO = Decimal(1000)
_REFRESH_S = 3600.0
_MAX_MODELS = 4096


@dataclass(frozen=True, slots=True)
class _Rates:
    input: Decimal | None
    output: Decimal | None
    cache_read: Decimal | None
    cache_write: Decimal | None
    per_request: Decimal
    # Linear rates hold below this many input tokens (tiered prices); None: no tiers.
    linear_below: int | None
    context_window: int | None = None


def _base(price: object) -> tuple[Decimal | None, int | None]:
    if price is None:
        return None, None
    if isinstance(price, TieredPrices):
        return Decimal(price.base), min((t.start for t in price.tiers), default=None)
    if isinstance(price, Decimal):
        return price, None
    return None, 0  # an unknown price shape: always the slow path


def _resolve(provider: str, model: str) -> _Rates | None:
    try:
        _, info = data_snapshot.get_snapshot().find_provider_model(model, None, provider, None)
    except LookupError:
        return None
    mp = info.get_prices(datetime.now(UTC))
    parts = [_base(getattr(mp, f, None)) for f in ("input_mtok", "output_mtok", "cache_read_mtok", "cache_write_mtok")]
    limits = [lim for _, lim in parts if lim is not None]
    per_request = getattr(mp, "requests_kcount", None)
    return _Rates(
        parts[0][0],
        parts[1][0],
        parts[2][0],
        parts[3][0],
        per_request / _KILO if isinstance(per_request, Decimal) else Decimal(0),
        min(limits) if limits else None,
        info.context_window if isinstance(info.context_window, int) else None,
    )


class PriceBook:
    """Per-process cache of model rates; not shared state, just memoised bundled data."""

    def __init__(self) -> None:
        self._rates: dict[tuple[str, str], tuple[float, _Rates | None]] = {}

    def rates(self, provider: str, model: str) -> _Rates | None:
        key = (provider, model)
        now = time.monotonic()
        hit = self._rates.get(key)
        if hit is not None and now - hit[0] < _REFRESH_S:
            return hit[1]
        if len(self._rates) >= _MAX_MODELS:
            self._rates.clear()
        rates = _resolve(provider, model)
        self._rates[key] = (now, rates)
        return rates

    def cost(self, provider: str, usage: Usage) -> Decimal | None:
        """USD as Decimal, or None when the model has no known price (never $0 for unknown)."""
        model = usage.model
        if not model:
            return None
        r = self.rates(provider, model)
        if r is None:
            return None
        fast = _linear(r, usage)
        return fast if fast is not None else _slow(provider, usage)


def _linear(r: _Rates, u: Usage) -> Decimal | None:
    if r.linear_below is not None and u.input_tokens >= r.linear_below:
        return None
    uncached = u.input_tokens - u.cached_tokens - u.cache_write_tokens
    needed = (
        (r.input, uncached),
        (r.output, u.output_tokens),
        (r.cache_read, u.cached_tokens),
        (r.cache_write, u.cache_write_tokens),
    )
    total = r.per_request
    for rate, tokens in needed:
        if tokens:
            if rate is None or tokens < 0:
                return None
            total += rate * tokens / _MTOK
    return total


def _slow(provider: str, usage: Usage) -> Decimal | None:
    assert usage.model is not None
    price_usage = PriceUsage(
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cache_read_tokens=usage.cached_tokens,
        cache_write_tokens=usage.cache_write_tokens,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            result = calc_price(price_usage, model_ref=usage.model, provider_id=provider)
        except (LookupError, ValueError):
            return None
    return Decimal(result.total_price)


_DEFAULT_BOOK = PriceBook()


def cost_of(provider: str, usage: Usage, book: PriceBook = _DEFAULT_BOOK) -> Decimal | None:
    return book.cost(provider, usage)


def context_window_of(provider: str, model: str, book: PriceBook = _DEFAULT_BOOK) -> int | None:
    r = book.rates(provider, model)
    return r.context_window if r is not None else None

"""A call's worst-case cost, computed from the request alone, before it is forwarded.

Input tokens are estimated from the request body's text (about one token per 3 characters,
a deliberate over-estimate against the ~4 of English text, plus a per-message overhead);
output tokens are the request's own ceiling (``max_tokens``, ``max_completion_tokens``,
``max_output_tokens``) or, without one, the model's context window. Prices come from
genai-prices' bundled data, as Decimal.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from services.gateway.pricing import context_window_of, cost_of
from services.gateway.usage import Usage

CHARS_PER_TOKEN = 3
MESSAGE_OVERHEAD_TOKENS = 4
REQUEST_OVERHEAD_TOKENS = 8
# Output ceiling when the request sets none and the model's context window is unknown.
FALLBACK_OUTPUT_TOKENS = 16_384
_OUTPUT_CEILING_FIELDS = ("max_completion_tokens", "max_output_tokens", "max_tokens")


@dataclass(frozen=True, slots=True)
class Estimate:
    input_tokens: int
    output_tokens: int
    # None when the model has no known price: admission then treats the call as unpriced.
    cost_usd: Decimal | None


def _text_chars(value: Any) -> int:
    if isinstance(value, str):
        return len(value)
    if isinstance(value, dict):
        return sum(_text_chars(v) for k, v in value.items() if k not in ("image_url", "source"))
    if isinstance(value, list):
        return sum(_text_chars(v) for v in value)
    return 0


def estimate_input_tokens(body: dict[str, Any]) -> int:
    chars = 0
    messages = 0
    for field in ("messages", "input", "system", "instructions", "prompt", "tools"):
        value = body.get(field)
        chars += _text_chars(value)
        if isinstance(value, list):
            messages += len(value)
    return math.ceil(chars / CHARS_PER_TOKEN) + messages * MESSAGE_OVERHEAD_TOKENS + REQUEST_OVERHEAD_TOKENS


def requested_output_ceiling(body: dict[str, Any]) -> int | None:
    for field in _OUTPUT_CEILING_FIELDS:
        value = body.get(field)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
    return None


def price(provider: str, model: str, input_tokens: int, output_tokens: int) -> Decimal | None:
    # The pricing module's resolved per-model rates: calc_price itself costs most of a
    # millisecond, and this runs before every call with a session.
    return cost_of(provider, Usage(input_tokens=input_tokens, output_tokens=output_tokens, model=model))


def worst_case(provider: str, body: dict[str, Any]) -> Estimate:
    """The most this request can cost; the gateway reserves it before forwarding."""
    model = body.get("model")
    input_tokens = estimate_input_tokens(body)
    output_tokens = requested_output_ceiling(body)
    if not isinstance(model, str) or not model:
        return Estimate(input_tokens, output_tokens or FALLBACK_OUTPUT_TOKENS, None)
    if output_tokens is None:
        output_tokens = _context_window(provider, model) or FALLBACK_OUTPUT_TOKENS
    return Estimate(input_tokens, output_tokens, price(provider, model, input_tokens, output_tokens))


def _context_window(provider: str, model: str) -> int | None:
    return context_window_of(provider, model)

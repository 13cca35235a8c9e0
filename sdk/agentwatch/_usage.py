"""Usage numbers read from the official SDKs' response objects (direct mode only)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    seen: bool = False


def _get(obj: Any, name: str) -> Any:
    if obj is None:
        return None
    if isinstance(obj, dict):
        return obj.get(name)
    return getattr(obj, name, None)


def _int(value: Any) -> int:
    return int(value) if isinstance(value, int) else 0


def absorb(usage: Usage, raw: Any) -> None:
    """Fold one ``usage`` object (OpenAI chat/embeddings/responses or Anthropic) into ``usage``.

    Anthropic streams report input tokens in ``message_start`` and cumulative output tokens in
    ``message_delta``; OpenAI reports everything once. Taking the maximum of each field keeps
    both right.
    """
    if raw is None:
        return
    usage.seen = True
    inp = _get(raw, "prompt_tokens")
    if inp is None:
        inp = _get(raw, "input_tokens")
    out = _get(raw, "completion_tokens")
    if out is None:
        out = _get(raw, "output_tokens")
    cached = _get(_get(raw, "prompt_tokens_details"), "cached_tokens")
    if cached is None:
        cached = _get(_get(raw, "input_tokens_details"), "cached_tokens")
    if cached is None:
        cached = _get(raw, "cache_read_input_tokens")
    reasoning = _get(_get(raw, "completion_tokens_details"), "reasoning_tokens")
    if reasoning is None:
        reasoning = _get(_get(raw, "output_tokens_details"), "reasoning_tokens")
    usage.input_tokens = max(usage.input_tokens, _int(inp))
    usage.output_tokens = max(usage.output_tokens, _int(out))
    usage.cached_tokens = max(usage.cached_tokens, _int(cached))
    usage.reasoning_tokens = max(usage.reasoning_tokens, _int(reasoning))


def absorb_item(usage: Usage, item: Any) -> None:
    """Fold whatever usage one response object or stream event carries."""
    absorb(usage, _get(item, "usage"))
    # Responses API stream: the final `response.completed` event holds the response.
    absorb(usage, _get(_get(item, "response"), "usage"))
    # Anthropic stream: `message_start` holds the message with its input usage.
    absorb(usage, _get(_get(item, "message"), "usage"))

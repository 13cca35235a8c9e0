from __future__ import annotations

from decimal import Decimal

from genai_prices import Usage, calc_price

from services.gateway.estimate import FALLBACK_OUTPUT_TOKENS, estimate_input_tokens, worst_case


def test_output_ceiling_from_request_and_price_from_genai_prices():
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "x" * 296}], "max_tokens": 1000}
    est = worst_case("openai", body)
    assert est.input_tokens == 100 + 4 + 8  # 300 chars incl. the role
    assert est.output_tokens == 1000
    expected = calc_price(Usage(input_tokens=112, output_tokens=1000), "gpt-4o", provider_id="openai").total_price
    assert est.cost_usd == Decimal(expected) and isinstance(est.cost_usd, Decimal)


def test_other_ceiling_fields():
    assert worst_case("openai", {"model": "gpt-4o", "input": "hi", "max_output_tokens": 7}).output_tokens == 7
    assert worst_case("openai", {"model": "gpt-4o", "messages": [], "max_completion_tokens": 9}).output_tokens == 9


def test_without_ceiling_the_context_window_is_reserved():
    est = worst_case("anthropic", {"model": "claude-3-5-haiku-latest", "messages": []})
    assert est.output_tokens == 200_000 and est.cost_usd is not None and est.cost_usd > Decimal("0.5")


def test_unknown_model_is_unpriced_not_free():
    est = worst_case("openai", {"model": "no-such-model-xyz", "messages": []})
    assert est.cost_usd is None and est.output_tokens == FALLBACK_OUTPUT_TOKENS


def test_input_estimate_overestimates_english_text():
    text = "The quick brown fox jumps over the lazy dog. " * 50
    # ~10 tokens per sentence with real tokenizers: 500 real tokens.
    assert estimate_input_tokens({"messages": [{"role": "user", "content": text}]}) > 500

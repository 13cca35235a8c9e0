"""Usage extraction from whole bodies and from SSE streams split at arbitrary byte offsets."""

from __future__ import annotations

from decimal import Decimal

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from services.gateway.pricing import cost_of
from services.gateway.usage import SSEParser, Usage, from_body, is_usage_only_chunk, strip_usage_null

OPENAI_STREAM = (
    b'data: {"id":"c","choices":[{"index":0,"delta":{"content":"hi"}}],"usage":null}\n\n'
    b'data: {"id":"c","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":null}\n\n'
    b'data: {"id":"c","model":"gpt-4o-mini","choices":[],"usage":{"prompt_tokens":10,"completion_tokens":4,'
    b'"prompt_tokens_details":{"cached_tokens":3},"completion_tokens_details":{"reasoning_tokens":1}}}\n\n'
    b"data: [DONE]\n\n"
)

ANTHROPIC_STREAM = (
    b"event: message_start\n"
    b'data: {"type":"message_start","message":{"model":"claude-3-5-haiku-20241022","usage":{"input_tokens":20,'
    b'"output_tokens":1,"cache_read_input_tokens":5,"cache_creation_input_tokens":2}}}\n\n'
    b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"text":"x"}}\n\n'
    b'event: message_delta\ndata: {"type":"message_delta","delta":{},"usage":{"output_tokens":9}}\n\n'
    b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
)


def _feed_split(provider: str, data: bytes, cuts: list[int]) -> tuple[SSEParser, bytes]:
    parser = SSEParser(provider)
    out = b""
    prev = 0
    for cut in [*sorted(set(cuts)), len(data)]:
        out += b"".join(parser.feed(data[prev:cut]))
        prev = cut
    out += parser.flush()
    return parser, out


@given(st.lists(st.integers(min_value=0, max_value=len(OPENAI_STREAM)), max_size=8))
def test_openai_stream_usage_whatever_the_chunking(cuts: list[int]) -> None:
    parser, out = _feed_split("openai", OPENAI_STREAM, cuts)
    u = parser.usage
    assert (u.input_tokens, u.output_tokens, u.cached_tokens, u.reasoning_tokens) == (10, 4, 3, 1)
    assert u.model == "gpt-4o-mini"
    assert out == OPENAI_STREAM


@given(st.lists(st.integers(min_value=0, max_value=len(ANTHROPIC_STREAM)), max_size=8))
def test_anthropic_stream_usage_whatever_the_chunking(cuts: list[int]) -> None:
    parser, _ = _feed_split("anthropic", ANTHROPIC_STREAM, cuts)
    u = parser.usage
    # input_tokens counts every billed input token: uncached + cache read + cache write.
    assert (u.input_tokens, u.output_tokens, u.cached_tokens, u.cache_write_tokens) == (27, 9, 5, 2)


def test_usage_only_chunk_is_recognised_and_usage_null_stripped() -> None:
    parser = SSEParser("openai")
    events = parser.feed(OPENAI_STREAM)
    kept = [strip_usage_null(e) for e in events if not is_usage_only_chunk(e)]
    assert len(kept) == 3
    assert all(b"usage" not in e for e in kept)
    assert kept[-1] == b"data: [DONE]\n\n"


def test_usage_null_inside_a_string_is_left_alone() -> None:
    content = msgspec.json.encode({"content": ',"usage":null'})
    event = b'data: {"choices":[{"delta":' + content + b"}]}\n\n"
    assert strip_usage_null(event) == event


def test_whole_bodies() -> None:
    chat = b'{"model":"gpt-4o","usage":{"prompt_tokens":7,"completion_tokens":2}}'
    assert (from_body("openai", chat).input_tokens, from_body("openai", chat).output_tokens) == (7, 2)
    resp = (
        b'{"model":"gpt-4o","usage":{"input_tokens":5,"output_tokens":6,'
        b'"output_tokens_details":{"reasoning_tokens":4}}}'
    )
    u = from_body("openai", resp)
    assert (u.input_tokens, u.output_tokens, u.reasoning_tokens) == (5, 6, 4)
    assert not from_body("openai", b"not json").seen
    assert not from_body("anthropic", b"[1,2]").seen


def test_cost_is_decimal_and_unknown_model_is_none() -> None:
    cost = cost_of("openai", Usage(input_tokens=1_000_000, output_tokens=0, model="gpt-4o-mini"))
    assert isinstance(cost, Decimal) and cost > 0
    assert cost_of("openai", Usage(input_tokens=10, output_tokens=10, model="no-such-model")) is None
    assert cost_of("openai", Usage(input_tokens=10, model=None)) is None
    assert cost_of("openai", Usage(model="gpt-4o-mini")) == Decimal(0)


MODELS = [
    ("openai", "gpt-4o-mini"),
    ("openai", "gpt-5"),
    ("openai", "text-embedding-3-small"),
    ("anthropic", "claude-3-5-haiku-20241022"),
    ("anthropic", "claude-sonnet-4-5"),
]


@given(
    st.sampled_from(MODELS),
    st.integers(0, 400_000),
    st.integers(0, 50_000),
    st.integers(0, 100_000),
    st.integers(0, 10_000),
)
def test_fast_cost_equals_genai_prices(model: tuple[str, str], inp: int, out: int, cached: int, write: int) -> None:
    provider, name = model
    cached = min(cached, inp)
    write = min(write, inp - cached)
    from genai_prices import Usage as PUsage
    from genai_prices import calc_price

    try:
        expected = calc_price(
            PUsage(input_tokens=inp, output_tokens=out, cache_read_tokens=cached, cache_write_tokens=write),
            name,
            provider_id=provider,
        ).total_price
    except ValueError:
        expected = None
    got = cost_of(
        provider,
        Usage(input_tokens=inp, output_tokens=out, cached_tokens=cached, cache_write_tokens=write, model=name),
    )
    assert got == expected


def test_usage_found_whatever_the_json_spacing_and_model_kept_from_the_first_chunk() -> None:
    # Only events with a usage object (or the model, until known) are decoded: spacing around
    # the colon must not hide a usage object, and `"usage": null` must not erase anything.
    stream = (
        b'data: {"id":"c","model":"gpt-4o","choices":[{"delta":{"content":"\\"usage\\": {"}}],"usage": null}\n\n'
        b'data: {"id":"c","model":"gpt-4o","choices":[],"usage" : \t{"prompt_tokens":7,"completion_tokens":2}}\n\n'
        b'data: {"id":"c","model":"gpt-4o","choices":[{"delta":{}}],"usage":null}\n\n'
        b"data: [DONE]\n\n"
    )
    parser, out = _feed_split("openai", stream, [])
    assert (parser.usage.input_tokens, parser.usage.output_tokens, parser.usage.model) == (7, 2, "gpt-4o")
    assert out == stream

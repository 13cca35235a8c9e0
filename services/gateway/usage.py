"""Token usage from provider responses, whole or streamed (server-sent events).

Token semantics recorded in events, the same for both providers: ``input_tokens`` is every
input token billed (Anthropic's uncached + cache-read + cache-write), ``cached_tokens`` the
cache reads among them, ``output_tokens`` includes ``reasoning_tokens``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import msgspec

Endpoint = Literal["chat", "responses", "embeddings", "completions", "messages", "other"]

_decode = msgspec.json.decode


@dataclass(slots=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    model: str | None = None
    seen: bool = False


def _int(obj: Any, key: str) -> int:
    if isinstance(obj, dict):
        v = obj.get(key)
        if isinstance(v, int) and not isinstance(v, bool) and v >= 0:
            return v
    return 0


def _details(obj: dict[str, Any], key: str, sub: str) -> int:
    d = obj.get(key)
    return _int(d, sub) if isinstance(d, dict) else 0


def apply_openai_usage(usage: Usage, u: dict[str, Any]) -> None:
    """Chat/completions/embeddings name them prompt/completion; the Responses API input/output."""
    usage.seen = True
    if "prompt_tokens" in u or "completion_tokens" in u:
        usage.input_tokens = _int(u, "prompt_tokens")
        usage.output_tokens = _int(u, "completion_tokens")
        usage.cached_tokens = _details(u, "prompt_tokens_details", "cached_tokens")
        usage.reasoning_tokens = _details(u, "completion_tokens_details", "reasoning_tokens")
    else:
        usage.input_tokens = _int(u, "input_tokens")
        usage.output_tokens = _int(u, "output_tokens")
        usage.cached_tokens = _details(u, "input_tokens_details", "cached_tokens")
        usage.reasoning_tokens = _details(u, "output_tokens_details", "reasoning_tokens")


def apply_anthropic_usage(usage: Usage, u: dict[str, Any]) -> None:
    """message_start carries input and an initial output count; message_delta the final output
    count (cumulative) and, on newer API versions, input counts again."""
    usage.seen = True
    if "input_tokens" in u or "cache_read_input_tokens" in u or "cache_creation_input_tokens" in u:
        cache_read = _int(u, "cache_read_input_tokens")
        cache_write = _int(u, "cache_creation_input_tokens")
        usage.input_tokens = _int(u, "input_tokens") + cache_read + cache_write
        usage.cached_tokens = cache_read
        usage.cache_write_tokens = cache_write
    if "output_tokens" in u:
        usage.output_tokens = _int(u, "output_tokens")


class _UsageFields(msgspec.Struct):
    """The two fields of a response body usage is read from; the decoder skips the rest (the
    generated content) without building it."""

    model: Any = None
    usage: Any = None


_decode_usage_fields = msgspec.json.Decoder(_UsageFields).decode


def from_body(provider: str, body: bytes) -> Usage:
    """Usage of a whole (non-streamed) JSON response; zero usage if it has none."""
    usage = Usage()
    try:
        doc = _decode_usage_fields(body)
    except msgspec.DecodeError:  # not JSON, or not an object (ValidationError is a DecodeError)
        return usage
    model = doc.model
    usage.model = model if isinstance(model, str) else None
    u = doc.usage
    if isinstance(u, dict):
        if provider == "anthropic":
            apply_anthropic_usage(usage, u)
        else:
            apply_openai_usage(usage, u)
    return usage


class SSEParser:
    """Splits a byte stream into server-sent events and folds their usage.

    Only events that can carry usage are JSON-decoded, so a long stream of content deltas
    costs a substring search per event, not a parse.
    """

    __slots__ = ("_buf", "_provider", "usage")

    def __init__(self, provider: str) -> None:
        self._provider = provider
        self._buf = b""
        self.usage = Usage()

    def feed(self, chunk: bytes) -> list[bytes]:
        """Add bytes; return the complete events (each with its trailing blank line)."""
        data = self._buf + chunk if self._buf else chunk
        if b"\r\n" in data:
            data = data.replace(b"\r\n", b"\n")
        events = data.split(b"\n\n")
        self._buf = events.pop()
        out = []
        for ev in events:
            if ev:
                self._observe(ev)
                out.append(ev + b"\n\n")
        return out

    def flush(self) -> bytes:
        rest, self._buf = self._buf, b""
        if rest.strip():
            self._observe(rest)
        return rest

    def _observe(self, event: bytes) -> None:
        # Decode only an event that can change what is recorded: one carrying a usage object,
        # or one naming the model while it is still unknown. Every OpenAI chunk names the model
        # and, with include_usage, has `"usage":null`: decoding each was the parser's main cost.
        if not _has_usage_object(event) and (self.usage.model is not None or b'"model"' not in event):
            return
        payload = _data_of(event)
        if payload is None:
            return
        try:
            doc = _decode(payload)
        except msgspec.DecodeError:
            return
        if not isinstance(doc, dict):
            return
        if self._provider == "anthropic":
            self._anthropic(doc)
        else:
            self._openai(doc)

    def _openai(self, doc: dict[str, Any]) -> None:
        # Responses API events wrap the response object; chat chunks carry usage at top level.
        resp = doc.get("response")
        src = resp if isinstance(resp, dict) else doc
        model = src.get("model")
        if isinstance(model, str):
            self.usage.model = model
        u = src.get("usage")
        if isinstance(u, dict):
            apply_openai_usage(self.usage, u)

    def _anthropic(self, doc: dict[str, Any]) -> None:
        msg = doc.get("message")
        if isinstance(msg, dict):
            model = msg.get("model")
            if isinstance(model, str):
                self.usage.model = model
            u = msg.get("usage")
            if isinstance(u, dict):
                apply_anthropic_usage(self.usage, u)
        u = doc.get("usage")
        if isinstance(u, dict):
            apply_anthropic_usage(self.usage, u)


def _has_usage_object(event: bytes) -> bool:
    """Whether a `"usage"` key is followed by an object (not null). Inside a JSON string the
    quotes would be escaped, so a match is a key; a false match only costs a decode."""
    at = event.find(b'"usage"')
    while at != -1:
        rest = event[at + 7 : at + 71].lstrip()
        if rest[:1] == b":" and rest[1:].lstrip()[:1] == b"{":
            return True
        at = event.find(b'"usage"', at + 7)
    return False


def _data_of(event: bytes) -> bytes | None:
    parts = [line[5:].lstrip(b" ") for line in event.split(b"\n") if line.startswith(b"data:")]
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else b"\n".join(parts)


USAGE_NULL = b',"usage":null'


def is_usage_only_chunk(event: bytes) -> bool:
    """The extra final chunk OpenAI sends for include_usage: empty choices and a usage object."""
    if b'"usage":{' not in event and b'"usage": {' not in event:
        return False
    payload = _data_of(event)
    if payload is None:
        return False
    try:
        doc = _decode(payload)
    except msgspec.DecodeError:
        return False
    return isinstance(doc, dict) and doc.get("choices") == [] and isinstance(doc.get("usage"), dict)


def strip_usage_null(event: bytes) -> bytes:
    """With include_usage every other chunk carries ``"usage":null``; a client that did not ask
    for usage never sees that field. The pattern can only match structurally: inside a JSON
    string the quotes would be escaped."""
    return event.replace(USAGE_NULL, b"") if USAGE_NULL in event else event

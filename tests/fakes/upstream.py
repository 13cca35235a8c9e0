"""A fake OpenAI + Anthropic upstream of our own, speaking both wire formats.

Endpoints: OpenAI ``/v1/chat/completions`` (stream or not, honouring
``stream_options.include_usage`` as OpenAI does: every chunk then carries ``"usage":null`` and
one last chunk has empty ``choices`` and the usage), ``/v1/responses`` (stream or not),
``/v1/embeddings`` (float or base64), and Anthropic ``/v1/messages`` (stream or not, with
message_start / content_block_* / message_delta / message_stop events).

Responses are deterministic functions of the request (ids, text, usage), so a direct call
and a call through the gateway can be compared byte for byte. Test-only request headers:

- ``x-fake-usage: input=12,output=5,cached=3,reasoning=2,cache_write=1`` sets exact usage;
- ``x-fake-status: 429`` answers with that provider-shaped error;
- ``x-fake-latency-ms: 50`` delays the answer; ``x-fake-chunk-delay-ms`` delays each chunk;
- ``x-fake-chunks: 40`` sets the number of content chunks.

Every request's method, path, query, headers and body is recorded: ``GET /_fake/requests``
returns them, ``DELETE /_fake/requests`` clears them; ``GET /_fake/aborted`` lists the
``x-request-id`` of streams whose client went away.

Run as its own process: ``python -m tests.fakes.upstream --port N [--latency-ms X]``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import struct
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import msgspec
from aiohttp import web

CREATED = 1_700_000_000
_enc = msgspec.json.encode


@dataclass
class FakeState:
    latency_ms: float = 0.0
    record: bool = True
    requests: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=20_000))
    aborted: list[str] = field(default_factory=list)


STATE = web.AppKey("fake_state", FakeState)


@dataclass(frozen=True)
class FakeUsage:
    input: int
    output: int
    cached: int = 0
    reasoning: int = 0
    cache_write: int = 0


def _digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()[:24]


def _usage(request: web.Request, prompt: Any, n_words: int) -> FakeUsage:
    raw = request.headers.get("x-fake-usage")
    if raw:
        vals = {k.strip(): int(v) for k, v in (p.split("=") for p in raw.split(","))}
        return FakeUsage(
            vals.get("input", 0),
            vals.get("output", 0),
            vals.get("cached", 0),
            vals.get("reasoning", 0),
            vals.get("cache_write", 0),
        )
    return FakeUsage(input=len(_enc(prompt)) // 4 + 3, output=n_words + 1)


def _words(request: web.Request, prompt: Any) -> list[str]:
    n = int(request.headers.get("x-fake-chunks") or 3 + len(_enc(prompt)) % 5)
    return [("" if i == 0 else " ") + f"w{i}" for i in range(n)]


def _openai_error(status: int) -> web.Response:
    body = {"error": {"message": f"fake upstream error {status}", "type": "fake_error", "param": None, "code": None}}
    return web.json_response(body, status=status)


def _anthropic_error(status: int) -> web.Response:
    return web.json_response(
        {"type": "error", "error": {"type": "fake_error", "message": f"fake upstream error {status}"}}, status=status
    )


async def _common(request: web.Request, provider: str) -> tuple[dict[str, Any], bytes] | web.Response:
    state = request.app[STATE]
    body = await request.read()
    if state.record:
        state.requests.append(
            {
                "method": request.method,
                "path": request.path,
                "query": request.raw_path.partition("?")[2],
                "headers": dict(request.headers),
                "body": body.decode(errors="replace"),
            }
        )
    err = _anthropic_error if provider == "anthropic" else _openai_error
    # Anthropic accepts x-api-key or (newer SDKs) Authorization: Bearer.
    bearer = request.headers.get("Authorization", "").startswith("Bearer ")
    if provider == "anthropic" and not (request.headers.get("x-api-key") or bearer):
        return err(401)
    if provider == "openai" and not bearer:
        return err(401)
    delay = float(request.headers.get("x-fake-latency-ms") or state.latency_ms)
    if delay:
        await asyncio.sleep(delay / 1000)
    if request.headers.get("x-fake-status"):
        return err(int(request.headers["x-fake-status"]))
    try:
        doc = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return err(400)
    if not isinstance(doc, dict):
        return err(400)
    return doc, body


class _Stream:
    def __init__(self, request: web.Request) -> None:
        self.request = request
        self.delay = float(request.headers.get("x-fake-chunk-delay-ms") or 0) / 1000
        self.resp = web.StreamResponse(headers={"Content-Type": "text/event-stream; charset=utf-8"})

    async def start(self) -> None:
        await self.resp.prepare(self.request)

    async def send(self, data: bytes, event: str | None = None) -> None:
        if self.delay:
            await asyncio.sleep(self.delay)
        head = f"event: {event}\n".encode() if event else b""
        await self.resp.write(head + b"data: " + data + b"\n\n")


async def _guard(request: web.Request, coro: Any) -> web.StreamResponse:
    try:
        result: web.StreamResponse = await coro
    except (ConnectionResetError, asyncio.CancelledError):
        request.app[STATE].aborted.append(request.headers.get("x-request-id", ""))
        raise
    return result


async def chat(request: web.Request) -> web.StreamResponse:
    got = await _common(request, "openai")
    if isinstance(got, web.Response):
        return got
    doc, _ = got
    messages = doc.get("messages")
    words = _words(request, messages)
    u = _usage(request, messages, len(words))
    cid = f"chatcmpl-{_digest(_enc([doc.get('model'), messages]))}"
    model = doc.get("model", "gpt-4o-mini")
    usage = {
        "prompt_tokens": u.input,
        "completion_tokens": u.output,
        "total_tokens": u.input + u.output,
        "prompt_tokens_details": {"cached_tokens": u.cached, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": u.reasoning, "audio_tokens": 0},
    }
    if not doc.get("stream"):
        return web.json_response(
            {
                "id": cid,
                "object": "chat.completion",
                "created": CREATED,
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "".join(words), "refusal": None},
                        "logprobs": None,
                        "finish_reason": "stop",
                    }
                ],
                "usage": usage,
                "system_fingerprint": "fp_fake",
            }
        )
    opts = doc.get("stream_options") or {}
    include_usage = isinstance(opts, dict) and opts.get("include_usage") is True

    async def run() -> web.StreamResponse:
        s = _Stream(request)
        await s.start()

        def chunk(delta: dict[str, Any], finish: str | None) -> bytes:
            c: dict[str, Any] = {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": CREATED,
                "model": model,
                "system_fingerprint": "fp_fake",
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
            }
            if include_usage:
                c["usage"] = None
            return _enc(c)

        await s.send(chunk({"role": "assistant", "content": "", "refusal": None}, None))
        for w in words:
            await s.send(chunk({"content": w}, None))
        await s.send(chunk({}, "stop"))
        if include_usage:
            last = {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": CREATED,
                "model": model,
                "system_fingerprint": "fp_fake",
                "choices": [],
                "usage": usage,
            }
            await s.send(_enc(last))
        await s.send(b"[DONE]")
        await s.resp.write_eof()
        return s.resp

    return await _guard(request, run())


def _response_obj(rid: str, model: str, text: str, u: FakeUsage | None, status: str) -> dict[str, Any]:
    return {
        "id": rid,
        "object": "response",
        "created_at": CREATED,
        "status": status,
        "model": model,
        "output": []
        if u is None
        else [
            {
                "type": "message",
                "id": f"msg_{rid[5:]}",
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": text, "annotations": []}],
            }
        ],
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "usage": None
        if u is None
        else {
            "input_tokens": u.input,
            "input_tokens_details": {"cached_tokens": u.cached},
            "output_tokens": u.output,
            "output_tokens_details": {"reasoning_tokens": u.reasoning},
            "total_tokens": u.input + u.output,
        },
    }


async def responses(request: web.Request) -> web.StreamResponse:
    got = await _common(request, "openai")
    if isinstance(got, web.Response):
        return got
    doc, _ = got
    prompt = doc.get("input")
    words = _words(request, prompt)
    u = _usage(request, prompt, len(words))
    rid = f"resp_{_digest(_enc([doc.get('model'), prompt]))}"
    model = doc.get("model", "gpt-4o-mini")
    text = "".join(words)
    if not doc.get("stream"):
        return web.json_response(_response_obj(rid, model, text, u, "completed"))

    async def run() -> web.StreamResponse:
        s = _Stream(request)
        await s.start()
        seq = 0
        created = {
            "type": "response.created",
            "sequence_number": seq,
            "response": _response_obj(rid, model, "", None, "in_progress"),
        }
        await s.send(_enc(created), "response.created")
        for w in words:
            seq += 1
            ev = {
                "type": "response.output_text.delta",
                "sequence_number": seq,
                "item_id": f"msg_{rid[5:]}",
                "output_index": 0,
                "content_index": 0,
                "delta": w,
                "logprobs": [],
            }
            await s.send(_enc(ev), "response.output_text.delta")
        seq += 1
        done = {
            "type": "response.completed",
            "sequence_number": seq,
            "response": _response_obj(rid, model, text, u, "completed"),
        }
        await s.send(_enc(done), "response.completed")
        await s.resp.write_eof()
        return s.resp

    return await _guard(request, run())


async def embeddings(request: web.Request) -> web.StreamResponse:
    got = await _common(request, "openai")
    if isinstance(got, web.Response):
        return got
    doc, _ = got
    inputs = doc.get("input")
    items = inputs if isinstance(inputs, list) and inputs and isinstance(inputs[0], str) else [inputs]
    u = _usage(request, inputs, 0)
    data = []
    for i, item in enumerate(items):
        h = hashlib.sha256(_enc(item)).digest()
        vec = [b / 255.0 for b in h[:8]]
        emb: Any = vec
        if doc.get("encoding_format") == "base64":
            emb = base64.b64encode(struct.pack(f"<{len(vec)}f", *vec)).decode()
        data.append({"object": "embedding", "index": i, "embedding": emb})
    return web.json_response(
        {
            "object": "list",
            "data": data,
            "model": doc.get("model", "text-embedding-3-small"),
            "usage": {"prompt_tokens": u.input, "total_tokens": u.input},
        }
    )


async def messages(request: web.Request) -> web.StreamResponse:
    got = await _common(request, "anthropic")
    if isinstance(got, web.Response):
        return got
    doc, _ = got
    prompt = doc.get("messages")
    words = _words(request, prompt)
    u = _usage(request, prompt, len(words))
    mid = f"msg_{_digest(_enc([doc.get('model'), prompt]))}"
    model = doc.get("model", "claude-3-5-haiku-latest")
    usage = {
        "input_tokens": u.input,
        "output_tokens": u.output,
        "cache_creation_input_tokens": u.cache_write,
        "cache_read_input_tokens": u.cached,
    }
    if not doc.get("stream"):
        return web.json_response(
            {
                "id": mid,
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": [{"type": "text", "text": "".join(words)}],
                "stop_reason": "end_turn",
                "stop_sequence": None,
                "usage": usage,
            }
        )

    async def run() -> web.StreamResponse:
        s = _Stream(request)
        await s.start()
        start_msg = {
            "id": mid,
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {**usage, "output_tokens": 1},
        }
        await s.send(_enc({"type": "message_start", "message": start_msg}), "message_start")
        block = {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
        await s.send(_enc(block), "content_block_start")
        await s.send(_enc({"type": "ping"}), "ping")
        for w in words:
            delta = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": w}}
            await s.send(_enc(delta), "content_block_delta")
        await s.send(_enc({"type": "content_block_stop", "index": 0}), "content_block_stop")
        md = {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": {"output_tokens": u.output},
        }
        await s.send(_enc(md), "message_delta")
        await s.send(_enc({"type": "message_stop"}), "message_stop")
        await s.resp.write_eof()
        return s.resp

    return await _guard(request, run())


async def list_requests(request: web.Request) -> web.Response:
    return web.json_response(list(request.app[STATE].requests))


async def clear_requests(request: web.Request) -> web.Response:
    request.app[STATE].requests.clear()
    request.app[STATE].aborted.clear()
    return web.json_response({"cleared": True})


async def list_aborted(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATE].aborted)


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def create_fake_app(latency_ms: float = 0.0, record: bool = True) -> web.Application:
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app[STATE] = FakeState(latency_ms=latency_ms, record=record)
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_post("/v1/responses", responses)
    app.router.add_post("/v1/embeddings", embeddings)
    app.router.add_post("/v1/messages", messages)
    app.router.add_get("/_fake/requests", list_requests)
    app.router.add_delete("/_fake/requests", clear_requests)
    app.router.add_get("/_fake/aborted", list_aborted)
    app.router.add_get("/healthz", healthz)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description="fake OpenAI/Anthropic upstream")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--no-record", action="store_true", help="do not record requests (benchmarks)")
    args = parser.parse_args()
    import uvloop

    web.run_app(
        create_fake_app(args.latency_ms, record=not args.no_record),
        host=args.host,
        port=args.port,
        access_log=None,
        print=None,
        loop=uvloop.new_event_loop(),
        handler_cancellation=True,
    )


if __name__ == "__main__":
    main()

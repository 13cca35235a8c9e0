"""Forwarding one call upstream: credentials swapped, body and stream passed through, usage
read on the way, lifecycle events emitted before and after."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import quote

import aiohttp
import msgspec
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

from services.common.events import CallFinished, CallOutcome, CallStarted, PayloadCaptured, new_id, utcnow
from services.gateway import keys
from services.gateway.admission import Admitted, CallContext
from services.gateway.errors import (
    BodyTooLarge,
    CallRefused,
    GatewayError,
    ProviderName,
    UpstreamTimeout,
    UpstreamUnreachable,
    error_response,
)
from services.gateway.http_client import HTTPClientError, Response
from services.gateway.pricing import cost_of
from services.gateway.session_headers import NO_SESSION, SessionHeaders, parse_session_headers
from services.gateway.upstream import Upstream
from services.gateway.usage import SSEParser, Usage, from_body, is_usage_only_chunk, strip_usage_null

log = logging.getLogger(__name__)

CALL_ID_HEADER = "X-AgentWatch-Call-Id"
SPENT_HEADER = "X-AgentWatch-Session-Spent-Usd"
REMAINING_HEADER = "X-AgentWatch-Session-Remaining-Usd"
# Status recorded (never sent) for a client that went away mid-call, as nginx does.
CLIENT_CLOSED = 499

_HOP_BY_HOP = frozenset(
    h.lower()
    for h in (
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
        # The gateway has read the whole body already: a 100-continue handshake is ours, not upstream's.
        "expect",
    )
)
_CLIENT_AUTH = frozenset(("authorization", "x-api-key", "accept-encoding"))
_RESPONSE_DROP = frozenset(("content-length", "transfer-encoding", "connection", "keep-alive", "content-encoding"))

_decode = msgspec.json.decode
_encode = msgspec.json.encode


def classify(provider: ProviderName, path: str) -> str:
    p = path.strip("/")
    if provider == "anthropic":
        return "messages" if p == "messages" else p
    if p == "chat/completions":
        return "chat"
    if p in ("responses", "embeddings", "completions"):
        return p
    return p


def fingerprint(endpoint: str, body: dict[str, Any] | None) -> str | None:
    """A stable hash of what the model is asked (messages / input), for repetition detection."""
    if body is None:
        return None
    src: Any
    if endpoint in ("chat", "messages"):
        src = [body.get("system"), body.get("messages")] if "system" in body else body.get("messages")
    elif endpoint in ("responses", "embeddings"):
        src = [body.get("instructions"), body.get("input")] if "instructions" in body else body.get("input")
    elif endpoint == "completions":
        src = body.get("prompt")
    else:
        return None
    if src is None:
        return None
    return hashlib.blake2b(_encode(src), digest_size=16).hexdigest()


async def _read_body(request: web.Request, limit: int) -> bytes:
    if request.content_length is not None and request.content_length > limit:
        raise BodyTooLarge(f"request body exceeds the gateway's limit of {limit} bytes")
    content = request.content
    parts: list[bytes] = []
    size = 0
    while True:
        chunk = await content.readany()
        if not chunk:
            break
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"request body exceeds the gateway's limit of {limit} bytes")
        parts.append(chunk)
        if content.at_eof():
            break  # a body that came in one read needs no second wait to learn it ended
    return parts[0] if len(parts) == 1 else b"".join(parts)


@lru_cache(maxsize=1024)
def _quote_path(path: str) -> str:
    """The route's path is percent-decoded; encode it again for the request line (a handful of
    distinct paths in practice, hence the cache)."""
    return quote(path, safe="/:@!$&'()*+,;=~")


def _upstream_headers(headers: CIMultiDictProxy[str], up: Upstream) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for name, value in headers.items():
        low = name.lower()
        if low in _HOP_BY_HOP or low in _CLIENT_AUTH or low.startswith("x-agentwatch-"):
            continue
        out.append((name, value))
    if up.default_headers:
        present = {name.lower() for name, _ in out}
        out.extend((name, value) for name, value in up.default_headers if name not in present)
    # The client's credentials and Accept-Encoding were dropped above: these are the only ones.
    out.extend(up.auth_headers)
    out.append(("Accept-Encoding", "identity"))
    return out


# What a response header name means to the proxy: its str form, dropped?, the content type?
_HeaderName = tuple[str, bool, bool]
# Providers send a few dozen distinct header names; beyond this many, names are not cached.
_NAME_CACHE_MAX = 512


def _header_name(raw: bytes, cache: dict[bytes, _HeaderName]) -> _HeaderName:
    known = cache.get(raw)
    if known is None:
        name = raw.decode("latin-1")  # a token: ASCII, llhttp checked it
        low = name.lower()
        known = (name, low in _RESPONSE_DROP, low == "content-type")
        if len(cache) < _NAME_CACHE_MAX:
            cache[raw] = known
    return known


def _response_headers(
    raw: list[tuple[bytes, bytes]], call_id: str, admitted: Admitted, names: dict[bytes, _HeaderName]
) -> tuple[CIMultiDict[str], str]:
    """The headers passed to the client, and the upstream's content type."""
    out: list[tuple[str, str]] = []
    ctype = ""
    for raw_name, raw_value in raw:
        name, drop, is_ctype = _header_name(raw_name, names)
        if drop:
            continue
        # aiohttp writes header values as UTF-8; an invalid byte becomes U+FFFD, never an error.
        value = raw_value.decode("utf-8", "replace")
        if is_ctype and not ctype:
            ctype = value
        out.append((name, value))
    out.append((CALL_ID_HEADER, call_id))
    if admitted.spent_usd is not None:
        out.append((SPENT_HEADER, str(admitted.spent_usd)))
    if admitted.remaining_usd is not None:
        out.append((REMAINING_HEADER, str(admitted.remaining_usd)))
    # Built once from a list: web.Response keeps a CIMultiDict as given.
    return CIMultiDict(out), ctype


@dataclass(slots=True)
class _Outcome:
    status: int = 0
    outcome: CallOutcome = "ok"
    usage: Usage | None = None
    ttft_ms: float | None = None
    response_capture: bytes | None = None


class Proxy:
    """Handles ``ANY /v1/proxy/{provider}/{path}`` for one provider."""

    def __init__(self, provider: ProviderName) -> None:
        self.provider = provider
        self._header_names: dict[bytes, _HeaderName] = {}

    async def handle(self, request: web.Request) -> web.StreamResponse:
        app = request.app
        settings = app[keys.SETTINGS]
        metrics = app[keys.METRICS]
        t0 = time.perf_counter()
        provider = self.provider
        try:
            tenant = app[keys.AUTH].authenticate(request.headers, allow_x_api_key=provider == "anthropic")
            session = parse_session_headers(request.headers)
            up = app[keys.UPSTREAMS].get(provider)
            body = await _read_body(request, settings.max_body_bytes)
        except GatewayError as err:
            metrics.count_request(provider, err.status)
            return error_response(provider, err)
        try:
            return await self._forward(request, tenant=tenant, session=session, up=up, body=body, t0=t0)
        except GatewayError as err:
            metrics.count_request(provider, err.status)
            return error_response(provider, err)
        except Exception:
            # A bug of ours: logged with its trace here, never sent to the client.
            log.exception("unexpected error proxying a %s call", provider)
            metrics.count_request(provider, 500)
            return error_response(provider, GatewayError("internal gateway error"))

    async def _forward(
        self,
        request: web.Request,
        *,
        tenant: str,
        session: SessionHeaders,
        up: Upstream,
        body: bytes,
        t0: float,
    ) -> web.StreamResponse:
        app = request.app
        settings = app[keys.SETTINGS]
        metrics = app[keys.METRICS]
        emitter = app[keys.EMITTER]
        topics = app[keys.TOPICS]
        gateway_id = app[keys.GATEWAY_ID]
        provider = self.provider
        started_at = utcnow()

        path = request.match_info["path"]
        if provider == "anthropic" and path.startswith("v1/"):
            path = path[3:]
        endpoint = classify(provider, path)
        parsed: dict[str, Any] | None = None
        if body and request.method == "POST":
            try:
                doc = _decode(body)
            except msgspec.DecodeError:
                doc = None  # not ours to judge: upstream answers it with its own error
            parsed = doc if isinstance(doc, dict) else None
        model = parsed.get("model") if parsed is not None else None
        model = model if isinstance(model, str) else None
        streamed = parsed is not None and parsed.get("stream") is True
        hide_usage = False
        if streamed and provider == "openai" and endpoint == "chat" and parsed is not None:
            opts = parsed.get("stream_options")
            if not (isinstance(opts, dict) and opts.get("include_usage") is True):
                # Ask for usage; the client will not see the usage-only chunk it did not ask for.
                rewritten = dict(parsed)
                rewritten["stream_options"] = {**(opts if isinstance(opts, dict) else {}), "include_usage": True}
                body = _encode(rewritten)
                hide_usage = True

        call_id = new_id()
        iteration = app[keys.ITERATIONS].assign(tenant, session.session_id, session.iteration)
        call = CallContext(call_id, tenant, provider, endpoint, model, streamed, session, iteration, parsed)
        fp = fingerprint(endpoint, parsed)
        common: dict[str, Any] = {
            "tenant": tenant,
            "session_id": session.session_id,
            "call_id": call_id,
            "iteration": iteration,
            "project": session.project,
            "team": session.team,
            "provider": provider,
            "endpoint": endpoint,
            "streamed": streamed,
            "fingerprint": fp,
            "gateway_id": gateway_id,
        }
        admission = app[keys.ADMISSION]
        try:
            admitted = await admission.admit(call)
        except CallRefused as err:
            refused = CallFinished(
                **common,
                model=model,
                status_code=err.status,
                outcome="refused",
                started_at=started_at,
                price_known=model is not None,
            )
            emitter.emit(topics.calls, refused)
            await admission.settle(call, refused)
            metrics.count_request(provider, err.status)
            return error_response(provider, err, {CALL_ID_HEADER: call_id, **err.figure_headers()})

        emitter.emit(
            topics.calls,
            CallStarted(**common, model=model, reserved_usd=admitted.reserved_usd, budget_usd=admitted.budget_usd),
        )
        result = _Outcome()
        try:
            return await self._exchange(
                request,
                up=up,
                path=path,
                body=body,
                call_id=call_id,
                admitted=admitted,
                hide_usage=hide_usage,
                t0=t0,
                result=result,
            )
        except GatewayError as err:
            return error_response(provider, err, {CALL_ID_HEADER: call_id})
        except asyncio.CancelledError:
            # The client went away while we waited upstream; leaving the context aborts upstream.
            result.outcome = "client_disconnected"
            result.status = CLIENT_CLOSED
            raise
        finally:
            usage = result.usage or Usage(model=model)
            if usage.model is None:
                usage.model = model
            # Unknown model: no cost and price_known False (never $0); a known model that used
            # nothing (an upstream error) costs exactly $0.
            cost = cost_of(provider, usage)
            finished = CallFinished(
                **common,
                model=usage.model,
                status_code=result.status,
                outcome=result.outcome,
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
                cached_tokens=usage.cached_tokens,
                reasoning_tokens=usage.reasoning_tokens,
                cost_usd=cost,
                price_known=cost is not None,
                reserved_usd=admitted.reserved_usd,
                started_at=started_at,
                latency_ms=(time.perf_counter() - t0) * 1000.0,
                ttft_ms=result.ttft_ms,
            )
            emitter.emit(topics.calls, finished)
            if settings.capture_payloads:
                emitter.emit(
                    topics.payloads, _capture(common, body, result.response_capture, settings.capture_max_bytes)
                )
            metrics.count_request(provider, result.status)
            metrics.observe_latency(provider, time.perf_counter() - t0)
            try:
                await admission.settle(call, finished)
            except Exception:
                # A broken settle must not turn a served call into an error.
                log.exception("admission settle failed for call %s", call_id)

    async def _exchange(
        self,
        request: web.Request,
        *,
        up: Upstream,
        path: str,
        body: bytes,
        call_id: str,
        admitted: Admitted,
        hide_usage: bool,
        t0: float,
        result: _Outcome,
    ) -> web.StreamResponse:
        app = request.app
        settings = app[keys.SETTINGS]
        metrics = app[keys.METRICS]
        capture = settings.capture_payloads
        # The client's query string is forwarded as it came, without re-encoding.
        qs = request.raw_path.partition("?")[2]
        target = f"/{_quote_path(path)}?{qs}" if qs else f"/{_quote_path(path)}"
        headers = _upstream_headers(request.headers, up)
        try:
            upstream = await up.client.request(request.method, target, headers, body)
        except TimeoutError as exc:
            result.status, result.outcome = 504, "upstream_timeout"
            raise UpstreamTimeout(f"{self.provider} did not answer in time") from exc
        except HTTPClientError as exc:
            result.status, result.outcome = 502, "upstream_unreachable"
            raise UpstreamUnreachable(f"{self.provider} is unreachable: {type(exc).__name__}") from exc
        try:
            result.status = upstream.status
            metrics.count_upstream(self.provider, upstream.status)
            if upstream.status >= 400:
                result.outcome = "upstream_error"
            out_headers, ctype = _response_headers(upstream.headers, call_id, admitted, self._header_names)
            if not ctype.startswith("text/event-stream"):
                try:
                    data = await upstream.read()
                except TimeoutError as exc:
                    result.status, result.outcome = 504, "upstream_timeout"
                    raise UpstreamTimeout(f"{self.provider} did not finish its answer in time") from exc
                except HTTPClientError as exc:
                    result.status, result.outcome = 502, "upstream_unreachable"
                    raise UpstreamUnreachable(f"{self.provider} broke off its answer") from exc
                if upstream.status < 400 and "json" in ctype:
                    result.usage = from_body(self.provider, data)
                if capture:
                    result.response_capture = data
                return web.Response(status=upstream.status, body=data, headers=out_headers)
            return await self._stream(
                request,
                upstream=upstream,
                headers=out_headers,
                hide_usage=hide_usage,
                t0=t0,
                result=result,
                capture=capture,
            )
        finally:
            # Back to the pool only if the body was read to the end; otherwise closed.
            upstream.release()

    async def _stream(
        self,
        request: web.Request,
        *,
        upstream: Response,
        headers: CIMultiDict[str],
        hide_usage: bool,
        t0: float,
        result: _Outcome,
        capture: bool,
    ) -> web.StreamResponse:
        response = _CoalescingStreamResponse(status=upstream.status, headers=headers)
        parser = SSEParser(self.provider)
        result.usage = parser.usage
        captured: list[bytes] = []
        await response.prepare(request)
        # Every chunk is written the moment it arrives; the head goes with the first chunk and
        # the end with the last when they are already here, saving a socket write each (on a
        # short stream those two writes were a third of the gateway's CPU).
        chunk = upstream.read_nowait()
        try:
            if not chunk and not upstream.body_done:
                await response.write(b"")  # no body yet: the head now, as upstream sent it
            while True:
                if not chunk and not upstream.body_done:
                    chunk = await upstream.read_chunk()
                out = b""
                if chunk:
                    if result.ttft_ms is None:
                        result.ttft_ms = (time.perf_counter() - t0) * 1000.0
                    if hide_usage:
                        # Whole events only: the usage-only chunk is dropped, `"usage":null` removed.
                        out = b"".join(strip_usage_null(ev) for ev in parser.feed(chunk) if not is_usage_only_chunk(ev))
                    else:
                        parser.feed(chunk)
                        out = chunk
                    if capture:
                        captured.append(chunk)
                    chunk = b""
                if upstream.body_done:
                    rest = parser.flush()
                    if rest and hide_usage:
                        out += rest
                    await response.write_eof(out)
                    break
                if out:
                    await response.write(out)
        except (ConnectionResetError, aiohttp.ClientConnectionResetError):
            # The client went away: releasing the unfinished upstream response closes its connection.
            result.outcome, result.status = "client_disconnected", CLIENT_CLOSED
        except TimeoutError:
            result.outcome = "upstream_timeout"
        except HTTPClientError:
            result.outcome = "upstream_unreachable"
        if capture:
            result.response_capture = b"".join(captured)
        return response


class _CoalescingStreamResponse(web.StreamResponse):
    """Holds its head until the first body write, as aiohttp's own ``web.Response`` does (the
    class attribute is aiohttp's switch for it; an aiohttp without it sends the head at once)."""

    _send_headers_immediately = False


def _capture(common: dict[str, Any], request_body: bytes, response_body: bytes | None, limit: int) -> PayloadCaptured:
    truncated = len(request_body) > limit or (response_body is not None and len(response_body) > limit)
    return PayloadCaptured(
        tenant=common["tenant"],
        session_id=common["session_id"],
        call_id=common["call_id"],
        provider=common["provider"],
        endpoint=common["endpoint"],
        request_body=request_body[:limit].decode(errors="replace"),
        response_body=None if response_body is None else response_body[:limit].decode(errors="replace"),
        truncated=truncated,
    )


__all__ = ["NO_SESSION", "Proxy"]

"""``POST /v1/ingest``: usage of calls the SDK made straight to a provider (direct mode).

The gateway trusts the token counts (it cannot see the call) but nothing else: the tenant
comes from the client token, every field is validated, the cost is priced here from the
same genai-prices data as proxied calls, and the events are the same ``CallFinished``
(``source="ingest"``) so budgets, loop detection and storage treat both alike. A record
sent twice (the SDK retries) carries the same call id; the budget fold and the sink
deduplicate by call id.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec
from aiohttp import web

from services.common.events import CallFinished
from services.gateway import keys
from services.gateway.errors import AuthenticationFailed, GatewayError
from services.gateway.pricing import cost_of
from services.gateway.usage import Usage

MAX_CALLS_PER_REQUEST = 1000
_Label = Annotated[str, msgspec.Meta(min_length=1, max_length=128, pattern=r"^[\x20-\x7e]+$")]
_Tokens = Annotated[int, msgspec.Meta(ge=0, le=10**9)]


class IngestedCall(msgspec.Struct, forbid_unknown_fields=False):
    call_id: Annotated[str, msgspec.Meta(min_length=8, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
    provider: Literal["openai", "anthropic"]
    endpoint: Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
    status_code: Annotated[int, msgspec.Meta(ge=100, le=599)]
    model: Annotated[str, msgspec.Meta(min_length=1, max_length=256)] | None = None
    session_id: _Label | None = None
    iteration: Annotated[int, msgspec.Meta(ge=0, le=10**9)] | None = None
    project: _Label | None = None
    team: _Label | None = None
    streamed: bool = False
    input_tokens: _Tokens = 0
    output_tokens: _Tokens = 0
    cached_tokens: _Tokens = 0
    reasoning_tokens: _Tokens = 0
    latency_ms: Annotated[float, msgspec.Meta(ge=0, le=86_400_000)] = 0.0
    started_at: datetime | None = None


class IngestBatch(msgspec.Struct):
    calls: Annotated[list[IngestedCall], msgspec.Meta(min_length=1, max_length=MAX_CALLS_PER_REQUEST)]


_decoder = msgspec.json.Decoder(IngestBatch)


class InvalidIngest(GatewayError):
    status = 400
    code = "invalid_ingest"
    openai_type = "invalid_request_error"
    anthropic_type = "invalid_request_error"


def _error(err: GatewayError) -> web.Response:
    body = {"error": {"message": err.message, "type": err.openai_type, "code": err.code}}
    return web.json_response(body, status=err.status)


def to_event(tenant: str, call: IngestedCall, gateway_id: str) -> CallFinished:
    if call.started_at is not None and call.started_at.tzinfo is None:
        raise InvalidIngest(f"call {call.call_id}: started_at needs a timezone")
    usage = Usage(
        input_tokens=call.input_tokens,
        output_tokens=call.output_tokens,
        cached_tokens=min(call.cached_tokens, call.input_tokens),
        reasoning_tokens=call.reasoning_tokens,
        model=call.model,
        seen=True,
    )
    cost = cost_of(call.provider, usage)
    return CallFinished(
        tenant=tenant,
        session_id=call.session_id,
        call_id=call.call_id,
        iteration=call.iteration,
        project=call.project,
        team=call.team,
        provider=call.provider,
        model=call.model,
        endpoint=call.endpoint,
        streamed=call.streamed,
        status_code=call.status_code,
        outcome="ok" if call.status_code < 400 else "upstream_error",
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cached_tokens=usage.cached_tokens,
        reasoning_tokens=usage.reasoning_tokens,
        cost_usd=cost,
        price_known=cost is not None,
        started_at=call.started_at,
        latency_ms=call.latency_ms,
        source="ingest",
        gateway_id=gateway_id,
    )


async def ingest(request: web.Request) -> web.Response:
    app = request.app
    try:
        tenant = app[keys.AUTH].authenticate(request.headers, allow_x_api_key=False)
        raw = await request.read()
        try:
            batch = _decoder.decode(raw)
        except msgspec.ValidationError as exc:
            raise InvalidIngest(f"invalid ingest record: {exc}") from exc
        except msgspec.DecodeError as exc:
            raise InvalidIngest('the body must be JSON: {"calls": [...]}') from exc
        # Validate every record before emitting any, so a bad batch changes nothing.
        events = [to_event(tenant, call, app[keys.GATEWAY_ID]) for call in batch.calls]
    except (AuthenticationFailed, InvalidIngest) as err:
        return _error(err)
    emitter, topic = app[keys.EMITTER], app[keys.TOPICS].calls
    for event in events:
        emitter.emit(topic, event)
    return web.json_response({"accepted": len(events)}, status=202)


def setup_routes(app: web.Application) -> None:
    app.router.add_post("/v1/ingest", ingest)

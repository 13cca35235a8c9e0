"""``GET /v1/budget-check`` (tenant from the client token) and the admin API (admin token).

Budget-check is answered from this gateway's local state, no network hop. Admin changes are
Control events on the controls topic: the budget workers fold them into the table, so every
gateway sees them through its replica.
"""

from __future__ import annotations

import hmac
from decimal import Decimal, InvalidOperation
from typing import Any

import msgspec
from aiohttp import web

from services.common.events import Control
from services.gateway import keys
from services.gateway.budget import SessionView
from services.gateway.errors import AuthenticationFailed, GatewayError, error_response

MAX_ID = 128
_json_encoder = msgspec.json.Encoder()


class BadRequest(GatewayError):
    status = 400
    code = "invalid_request"
    openai_type = "invalid_request_error"
    anthropic_type = "invalid_request_error"


class Forbidden(GatewayError):
    status = 403
    code = "forbidden"
    openai_type = "permission_error"
    anthropic_type = "permission_error"


def _money(v: Decimal | None) -> str | None:
    return None if v is None else str(v)


def _body(session_id: str, view: SessionView) -> dict[str, Any]:
    remaining = view.remaining_usd
    blocked = view.paused or (remaining is not None and remaining <= 0)
    return {
        "session_id": session_id,
        "allowed": not blocked,
        "spent_usd": _money(view.spent_usd),
        "reserved_usd": _money(view.reserved_usd),
        "budget_usd": _money(view.budget_usd),
        "remaining_usd": _money(remaining),
        "iterations": view.iterations,
        "blocked": blocked,
        "paused": view.paused,
        "pause_reason": view.pause_reason,
        "state_known": view.known,
    }


def _session_id(value: str | None) -> str:
    if not value or len(value) > MAX_ID or not (value.isascii() and value.isprintable()):
        raise BadRequest(f"session_id must be 1-{MAX_ID} printable ASCII characters")
    return value


async def budget_check(request: web.Request) -> web.Response:
    app = request.app
    try:
        tenant = app[keys.AUTH].authenticate(request.headers, allow_x_api_key=True)
        session_id = _session_id(request.query.get("session_id"))
    except GatewayError as err:
        return error_response("openai", err)
    view = app[keys.BUDGET].view(tenant, session_id)
    # msgspec rather than json_response's json.dumps: the encoder was a fifth of the handler.
    return web.Response(body=_json_encoder.encode(_body(session_id, view)), content_type="application/json")


def _require_admin(request: web.Request) -> None:
    expected = request.app[keys.SETTINGS].admin_token
    auth = request.headers.get("Authorization", "")
    scheme, _, token = auth.partition(" ")
    if expected is None:
        raise Forbidden("the admin API is disabled (AGENTWATCH_ADMIN_TOKEN is not set)")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        token.strip().encode(), expected.get_secret_value().encode()
    ):
        raise AuthenticationFailed("invalid admin token")


async def _json(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    if not raw:
        return {}
    try:
        doc = msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        raise BadRequest("body must be a JSON object") from exc
    if not isinstance(doc, dict):
        raise BadRequest("body must be a JSON object")
    return doc


async def _control(request: web.Request, tenant: str, session_id: str, action: str) -> web.Response:
    body = await _json(request)
    budget: Decimal | None = None
    if action == "set_budget":
        try:
            budget = Decimal(str(body["budget_usd"]))
        except (KeyError, InvalidOperation) as exc:
            raise BadRequest("budget_usd (a decimal number) is required") from exc
        if not budget.is_finite() or budget < 0:
            raise BadRequest("budget_usd must be a non-negative number")
    reason = body.get("reason")
    if reason is not None and not isinstance(reason, str):
        raise BadRequest("reason must be a string")
    event = Control(
        tenant=tenant,
        session_id=session_id,
        action=action,  # type: ignore[arg-type]
        budget_usd=budget,
        reason=reason,
        actor="admin",
    )
    request.app[keys.EMITTER].emit(request.app[keys.TOPICS].controls, event)
    return web.json_response({"accepted": True, "event_id": event.event_id, "action": action}, status=202)


async def admin_session(request: web.Request) -> web.Response:
    try:
        _require_admin(request)
        tenant = _session_id(request.match_info["tenant"])
        session_id = _session_id(request.match_info["session_id"])
        action = request.match_info.get("action")
        if request.method == "GET":
            view = request.app[keys.BUDGET].view(tenant, session_id)
            return web.json_response({"tenant": tenant, **_body(session_id, view)})
        actions = {"budget": "set_budget", "pause": "pause", "resume": "resume"}
        if action not in actions:
            raise BadRequest("action must be budget, pause or resume")
        return await _control(request, tenant, session_id, actions[action])
    except GatewayError as err:
        return error_response("openai", err)


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/v1/budget-check", budget_check)
    app.router.add_get("/v1/admin/sessions/{tenant}/{session_id}", admin_session)
    app.router.add_post("/v1/admin/sessions/{tenant}/{session_id}/{action}", admin_session)

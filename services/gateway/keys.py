"""Typed keys of everything the gateway app holds."""

from __future__ import annotations

from aiohttp import web

from services.common.topics import Topics
from services.gateway.admission import Admission, IterationCounter
from services.gateway.auth import TokenAuthenticator
from services.gateway.budget import BudgetLedger
from services.gateway.budget_admission import BudgetAdmission
from services.gateway.config import GatewaySettings
from services.gateway.emitter import Emitter
from services.gateway.metrics import GatewayMetrics
from services.gateway.replica import SessionReplica
from services.gateway.strict import BrokerSender, StrictReservations
from services.gateway.upstream import Upstreams

SETTINGS = web.AppKey("settings", GatewaySettings)
TOPICS = web.AppKey("topics", Topics)
METRICS = web.AppKey("metrics", GatewayMetrics)
AUTH = web.AppKey("auth", TokenAuthenticator)
ADMISSION = web.AppKey("admission", Admission)
ITERATIONS = web.AppKey("iterations", IterationCounter)
EMITTER = web.AppKey("emitter", Emitter)
UPSTREAMS = web.AppKey("upstreams", Upstreams)
GATEWAY_ID = web.AppKey("gateway_id", str)
BUDGET = web.AppKey("budget", BudgetAdmission)
REPLICA = web.AppKey("replica", SessionReplica)
LEDGER = web.AppKey("budget_ledger", BudgetLedger)
STRICT = web.AppKey("budget_strict", StrictReservations)
SENDER = web.AppKey("budget_sender", BrokerSender)

"""The event schemas every service shares, and their one encode/decode path.

Every event is a msgspec struct tagged by ``type`` and carrying a schema version ``v``.
Money is ``Decimal`` (encoded as a JSON string, so no float ever touches a sum);
timestamps are timezone-aware UTC. Decoders accept unknown fields so that an older
consumer keeps reading events written by a newer producer; a new field must have a
default so that a newer consumer keeps reading old events (see the recorded samples in
``tests/data/events``).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

import msgspec

from services.common.codec import JsonCodec

SCHEMA_VERSION = 1

Provider = Literal["openai", "anthropic"]
Severity = Literal["info", "warning", "high", "critical"]


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    """A random id for events, calls and alerts: 128 bits from the OS CSPRNG as 32 hex digits
    (the shape of a UUID4 hex). Built directly rather than via ``uuid.uuid4().hex``, which
    costs six times as much, and the gateway makes three per call."""
    return os.urandom(16).hex()


class _Event(msgspec.Struct, kw_only=True, frozen=True, tag_field="type", omit_defaults=False):
    v: int = SCHEMA_VERSION
    event_id: str = msgspec.field(default_factory=new_id)
    ts: datetime = msgspec.field(default_factory=utcnow)
    tenant: str
    session_id: str | None = None

    @property
    def key(self) -> bytes:
        """Kafka key: events of one session share a partition, hence one order and one writer."""
        return session_key(self.tenant, self.session_id)


def session_key(tenant: str, session_id: str | None) -> bytes:
    return f"{tenant}/{session_id or ''}".encode()


class _CallEvent(_Event, kw_only=True, frozen=True):
    """The fields that name one LLM call, first in both of its events."""

    call_id: str
    iteration: int | None = None
    project: str | None = None
    team: str | None = None
    provider: Provider
    model: str | None = None
    endpoint: str
    streamed: bool = False


class CallStarted(_CallEvent, tag="call_started", kw_only=True, frozen=True):
    """Emitted before a call is forwarded upstream; carries the reservation it holds."""

    reserved_usd: Decimal = Decimal(0)
    budget_usd: Decimal | None = None
    est_input_tokens: int = 0
    fingerprint: str | None = None
    gateway_id: str | None = None


CallOutcome = Literal[
    "ok",
    "upstream_error",
    "client_disconnected",
    "upstream_timeout",
    "upstream_unreachable",
    "refused",
]


class CallFinished(_CallEvent, tag="call_finished", kw_only=True, frozen=True):
    """Emitted once a call is over, whatever its outcome; the fold of these is session spend."""

    status_code: int
    outcome: CallOutcome = "ok"
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    # None when the model has no known price: "unknown" is never recorded as $0.
    cost_usd: Decimal | None = None
    price_known: bool = True
    reserved_usd: Decimal = Decimal(0)
    started_at: datetime | None = None
    latency_ms: float = 0.0
    ttft_ms: float | None = None
    fingerprint: str | None = None
    source: Literal["proxy", "ingest"] = "proxy"
    gateway_id: str | None = None


class PayloadCaptured(_Event, tag="payload_captured", kw_only=True, frozen=True):
    call_id: str
    provider: Provider
    endpoint: str
    request_body: str
    response_body: str | None = None
    truncated: bool = False
    # True on the copy the risk scanner publishes to ``payloads_redacted``.
    redacted: bool = False


class Alert(_Event, tag="alert", kw_only=True, frozen=True):
    alert_id: str = msgspec.field(default_factory=new_id)
    project: str | None = None
    team: str | None = None
    detector: str
    severity: Severity = "warning"
    message: str = ""
    evidence: dict[str, Any] = msgspec.field(default_factory=dict)
    spent_usd: Decimal | None = None
    budget_usd: Decimal | None = None


ControlAction = Literal["set_budget", "pause", "resume"]


class Control(_Event, tag="control", kw_only=True, frozen=True):
    """An operator's (or the anomaly service's) command on a session, seen by every gateway."""

    action: ControlAction
    budget_usd: Decimal | None = None
    reason: str | None = None
    actor: str = "admin"


class RiskFinding(_Event, tag="risk_finding", kw_only=True, frozen=True):
    finding_id: str = msgspec.field(default_factory=new_id)
    call_id: str
    location: Literal["request", "response"]
    message_index: int | None = None
    finding_type: str
    count: int = 1
    severity: Severity = "warning"
    # A masked preview or a hash: never the raw value.
    preview: str = ""


class ReservationRequest(_Event, tag="reservation_request", kw_only=True, frozen=True):
    """Strict mode: a gateway asks the session's single writer (its budget worker) for a reservation."""

    call_id: str
    amount_usd: Decimal
    budget_usd: Decimal | None = None
    gateway_id: str


ReservationCode = Literal["granted", "budget_exceeded", "session_paused", "already_finished"]


class ReservationDecision(_Event, tag="reservation_decision", kw_only=True, frozen=True):
    """The budget worker's answer, keyed by gateway id on the decisions topic."""

    call_id: str
    gateway_id: str
    code: ReservationCode
    spent_usd: Decimal = Decimal(0)
    reserved_usd: Decimal = Decimal(0)
    budget_usd: Decimal | None = None

    @property
    def granted(self) -> bool:
        return self.code == "granted"


Event = (
    CallStarted
    | CallFinished
    | PayloadCaptured
    | Alert
    | Control
    | RiskFinding
    | ReservationRequest
    | ReservationDecision
)
EVENT_TYPES: tuple[type[_Event], ...] = (
    CallStarted,
    CallFinished,
    PayloadCaptured,
    Alert,
    Control,
    RiskFinding,
    ReservationRequest,
    ReservationDecision,
)


class EventDecodeError(ValueError):
    """Raised for bytes that are not a valid event of a known type and version."""


_codec = JsonCodec[Event](Event, EventDecodeError, what="event schema", newest=SCHEMA_VERSION)


def encode(event: Event) -> bytes:
    return _codec.encode(event)


def decode(data: bytes) -> Event:
    return _codec.decode(data)

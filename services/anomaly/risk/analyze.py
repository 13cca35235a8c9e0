"""From one captured payload to the events the risk worker publishes (pure: no I/O)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from services.anomaly.risk.payload import BodyScan, group, scan_body
from services.anomaly.risk.redact import mask
from services.anomaly.risk.scanner import Scanner
from services.anomaly.risk.types import SECRET_TYPES, SEVERITY
from services.common.events import Alert, PayloadCaptured, RiskFinding

SECRET_ALERT_DETECTOR = "secret_in_prompt"


@dataclass(frozen=True, slots=True)
class Analysis:
    findings: list[RiskFinding]
    redacted: PayloadCaptured
    alert: Alert | None


def stable_id(*parts: object) -> str:
    """Ids derived from the input, so a batch scanned twice after a failure yields the same ids
    and stores that upsert on them keep one copy."""
    return hashlib.sha256("\x1f".join(map(str, parts)).encode()).hexdigest()[:32]


def analyze(event: PayloadCaptured, scanner: Scanner, redact_types: frozenset[str], salt: bytes) -> Analysis:
    request = scan_body(scanner, event.request_body, "request", redact_types)
    response: BodyScan | None = None
    if event.response_body is not None:
        response = scan_body(scanner, event.response_body, "response", redact_types)
    located = request.findings + (response.findings if response else [])
    findings = [
        RiskFinding(
            event_id=stable_id(event.event_id, "finding", location, index, kind),
            finding_id=stable_id(event.call_id, location, index, kind),
            ts=event.ts,
            tenant=event.tenant,
            session_id=event.session_id,
            call_id=event.call_id,
            location=location,
            message_index=index,
            finding_type=kind,
            count=len(matches),
            severity=SEVERITY[kind],
            preview=mask(matches[0], salt),
        )
        for location, index, kind, matches in group(located)
    ]
    redacted = PayloadCaptured(
        event_id=stable_id(event.event_id, "redacted"),
        ts=event.ts,
        tenant=event.tenant,
        session_id=event.session_id,
        call_id=event.call_id,
        provider=event.provider,
        endpoint=event.endpoint,
        request_body=request.redacted,
        response_body=response.redacted if response else None,
        truncated=event.truncated,
        redacted=True,
    )
    return Analysis(findings, redacted, _secret_alert(event, findings))


def _secret_alert(event: PayloadCaptured, findings: list[RiskFinding]) -> Alert | None:
    """One alert per call whose request carried a secret: it has reached the provider already."""
    leaked = [f for f in findings if f.location == "request" and f.finding_type in SECRET_TYPES]
    if not leaked:
        return None
    counts: dict[str, int] = {}
    for f in leaked:
        counts[f.finding_type] = counts.get(f.finding_type, 0) + f.count
    kinds = ", ".join(f"{n}x {k}" for k, n in sorted(counts.items()))
    return Alert(
        event_id=stable_id(event.event_id, "alert"),
        alert_id=stable_id(event.call_id, SECRET_ALERT_DETECTOR),
        ts=event.ts,
        tenant=event.tenant,
        session_id=event.session_id,
        detector=SECRET_ALERT_DETECTOR,
        severity="high",
        message=f"secret sent to {event.provider} in call {event.call_id}: {kinds}; rotate it",
        evidence={
            "call_id": event.call_id,
            "provider": event.provider,
            "types": counts,
            "previews": [f.preview for f in leaked],
        },
    )

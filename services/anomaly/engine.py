"""One event in, the session's new state and what to emit out: the whole detection step.

Pure (no broker, no clock), so the Faust agent is a thin shell around it and the cooldown is
tested without a worker. The cooldown uses event time and lives in the state, so a restarted
worker that rebuilds the table from its changelog does not alert twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from services.anomaly.detectors import PAUSING, Finding, run_all
from services.anomaly.state import SessionState, note_finished, note_started
from services.common.config import TenantPolicy
from services.common.events import Alert, CallFinished, CallStarted, Control, Event


@dataclass(slots=True)
class Step:
    state: SessionState
    changed: bool = False
    alerts: list[Alert] = field(default_factory=list)
    controls: list[Control] = field(default_factory=list)


def _alert(state: SessionState, event: CallFinished, finding: Finding) -> Alert:
    return Alert(
        tenant=event.tenant,
        session_id=event.session_id,
        project=state.project,
        team=state.team,
        detector=finding.detector,
        severity=finding.severity,
        message=finding.message,
        evidence={**finding.evidence, "iteration": event.iteration, "call_id": event.call_id},
        spent_usd=state.spent_usd,
        budget_usd=state.budget_usd,
    )


def step(state: SessionState | None, event: Event, policy: TenantPolicy) -> Step:
    st = state if state is not None else SessionState(tenant=event.tenant, session_id=event.session_id)
    if isinstance(event, CallStarted):
        note_started(st, event)
        return Step(st, changed=True)
    if not isinstance(event, CallFinished):
        return Step(st)
    t = policy.detectors
    note_finished(st, event, t.window)
    out = Step(st, changed=True)
    for finding in run_all(st, t):
        last = st.last_alert.get(finding.detector)
        if last is not None and (event.ts - last).total_seconds() < t.cooldown_s:
            continue
        st.last_alert[finding.detector] = event.ts
        alert = _alert(st, event, finding)
        out.alerts.append(alert)
        if policy.loop_policy == "pause" and finding.detector in PAUSING and not out.controls:
            out.controls.append(
                Control(
                    tenant=event.tenant,
                    session_id=event.session_id,
                    action="pause",
                    reason=f"{finding.detector}: {finding.message} (alert {alert.alert_id})",
                    actor="anomaly",
                )
            )
    return out

"""Alert → Slack Block Kit message (what fired, session, project, team, spent/budget, evidence)."""

from __future__ import annotations

import json
from decimal import Decimal
from types import MappingProxyType
from typing import Any

from services.common.events import Alert

_EMOJI = MappingProxyType(
    {"info": ":information_source:", "warning": ":warning:", "high": ":rotating_light:", "critical": ":fire:"}
)
# Slack rejects a section text over 3000 characters.
_MAX_TEXT = 2900


def _usd(value: Decimal | None) -> str:
    return "unknown" if value is None else f"${value.quantize(Decimal('0.0001'))}"


def slack_message(alert: Alert) -> dict[str, Any]:
    title = f"{_EMOJI.get(alert.severity, '')} AgentWatch: {alert.detector.replace('_', ' ')} ({alert.severity})"
    session = f"{alert.tenant}/{alert.session_id or '-'}"
    evidence = json.dumps(alert.evidence, sort_keys=True, default=str)
    if len(evidence) > _MAX_TEXT:
        evidence = evidence[:_MAX_TEXT] + "…"
    fields = [
        f"*Session*\n`{session}`",
        f"*Project*\n{alert.project or '-'}",
        f"*Team*\n{alert.team or '-'}",
        f"*Spent / budget*\n{_usd(alert.spent_usd)} / {_usd(alert.budget_usd)}",
    ]
    return {
        # The fallback text shows in notifications and in clients without Block Kit.
        "text": f"{title}: {alert.message} — session {session}",
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": title[:150], "emoji": True}},
            {"type": "section", "text": {"type": "mrkdwn", "text": alert.message or alert.detector}},
            {"type": "section", "fields": [{"type": "mrkdwn", "text": f} for f in fields]},
            {"type": "section", "text": {"type": "mrkdwn", "text": f"*Evidence*\n```{evidence}```"}},
            {
                "type": "context",
                "elements": [
                    {"type": "mrkdwn", "text": f"alert `{alert.alert_id}` · {alert.ts.isoformat()}"},
                ],
            },
        ],
    }

"""A batch of decoded events, grouped by the table they go to.

Both stores take the same ``Batch``. Duplicates inside one batch (a producer retry, a
replay) are dropped here by their id, so a store only has to guard against rows it already
holds from earlier batches.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from services.common.events import Alert, CallFinished, Event, PayloadCaptured, RiskFinding


@dataclass(slots=True)
class Batch:
    calls: dict[str, CallFinished] = field(default_factory=dict)
    alerts: dict[str, Alert] = field(default_factory=dict)
    findings: dict[str, RiskFinding] = field(default_factory=dict)
    payloads: dict[str, PayloadCaptured] = field(default_factory=dict)
    # Records read, including those no table wants (CallStarted, undecodable): they count
    # towards the flush threshold and their offsets are committed with the batch.
    records: int = 0

    def add(self, event: Event) -> bool:
        """Keep ``event`` if a table wants it; returns whether it was kept."""
        match event:
            case CallFinished():
                self.calls.setdefault(event.call_id, event)
            case Alert():
                self.alerts.setdefault(event.alert_id, event)
            case RiskFinding():
                self.findings.setdefault(event.finding_id, event)
            case PayloadCaptured():
                self.payloads.setdefault(event.event_id, event)
            case _:
                return False
        return True

    @property
    def rows(self) -> int:
        return len(self.calls) + len(self.alerts) + len(self.findings) + len(self.payloads)

    def clear(self) -> None:
        self.calls.clear()
        self.alerts.clear()
        self.findings.clear()
        self.payloads.clear()
        self.records = 0

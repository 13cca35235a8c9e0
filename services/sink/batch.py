"""A batch of decoded events, grouped by the table they go to.

Both stores take the same ``Batch``. Duplicates inside one batch (a producer retry, a
replay) are dropped here by their id, so a store only has to guard against rows it already
holds from earlier batches. Each kept event remembers the Kafka record it came from, and the
records that did not decode travel with the batch, so either can become a dead letter.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from services.common.events import Alert, CallFinished, Event, PayloadCaptured, RiskFinding

# Where a record came from: topic, partition, offset and its raw bytes (None: a tombstone).
Source = tuple[str, int, int, bytes | None]


@dataclass(frozen=True, slots=True)
class Undecodable:
    source: Source
    error: str


@dataclass(slots=True)
class Batch:
    calls: dict[str, CallFinished] = field(default_factory=dict)
    alerts: dict[str, Alert] = field(default_factory=dict)
    findings: dict[str, RiskFinding] = field(default_factory=dict)
    payloads: dict[str, PayloadCaptured] = field(default_factory=dict)
    # Records read, including those no table wants (CallStarted, undecodable): they count
    # towards the flush threshold and their offsets are committed with the batch.
    records: int = 0
    # The record each kept event came from, by event id; shared by the halves of a split.
    sources: dict[str, Source] = field(default_factory=dict)
    undecodable: list[Undecodable] = field(default_factory=list)

    def add(self, event: Event, source: Source | None = None) -> bool:
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
        if source is not None:
            self.sources.setdefault(event.event_id, source)
        return True

    @property
    def rows(self) -> int:
        return len(self.calls) + len(self.alerts) + len(self.findings) + len(self.payloads)

    def events(self) -> list[CallFinished | Alert | RiskFinding | PayloadCaptured]:
        return [*self.calls.values(), *self.alerts.values(), *self.findings.values(), *self.payloads.values()]

    def split(self) -> tuple[Batch, Batch]:
        """Two batches holding half of this one's rows each (for isolating a rejected row)."""
        events = self.events()
        half = len(events) // 2
        return self._subset(events[:half]), self._subset(events[half:])

    def _subset(self, events: list[CallFinished | Alert | RiskFinding | PayloadCaptured]) -> Batch:
        part = Batch(sources=self.sources)
        for event in events:
            part.add(event)
        return part

    def clear(self) -> None:
        self.calls.clear()
        self.alerts.clear()
        self.findings.clear()
        self.payloads.clear()
        self.sources.clear()
        self.undecodable.clear()
        self.records = 0

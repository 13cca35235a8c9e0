"""Scanning a captured provider payload: where each finding sits, and the redacted copy.

Request and response bodies are provider JSON. Every string in them is scanned after JSON
decoding (so ``\\n`` inside a private key block is a real newline and an escaped ``\\u0040``
is an ``@``); findings under ``messages`` / ``choices`` / ``content`` / ``input`` carry the
index of their message. A body that is not JSON (a streamed SSE transcript, a truncated
capture) is scanned as plain text with no message index.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from services.anomaly.risk.redact import redact_bytes
from services.anomaly.risk.scanner import Scanner
from services.anomaly.risk.types import Match

Location = Literal["request", "response"]
_MESSAGE_LISTS = ("messages", "choices", "content", "input")


@dataclass(frozen=True, slots=True)
class Located:
    location: Location
    message_index: int | None
    match: Match


@dataclass(frozen=True, slots=True)
class BodyScan:
    findings: list[Located]
    redacted: str
    changed: bool


def scan_body(scanner: Scanner, body: str, location: Location, redact_types: frozenset[str]) -> BodyScan:
    try:
        doc = json.loads(body)
    except ValueError:
        return _scan_text(scanner, body, location, None, redact_types)
    findings: list[Located] = []
    redacted = _walk(
        scanner, doc, location=location, index=None, redact_types=redact_types, findings=findings, top=True
    )
    changed = any(f.match.finding_type in redact_types for f in findings)
    text = json.dumps(redacted, ensure_ascii=False, separators=(",", ":")) if changed else body
    return BodyScan(findings, text, changed)


def _scan_text(
    scanner: Scanner, text: str, location: Location, index: int | None, redact_types: frozenset[str]
) -> BodyScan:
    data = text.encode("utf-8", "surrogatepass")
    matches = scanner.scan_bytes(data)
    if not matches:
        return BodyScan([], text, False)
    out = redact_bytes(data, matches, redact_types)
    return BodyScan(
        [Located(location, index, m) for m in matches],
        out.decode("utf-8", "surrogatepass"),
        out is not data,
    )


def _walk(
    scanner: Scanner,
    node: Any,
    *,
    location: Location,
    index: int | None,
    redact_types: frozenset[str],
    findings: list[Located],
    top: bool = False,
) -> Any:
    if isinstance(node, str):
        result = _scan_text(scanner, node, location, index, redact_types)
        findings.extend(result.findings)
        return result.redacted
    if isinstance(node, list):
        return [
            _walk(scanner, v, location=location, index=index, redact_types=redact_types, findings=findings)
            for v in node
        ]
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            if top and key in _MESSAGE_LISTS and isinstance(value, list):
                out[key] = [
                    _walk(scanner, v, location=location, index=i, redact_types=redact_types, findings=findings)
                    for i, v in enumerate(value)
                ]
            else:
                out[key] = _walk(
                    scanner, value, location=location, index=index, redact_types=redact_types, findings=findings
                )
        return out
    return node


def group(findings: list[Located]) -> Iterator[tuple[Location, int | None, str, list[Match]]]:
    """Findings grouped per (location, message index, type), in first-seen order."""
    groups: dict[tuple[Location, int | None, str], list[Match]] = {}
    for f in findings:
        groups.setdefault((f.location, f.message_index, f.match.finding_type), []).append(f.match)
    for (location, index, kind), matches in groups.items():
        yield location, index, kind, matches

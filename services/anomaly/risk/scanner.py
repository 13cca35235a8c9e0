"""One linear pass over the text finds candidates of every type; validators confirm them.

All candidate patterns are compiled into a single RE2 alternation with one capture group per
detector, run over the UTF-8 bytes: RE2's DFA keeps the pass linear and fast (hundreds of MB/s
on ordinary text), so the cost of Python-side validation is paid only where a candidate
appears. A rejected candidate resumes the search one byte later, so a candidate of one type
can never hide an overlapping value of another (``+1 415 555 0100`` vs a card number).
"""

from __future__ import annotations

from collections.abc import Iterable

import re2

from services.anomaly.risk.detectors import DETECTORS, Detector
from services.anomaly.risk.errors import ScannerConfigError
from services.anomaly.risk.types import ALL_TYPES, Match

_DETECTOR_TYPES: dict[str, frozenset[str]] = {
    "private_key": frozenset({"private_key"}),
    "known_secret": frozenset(
        {"openai_key", "anthropic_key", "aws_access_key", "github_token", "slack_token", "stripe_key", "jwt"}
    ),
    "assigned_token": frozenset(
        {
            "high_entropy_token",
            "openai_key",
            "anthropic_key",
            "aws_access_key",
            "github_token",
            "slack_token",
            "stripe_key",
            "jwt",
        }
    ),
    "email": frozenset({"email"}),
    "iban": frozenset({"iban"}),
    "us_ssn": frozenset({"us_ssn"}),
    "phone": frozenset({"phone"}),
    "credit_card": frozenset({"credit_card"}),
    "ipv4": frozenset({"ip_address"}),
    "ipv6": frozenset({"ip_address"}),
}


class Scanner:
    """Finds PII and secrets in text. Immutable after construction, so one instance is shared."""

    def __init__(self, types: Iterable[str] = ALL_TYPES) -> None:
        wanted = frozenset(types)
        unknown = wanted - ALL_TYPES
        if unknown:
            raise ScannerConfigError(f"unknown finding types: {', '.join(sorted(unknown))}")
        self.types = wanted
        self._detectors: tuple[Detector, ...] = tuple(d for d in DETECTORS if _DETECTOR_TYPES[d.name] & wanted)
        options = re2.Options()
        options.max_mem = 64 << 20
        pattern = "|".join(f"({d.candidate})" for d in self._detectors)
        self._regex = re2.compile(pattern.encode(), options)

    def scan(self, text: str) -> list[Match]:
        return self.scan_bytes(text.encode("utf-8", "surrogatepass"))

    def scan_bytes(self, data: bytes) -> list[Match]:
        found: list[Match] = []
        pos = 0
        search = self._regex.search
        while True:
            m = search(data, pos)
            if m is None:
                return found
            start = m.start()
            detector = self._detectors[m.lastindex - 1]
            confirmed = [v for v in detector.validate(data, start, m.end()) if v[0] in self.types]
            if not confirmed:
                pos = start + 1
                continue
            for kind, value, rel_start, rel_end in confirmed:
                found.append(Match(kind, start + rel_start, start + rel_end, value))
            pos = max(start + rel_end for _, _, _, rel_end in confirmed)

    def contains_secret(self, text: str) -> bool:
        return any(True for _ in self.scan(text))

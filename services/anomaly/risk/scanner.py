"""One linear pass over the text finds candidates of every type; validators confirm them.

All candidate patterns are compiled into a single RE2 alternation with one capture group per
detector, run over the UTF-8 bytes: RE2's DFA keeps the pass linear and fast (hundreds of MB/s
on ordinary text), so the cost of Python-side validation is paid only where a candidate
appears. A rejected candidate resumes the search one byte later, so a candidate of one type
can never hide an overlapping value of another (``+1 415 555 0100`` vs a card number).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import re2

from services.anomaly.risk.detectors import DETECTORS, Detector
from services.anomaly.risk.errors import ScannerConfigError
from services.anomaly.risk.types import ALL_TYPES, KNOWN_SECRET_TYPES, Match

_DETECTOR_TYPES: dict[str, frozenset[str]] = {
    "private_key": frozenset({"private_key"}),
    "known_secret": KNOWN_SECRET_TYPES,
    # A token assigned to a secret-looking name: a known format, or any high-entropy string.
    "assigned_token": KNOWN_SECRET_TYPES | {"high_entropy_token"},
    "email": frozenset({"email"}),
    "iban": frozenset({"iban"}),
    "us_ssn": frozenset({"us_ssn"}),
    "phone": frozenset({"phone"}),
    "credit_card": frozenset({"credit_card"}),
    "ipv4": frozenset({"ip_address"}),
    "ipv6": frozenset({"ip_address"}),
}


_BOUNDED_REPEAT = re.compile(r"\{(\d+),\d+\}")


def _dfa_friendly(pattern: str) -> str:
    """``x{16,300}`` becomes ``x{16,}``: bounded repeats multiply RE2's DFA states until its cache
    thrashes (a measured 5x slowdown); the validators enforce the upper bounds instead."""
    return _BOUNDED_REPEAT.sub(r"{\1,}", pattern)


def _compile(pattern: bytes, options: Any) -> Any:
    regex = re2._re2.RE2(pattern, options)
    if not regex.ok():
        raise ScannerConfigError(f"candidate pattern does not compile: {regex.error()}")
    return regex


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
        # The binding's own RE2 objects, not its re-compatible wrapper: the wrapper costs ~10 us per
        # match in Python bookkeeping, the raw call ~3 us, and candidates are what the scan pays for.
        patterns = [_dfa_friendly(d.candidate).encode() for d in self._detectors]
        # No capture groups in the combined pattern: with them RE2 leaves its DFA for a slower engine.
        self._any = _compile(b"|".join(b"(?:" + p + b")" for p in patterns), options)
        # Telling which alternative produced a span is a short anchored match: Python's re is
        # cheapest for that (no call into the binding), and the syntax used is common to both.
        self._each = tuple(re.compile(p) for p in patterns)
        self._unanchored = re2._re2.RE2.Anchor.UNANCHORED

    def scan(self, text: str) -> list[Match]:
        return self.scan_bytes(text.encode("utf-8", "surrogatepass"))

    def scan_bytes(self, data: bytes) -> list[Match]:
        found: list[Match] = []
        pos = 0
        size = len(data)
        match = self._any.Match
        anchor = self._unanchored
        while True:
            start, end = match(anchor, data, pos, size)[0]
            if start < 0:
                return found
            confirmed = [
                v for v in self._detector_of(data, start, end).validate(data, start, end) if v[0] in self.types
            ]
            if not confirmed:
                # No value of any type starts inside a run of digits (every digit-led type needs a
                # boundary before it), so a rejected number is skipped whole, not byte by byte.
                pos = start + 1
                while pos < size and 48 <= data[pos] <= 57 and 48 <= data[pos - 1] <= 57:
                    pos += 1
                continue
            for kind, value, rel_start, rel_end in confirmed:
                found.append(Match(kind, start + rel_start, start + rel_end, value))
            pos = max(start + rel_end for _, _, _, rel_end in confirmed)

    def _detector_of(self, data: bytes, start: int, end: int) -> Detector:
        """The alternative that produced the span: the first whose pattern matches it exactly,
        as RE2's leftmost-first alternation chose."""
        for detector, regex in zip(self._detectors, self._each, strict=True):
            if regex.fullmatch(data, start, end) is not None:
                return detector
        return self._detectors[-1]  # unreachable: the span came from one of these patterns

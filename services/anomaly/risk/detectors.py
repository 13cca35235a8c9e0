"""Per-type candidate patterns and their validators.

Each detector is a cheap candidate pattern (RE2 syntax: no look-arounds, so that all of them
run as one linear-time DFA pass in ``scanner.py``) plus a validator that decides, on the
candidate alone, whether it is real: phonenumbers for phones, Luhn and the IIN ranges for
cards, python-stdnum's country-length + mod-97 check for IBANs, ``ipaddress`` for IPs,
detect-secrets' own patterns and JWT check for the known secret formats. Word boundaries,
which RE2 cannot look behind for, are checked here on the bytes around the candidate.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Callable
from dataclasses import dataclass

import phonenumbers
from detect_secrets.plugins.aws import AWSKeyDetector
from detect_secrets.plugins.github_token import GitHubTokenDetector
from detect_secrets.plugins.jwt import JwtTokenDetector
from detect_secrets.plugins.openai import OpenAIDetector
from detect_secrets.plugins.slack import SlackDetector
from detect_secrets.plugins.stripe import StripeDetector
from stdnum import iban as stdnum_iban
from stdnum import luhn

# (type, value, start, end) relative to the candidate; an empty list rejects the candidate.
Validated = list[tuple[str, str, int, int]]
Validator = Callable[[bytes, int, int], Validated]


@dataclass(frozen=True, slots=True)
class Detector:
    name: str
    candidate: str  # RE2 syntax, matched against UTF-8 bytes
    validate: Validator


_WORD = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")
_DIGITS = frozenset(b"0123456789")


def _before(data: bytes, start: int) -> int:
    return data[start - 1] if start > 0 else 0


def _after(data: bytes, end: int) -> int:
    return data[end] if end < len(data) else 0


def _digit_run_continues(data: bytes, start: int, end: int) -> bool:
    """True when the candidate is a slice of a longer number (``12-345-6789-0``, ``1.2.3.4.5``)."""
    b, a = _before(data, start), _after(data, end)
    if b in _WORD or a in _WORD:
        return True
    if b in b"-.+" and start >= 2 and data[start - 2] in _DIGITS:
        return True
    return a in b"-." and end + 1 < len(data) and data[end + 1] in _DIGITS


# --------------------------------------------------------------------------- PII


def _email(data: bytes, start: int, end: int) -> Validated:
    value = data[start:end].decode()
    local, _, domain = value.rpartition("@")
    # ``git@github.com:org/repo`` is an SSH remote, not a mailbox.
    if _after(data, end) == ord(":") and data[end + 1 : end + 2] not in (b" ", b"\n", b""):
        return []
    if local.startswith(".") or local.endswith(".") or ".." in value:
        return []
    labels = domain.split(".")
    # ``icon@2x.png``: image density suffixes, not addresses.
    if re.fullmatch(r"\d+x", labels[0]) or not labels[-1].isalpha():
        return []
    if _before(data, start) in b"/:" and start >= 2:
        return []
    return [("email", value, 0, end - start)]


_PHONE_SEPARATORS = re.compile(r"[\s().-]")


def _phone(data: bytes, start: int, end: int) -> Validated:
    if _digit_run_continues(data, start, end) or _before(data, start) == ord("+"):
        return []
    value = data[start:end].decode()
    try:
        number = phonenumbers.parse(value, "US")
    except phonenumbers.NumberParseException:
        return []
    if not phonenumbers.is_valid_number(number):
        return []
    return [("phone", value, 0, end - start)]


# Issuer ranges of the card networks; a Luhn-valid 16-digit order number outside them is no card.
_CARD_IIN = re.compile(
    r"4\d{12}(?:\d{3}){0,2}|5[1-5]\d{14}|2(?:22[1-9]|2[3-9]\d|[3-6]\d\d|7[01]\d|720)\d{12}"
    r"|3[47]\d{13}|6(?:011|5\d\d|4[4-9]\d)\d{12,15}|35(?:2[89]|[3-8]\d)\d{12,15}|3(?:0[0-5]|[68]\d)\d{11,16}"
    r"|62\d{14,17}"
)


def _card(data: bytes, start: int, end: int) -> Validated:
    # The candidate carries the byte before the number (RE2 cannot look behind): floats such as
    # ``0.8444218515250481`` are then never candidates, which keeps JSON-heavy payloads cheap.
    lead = 0 if data[start] in _DIGITS else 1
    if _digit_run_continues(data, start + lead, end):
        return []
    value = data[start + lead : end].decode()
    digits = value.replace(" ", "").replace("-", "")
    # Mixed separators (``4111-1111 1111-1111``) are how numbers are glued together, not cards.
    if " " in value and "-" in value:
        return []
    if not (13 <= len(digits) <= 19 and _CARD_IIN.fullmatch(digits) and luhn.is_valid(digits)):
        return []
    return [("credit_card", value, lead, end - start)]


def _iban(data: bytes, start: int, end: int) -> Validated:
    value = data[start:end].decode()
    # The candidate may have swallowed a trailing word; shrink it group by group until valid.
    while len(value) >= 15:
        e = start + len(value.encode())
        if _before(data, start) not in _WORD and _after(data, e) not in _WORD and stdnum_iban.is_valid(value):
            return [("iban", value, 0, len(value))]
        cut = value.rfind(" ")
        if cut < 0:
            break
        value = value[:cut]
    return []


_SSN_BLOCKED = frozenset({"078-05-1120", "219-09-9999", "123-45-6789"})


def _ssn(data: bytes, start: int, end: int) -> Validated:
    if _digit_run_continues(data, start, end):
        return []
    value = data[start:end].decode()
    area, group, serial = value.split("-")
    if area in ("000", "666") or area[0] == "9" or group == "00" or serial == "0000" or value in _SSN_BLOCKED:
        return []
    return [("us_ssn", value, 0, end - start)]


def _ipv4(data: bytes, start: int, end: int) -> Validated:
    if _digit_run_continues(data, start, end) or _before(data, start) in b"vV":
        return []
    value = data[start:end].decode()
    # ipaddress.IPv4Address's rules (0-255, no leading zeros) without its object: logs are full of IPs.
    if any(len(p) > 3 or int(p) > 255 or (len(p) > 1 and p[0] == "0") for p in value.split(".")):
        return []
    return [("ip_address", value, 0, end - start)]


def _ipv6(data: bytes, start: int, end: int) -> Validated:
    if _before(data, start) in _WORD or _before(data, start) == ord(":") or _after(data, end) in _WORD:
        return []
    value = data[start:end].decode()
    # ``d::`` or ``10:30:00`` parse as (or look like) IPv6; a real address has several hex groups.
    if sum(ch not in ":." for ch in value) < 4 or value.count(":") < 2:
        return []
    try:
        ipaddress.IPv6Address(value)
    except ValueError:
        return []
    return [("ip_address", value, 0, len(value))]


# --------------------------------------------------------------------------- secrets

# detect-secrets' own patterns for the formats it knows, plus the newer key formats it predates.
_KNOWN_SECRETS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("anthropic_key", re.compile(r"sk-ant-(?:api|admin)\d\d-[A-Za-z0-9_-]{32,}")),
    ("openai_key", OpenAIDetector.denylist[0]),
    ("openai_key", re.compile(r"sk-(?:proj|svcacct|admin|None)-[A-Za-z0-9_-]{32,}|sk-[A-Za-z0-9]{48}")),
    ("aws_access_key", AWSKeyDetector.denylist[0]),
    ("github_token", GitHubTokenDetector.denylist[0]),
    ("github_token", re.compile(r"github_pat_[A-Za-z0-9_]{60,}")),
    *(("slack_token", p) for p in SlackDetector.denylist),
    ("stripe_key", StripeDetector.denylist[0]),
    ("stripe_key", re.compile(r"(?:sk|rk)_(?:live|test)_[0-9a-zA-Z]{24,99}")),
)


def classify_secret(value: str) -> str | None:
    """The known secret type ``value`` starts with, if any (JWTs included)."""
    for name, pattern in _KNOWN_SECRETS:
        if pattern.match(value):
            return name
    if value.startswith("eyJ") and value.count(".") == 2 and JwtTokenDetector.is_formally_valid(value):
        return "jwt"
    return None


def _known_secret(data: bytes, start: int, end: int) -> Validated:
    if _before(data, start) in _WORD:
        return []
    value = data[start:end].decode()
    kind = classify_secret(value)
    if kind is None:
        return []
    # Patterns of one kind can overlap (detect-secrets' fixed-length Stripe key vs longer ones): longest wins.
    value = max(
        (m.group(0) for name, p in _KNOWN_SECRETS if name == kind and (m := p.match(value))),
        key=len,
        default=value,
    )
    if _after(data, start + len(value)) in _WORD and kind != "slack_token":
        return []
    return [(kind, value, 0, len(value))]


_PEM_END = re.compile(rb"-----END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----")
_PEM_MAX = 16_384


def _private_key(data: bytes, start: int, end: int) -> Validated:
    # The whole block is the secret: redaction must remove the body, not just the header.
    m = _PEM_END.search(data, end, min(len(data), end + _PEM_MAX))
    stop = m.end() if m else end
    return [("private_key", data[start:stop].decode(), 0, stop - start)]


def shannon_entropy(value: str) -> float:
    counts: dict[str, int] = {}
    for ch in value:
        counts[ch] = counts.get(ch, 0) + 1
    n = len(value)
    return -sum(c / n * math.log2(c / n) for c in counts.values())


# The value is what follows the last separator of the assignment (``=`` is part of base64, so
# only the first ``:``/``=``/blank after the name separates).
_ASSIGNED_VALUE = re.compile(rb"(?:[:=]|[ \t])[ \t]*[\"']?([A-Za-z0-9+/_.~=-]{16,})$")
# ``settings.DJANGO_SECRET_KEY``, ``self.tokenizer.encodeBatch``: code, not credentials.
_DOTTED_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)+")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
ENTROPY_THRESHOLD = 3.5


def _assigned_token(data: bytes, start: int, end: int) -> Validated:
    """A value assigned to a credential-looking name (``api_key = "…"``, ``Bearer …``)."""
    m = _ASSIGNED_VALUE.search(data, start, end)
    if m is None or _after(data, end) in _WORD:
        return []
    value = m.group(1).decode()
    offset = m.start(1) - start
    kind = classify_secret(value)
    if kind is not None:
        return [(kind, value, offset, offset + len(value))]
    classes = sum((any(c.islower() for c in value), any(c.isupper() for c in value), any(c.isdigit() for c in value)))
    if (
        len(value) > 256
        or classes < 2
        or _UUID.fullmatch(value)
        or _DOTTED_NAME.fullmatch(value)
        # A random 16+ character credential without a digit is rare (6% at 16 base62 chars, 0.4%
        # at 32); an identifier (``getTokenFromEnvironment``) without one is the norm.
        or not any(c.isdigit() for c in value)
        or shannon_entropy(value) < ENTROPY_THRESHOLD
        or ("/" in value.strip("/") and value.count("/") > 2)
    ):
        return []
    return [("high_entropy_token", value, offset, offset + len(value))]


_KEYWORDS = (
    r"(?i:secret|token|api[_-]?key|apikey|access[_-]?key|password|passwd|pwd|credential|private[_-]?key"
    r"|auth[_-]?key|client[_-]?secret)"
)

DETECTORS: tuple[Detector, ...] = (
    Detector("private_key", r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----", _private_key),
    Detector(
        "known_secret",
        r"\b(?:sk-|sk_live_|sk_test_|rk_live_|rk_test_|A3T[A-Z0-9]|ABIA|ACCA|AKIA|ASIA|gh[pousr]_|github_pat_"
        r"|xox[abposr]-|https://hooks\.slack\.com/services/|eyJ)[A-Za-z0-9_./+=-]{10,}",
        _known_secret,
    ),
    Detector(
        "assigned_token",
        _KEYWORDS + r"[A-Za-z0-9_-]{0,20}[\"']?[ \t]{0,3}[:=][ \t]{0,3}[\"']?[A-Za-z0-9+/_.~=-]{16,300}"
        r"|(?i:bearer)[ \t]{1,3}[A-Za-z0-9+/_.~=-]{16,300}",
        _assigned_token,
    ),
    Detector(
        "email", r"[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63}){0,8}\.[A-Za-z]{2,24}", _email
    ),
    Detector("iban", r"\b[A-Z]{2}\d\d(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?", _iban),
    Detector("us_ssn", r"\b\d{3}-\d\d-\d{4}\b", _ssn),
    Detector(
        "phone",
        r"\+\d{1,3}[ .-]?\(?\d{1,4}\)?(?:[ .-]?\d{2,4}){2,4}|\(\d{3}\) ?\d{3}[ .-]\d{4}"
        r"|\b\d{3}[.-]\d{3}[.-]\d{4}\b",
        _phone,
    ),
    Detector(
        "credit_card",
        r"(?:^|[^0-9A-Za-z_.,+-])(?:\d{4}(?:[ -]?\d{4}){2}[ -]?\d{1,7}|3[47]\d\d[ -]?\d{6}[ -]?\d{5})\b",
        _card,
    ),
    Detector("ipv4", r"\b\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}", _ipv4),
    Detector(
        "ipv6",
        r"[0-9A-Fa-f]{1,4}(?::[0-9A-Fa-f]{1,4}){7}|(?:[0-9A-Fa-f]{1,4}:){1,6}:(?:[0-9A-Fa-f]{1,4}(?::[0-9A-Fa-f]{1,4}){0,5})?"
        r"|::(?:[0-9A-Fa-f]{1,4}:){0,5}[0-9A-Fa-f]{1,4}",
        _ipv6,
    ),
)

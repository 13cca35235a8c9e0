"""Masked previews and redaction: the only forms in which a detected value leaves the scanner."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

from services.anomaly.risk.types import SECRET_TYPES, Match

# Public, format-identifying prefixes: showing them tells an operator what leaked, not the secret.
_SECRET_PREFIXES = (
    "sk-ant-api03-",
    "sk-ant-admin01-",
    "sk-proj-",
    "sk-svcacct-",
    "sk-admin-",
    "sk-",
    "sk_live_",
    "sk_test_",
    "rk_live_",
    "rk_test_",
    "github_pat_",
    "ghp_",
    "gho_",
    "ghu_",
    "ghs_",
    "ghr_",
    "xoxb-",
    "xoxp-",
    "xoxa-",
    "xoxo-",
    "xoxs-",
    "xoxr-",
    "https://hooks.slack.com/services/",
    "AKIA",
    "ASIA",
    "ABIA",
    "ACCA",
    "eyJ",
)


def fingerprint(value: str, salt: bytes) -> str:
    """A salted hash: the same value correlates across findings, but cannot be looked up."""
    return hmac.new(salt, value.encode(), hashlib.sha256).hexdigest()[:12]


def mask(m: Match, salt: bytes) -> str:
    """A preview that identifies the kind and the occurrence, never enough to recover the value."""
    tag = f"#{fingerprint(m.value, salt)}"
    v = m.value
    kind = m.finding_type
    if kind in SECRET_TYPES:
        if kind == "private_key":
            return f"{v.splitlines()[0][:40]}…({len(v)} chars) {tag}"
        prefix = next((p for p in _SECRET_PREFIXES if v.startswith(p)), "")
        return f"{prefix}…({len(v)} chars) {tag}"
    digits = "".join(c for c in v if c.isdigit())
    if kind == "credit_card":
        return f"****{digits[-4:]} {tag}"
    if kind == "iban":
        return f"{v[:2]}**…{digits[-2:]} {tag}"
    if kind == "us_ssn":
        return f"***-**-**** {tag}"
    if kind == "phone":
        return f"…{digits[-2:]} {tag}"
    if kind == "email":
        local, _, domain = v.rpartition("@")
        return f"{local[:1]}***@{domain[:1]}***.{domain.rsplit('.', 1)[-1]} {tag}"
    if kind == "ip_address":
        sep = ":" if ":" in v else "."
        return f"{v.split(sep)[0]}{sep}*{sep}* {tag}"
    return tag


def placeholder(finding_type: str) -> bytes:
    # No quote, backslash or control character: safe inside a JSON string.
    return f"[REDACTED:{finding_type}]".encode()


def redact_bytes(data: bytes, matches: Iterable[Match], types: frozenset[str]) -> bytes:
    """``data`` with every match whose type is in ``types`` replaced by a placeholder."""
    out: list[bytes] = []
    pos = 0
    for m in sorted(matches, key=lambda x: x.start):
        if m.finding_type not in types or m.start < pos:
            continue
        out.append(data[pos : m.start])
        out.append(placeholder(m.finding_type))
        pos = m.end
    if not out:
        return data
    out.append(data[pos:])
    return b"".join(out)

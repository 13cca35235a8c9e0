"""Finding types, their family (secret or PII) and the severity each one carries."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from services.common.events import Severity

FindingType = Literal[
    "email",
    "phone",
    "credit_card",
    "iban",
    "us_ssn",
    "ip_address",
    "openai_key",
    "anthropic_key",
    "aws_access_key",
    "github_token",
    "slack_token",
    "stripe_key",
    "private_key",
    "jwt",
    "high_entropy_token",
]

PII_TYPES: frozenset[str] = frozenset({"email", "phone", "credit_card", "iban", "us_ssn", "ip_address"})
# Credentials recognisable by their own format (a vendor prefix, a JWT's three parts).
KNOWN_SECRET_TYPES: frozenset[str] = frozenset(
    {"openai_key", "anthropic_key", "aws_access_key", "github_token", "slack_token", "stripe_key", "jwt"}
)
SECRET_TYPES: frozenset[str] = KNOWN_SECRET_TYPES | {"private_key", "high_entropy_token"}
ALL_TYPES: frozenset[str] = PII_TYPES | SECRET_TYPES

# A leaked credential is exploitable at once; regulated identifiers are next; contact data is least.
SEVERITY: dict[str, Severity] = {
    **dict.fromkeys(SECRET_TYPES, "high"),
    "credit_card": "warning",
    "iban": "warning",
    "us_ssn": "warning",
    "email": "info",
    "phone": "info",
    "ip_address": "info",
}


@dataclass(frozen=True, slots=True)
class Match:
    """One detected value: byte offsets into the UTF-8 text that was scanned, and the value itself.

    The value stays in memory only long enough to mask and redact it; it is never emitted."""

    finding_type: str
    start: int
    end: int
    value: str
